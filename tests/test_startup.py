"""Start-up stays light: nothing but typer and a command's own needs is imported before
its arguments are parsed, and a command never imports a heavy library it does not use."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"docker", "requests", "urllib3", "jinja2", "deepdiff", "yaml"}


def _modules_after(*args: str, cwd: Path = ROOT) -> set[str]:
    code = (
        "import sys\nfrom reconciler.cli import app\n"
        f"app(args={list(args)!r}, standalone_mode=False)\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return {name.split(".")[0] for name in proc.stderr.split()}


def test_importing_the_cli_loads_no_library_module_but_errors():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, reconciler.cli; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    loaded = {m for m in proc.stdout.split() if m.startswith("reconciler")}
    assert loaded == {"reconciler", "reconciler.cli", "reconciler.errors"}
    assert "pydantic" not in proc.stdout.split()


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["plan", "--help"], ["schema"]])
def test_help_version_and_schema_import_no_heavy_library(args):
    assert not HEAVY & _modules_after(*args)


def test_images_and_env_of_a_stack_without_templates_or_compose_import_no_heavy_library(tmp_path):
    (tmp_path / "src/app").mkdir(parents=True)
    (tmp_path / "src/app/Dockerfile").write_text("FROM redis:7\n")
    (tmp_path / "stack.toml").write_text('[stack]\nname = "s"\nservices = "src/*/Dockerfile"\n')
    for command in ("images", "env"):
        assert not HEAVY & _modules_after(command, "--network", "external", "--stack", str(tmp_path))


def test_images_of_the_example_imports_only_what_it_uses():
    # The example renders a template (jinja2) and reads a compose file (yaml); no daemon, no deepdiff.
    loaded = _modules_after("images", "--network", "external", "--stack", str(ROOT / "desired"))
    assert not {"docker", "requests", "urllib3", "deepdiff"} & loaded


def test_every_command_that_uses_the_library_imports_it_itself():
    """The CLI imports the library inside each command (so --help stays light): a command that
    forgets fails only when run, so check them all here."""
    import ast

    source = (ROOT / "reconciler" / "cli.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            text = "\n".join(ast.get_source_segment(source, statement) or "" for statement in node.body)
            if "pipeline." in text:  # in the body: annotations are never evaluated
                assert "import pipeline" in text or "pipeline,  #" in text or ", pipeline" in text, node.name


def test_docker_py_comes_without_paramiko_until_an_ssh_daemon_needs_it():
    code = (
        "import sys\nfrom reconciler import dockerpy\n"
        "print('paramiko' in sys.modules, hasattr(dockerpy.docker.api.client, 'SSHHTTPAdapter'))\n"
        "dockerpy.ssh_transport()\n"
        "print('paramiko' in sys.modules, hasattr(dockerpy.docker.api.client, 'SSHHTTPAdapter'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["False False", "True True"]  # the test extra installs paramiko


@pytest.mark.parametrize("args", [["--help"], ["--debug", "{}", "--no-oops"], ["{}", "a", "b", "c"], ["--help", "{}"]])
def test_building_only_the_named_command_says_what_the_whole_app_says(args, capsys, monkeypatch):
    from reconciler import cli

    def said(line: list[str]) -> tuple[object, str, str]:
        with pytest.raises(SystemExit) as exit:
            cli.main(line)
        out, err = capsys.readouterr()
        return exit.value.code, out, err

    names = [cli._command_name(c) for c in cli.app.registered_commands]
    assert len(names) == 9
    for name in names:
        line = [arg.format(name) for arg in (args if "{}" in args else [name, *args])]
        assert (cli._only_the_command_named(line) is cli.app) == (line[0] == "--help")
        lean = said(line)
        with monkeypatch.context() as whole_app:
            whole_app.setattr(cli, "_only_the_command_named", lambda args: cli.app)
            whole = said(line)
        assert whole[0] in (0, 1) and whole[1] + whole[2]
        assert lean == whole
