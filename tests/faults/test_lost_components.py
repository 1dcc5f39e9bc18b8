"""A registry killed mid-pull and a daemon killed mid-apply, against a real second engine
(the ``faulty`` one of test_stalled_registry, whose Docker Hub mirror is a loopback proxy).

Nothing the user had is lost (a tag moves only after its pull succeeded), apply reports
and exits 1 without a traceback, and the next apply finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import harness
from tests.faults.test_stalled_registry import IMAGE, _apply, _ended, faulty  # noqa: F401 -- the fixture

OLD = "reconcile-test/old:1"


def _tag_ids(daemon) -> dict[str, str]:
    api = daemon.api()
    try:
        return {t: i["Id"] for i in api.images() for t in i.get("RepoTags") or []}
    finally:
        api.close()


@pytest.fixture
def stack(tmp_path) -> Path:
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "stack.toml").write_text(f'[stack]\nname = "faults"\nimages = ["{IMAGE}"]\n')
    return folder


def _users_alias(daemon) -> str:
    """The user's own localhost/ alias, pointing at another image: it must survive a failed pull."""
    api = daemon.api()
    try:
        api.import_image_from_data(b"\0" * 1024, repository="reconcile-test/old", tag="1")
        api.tag(OLD, f"localhost/{IMAGE.split(':')[0]}", IMAGE.split(":")[1])
    finally:
        api.close()
    return _tag_ids(daemon)[f"localhost/{IMAGE}"]


def test_a_registry_killed_mid_pull_fails_the_pull_and_keeps_the_users_tags(faulty, stack, tmp_path):  # noqa: F811
    daemon, proxy = faulty
    harness.reset_images(daemon)
    before = _users_alias(daemon)
    # Cut inside the registry's first answers: the daemon's own layer retries (5, with pauses up
    # to 20 s) would make a cut inside a layer take minutes per attempt; this fails each attempt.
    proxy.reset("cut", budget=200)
    result, _, lines = _apply(daemon, stack, tmp_path / "cache")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert _ended(lines, f"pull[{IMAGE}]")["status"] == "failed"
    assert _ended(lines, f"tag[localhost/{IMAGE}]")["status"] == "skipped"
    assert proxy.stalled >= 3  # every attempt met a registry that went away mid-response
    assert _tag_ids(daemon)[f"localhost/{IMAGE}"] == before  # nothing the user had moved

    proxy.reset("pass")
    again, _, _ = _apply(daemon, stack, tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    ids = _tag_ids(daemon)
    assert ids[f"localhost/{IMAGE}"] == ids[IMAGE] != before


def test_a_daemon_killed_mid_apply_is_reported_and_the_next_apply_finishes(faulty, tmp_path):  # noqa: F811
    daemon, proxy = faulty
    harness.reset_images(daemon)
    proxy.reset("pass")
    folder = tmp_path / "stack"
    (folder / "src/app").mkdir(parents=True)
    (folder / "src/app/Dockerfile").write_text(f"FROM {IMAGE}\nRUN sleep 20\n")
    (folder / "stack.toml").write_text(
        '[stack]\nname = "faults"\nservices = "src/*/Dockerfile"\nbuild_network = "none"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("INTERNAL_REGISTRY", "RECONCILE_STACK")}
    env.update(
        DOCKER_HOST=daemon.docker_host, RECONCILE_CACHE_DIR=str(tmp_path / "cache"), AI_INFRA_NETWORK_ENV="external"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "-s", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the build is running
        line = proc.stderr.readline()
        if "build[app]: building" in line or not line:
            break
    pid = int(Path(daemon.root, "docker.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # our own private dockerd, by the pid it wrote
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err
    assert "build[app]: ✗ build app failed" in err
    assert "Apply finished with errors." in out
    assert err.strip().splitlines()[-1].startswith("error: verify: cannot reach the Docker daemon")

    harness.ensure_up(daemon)
    (folder / "src/app/Dockerfile").write_text(f"FROM {IMAGE}\nRUN true\n")  # no need to wait 20 s again
    again = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "-s", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Verify: converged" in again.stdout
