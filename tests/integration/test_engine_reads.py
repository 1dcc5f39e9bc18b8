"""The engine's reads on a local socket go through the standard library (docker-py and
requests are imported only to write): they must answer as docker-py does, errors included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.engine import Engine
from reconciler.errors import EngineError, NotFoundError
from reconciler.refs import parse

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def busybox(engine) -> str:
    """A local image, pulled from the hub stand-in, whatever earlier tests left."""
    api = engine.api()
    try:
        api.pull(f"{engine.hub}/library/busybox", tag="1.36")
        api.tag(f"{engine.hub}/library/busybox:1.36", "busybox", "1.36")
    finally:
        api.close()
    return "busybox:1.36"


def test_socket_reads_answer_as_docker_py_does(engine, busybox):
    ours = Engine(engine.docker_host)
    assert ours._reader is not None
    api = engine.api()
    try:
        assert ours.api_version == api.version(api_version=False)["ApiVersion"]
        by_id = lambda images: sorted(images, key=lambda image: image["Id"])  # noqa: E731 -- equal Created: any order
        assert by_id(ours.list_images()) == by_id(api.images())
        assert ours.info()["ID"] == api.info()["ID"]
        assert ours.list_containers() == api.containers(all=True)
        some = api.images()[0]
        assert ours.inspect(some["Id"]) == api.inspect_image(some["Id"])
        tagged = next(tag for image in api.images() for tag in image.get("RepoTags") or [])
        assert ours.image_id(parse(tagged)) == api.inspect_image(tagged)["Id"]
    finally:
        api.close()


def test_a_missing_image_is_not_found_and_a_refused_read_says_what_the_daemon_said(engine):
    ours = Engine(engine.docker_host)
    assert ours.image_id(parse("reconcile-test/no-such-image:1")) is None
    with pytest.raises(NotFoundError, match="No such image"):
        ours.has_onbuild(parse("reconcile-test/no-such-image:1"))
    with pytest.raises(EngineError, match=r"^inspect image: .*invalid reference format"):
        ours.inspect("UPPER:case:bad")


def test_a_plan_imports_neither_docker_py_nor_requests(engine, busybox, tmp_path):
    """Reading the daemon, hashing a context without .dockerignore: nothing needs docker-py."""
    image = busybox
    (tmp_path / "src/app").mkdir(parents=True)
    (tmp_path / "src/app/Dockerfile").write_text(f"FROM {image}\nCOPY . /app\n")
    (tmp_path / "src/app/main.txt").write_text("main\n")
    (tmp_path / "stack.toml").write_text('[stack]\nname = "s"\nservices = "src/*/Dockerfile"\n')
    code = (
        "import sys\nfrom reconciler.cli import app\n"
        f"app(args=['plan', '--network', 'external', '-s', {str(tmp_path)!r}], standalone_mode=False)\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    env = {"DOCKER_HOST": engine.docker_host, "RECONCILE_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "+ build app" in proc.stdout
    loaded = {name.split(".")[0] for name in proc.stderr.split()}
    assert "reconciler" in loaded and not {"docker", "requests", "urllib3", "paramiko"} & loaded
