"""Start-up stays light: commands that do not need the daemon never import docker-py."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(*args: str) -> set[str]:
    code = (
        "import sys\nfrom reconciler.cli import app\n"
        f"app(args={list(args)!r}, standalone_mode=False)\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stderr.split())


def test_help_imports_neither_docker_nor_deepdiff_nor_jinja2():
    loaded = _modules_after("--help")
    assert not {"docker", "deepdiff", "jinja2"} & loaded


def test_images_does_not_import_docker():
    loaded = _modules_after("images", "--stack", str(ROOT / "desired"))
    assert "docker" not in loaded and "deepdiff" not in loaded
