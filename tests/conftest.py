"""Fixtures shared by the suite.

Integration tests run the real ``reconcile`` command against the private
engine (tests/harness.py): a real dockerd and two real registries on
127.0.0.1, a Docker Hub stand-in (the daemon's mirror) and a Harbor stand-in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.refs import parse
from tests import harness, seeding

HARBOR_PROJECT = seeding.HARBOR_PROJECT
# The base images integration tests use; seeded once per session.
SEEDED = ["redis:7-alpine", "osixia/openldap:stable", "nginx:stable", "quay.io/argoproj/argocd:v2", "busybox:1.36"]


INTEGRATION = ("integration", "faults")


def pytest_collection_modifyitems(items):
    """Everything under tests/integration and tests/faults needs the engine: `make unit` skips them."""
    for item in items:
        if item.path.parent.name in INTEGRATION:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def engine() -> harness.Engine:
    engine = harness.ensure_up()
    harness.seed(engine, seeding.targets_for(engine, [parse(r) for r in SEEDED]))
    return engine


@pytest.fixture
def daemon(engine):
    """The private engine with no images: every integration test starts from nothing."""
    harness.reset_images(engine)
    return engine


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)

    def stream(self) -> Stream:
        """``apply --json``'s line stream (docs/machine-output.md), gathered."""
        lines = [json.loads(line) for line in self.out.splitlines() if line.strip()]
        last = lines[-1] if lines and lines[-1]["type"] == "change_summary" else {"changes": {}, "verify": {}}
        planned = [line["change"] for line in lines if line["type"] == "planned_change"]
        ended = {
            line["hook"]["address"]: line["hook"]
            for line in lines
            if line["type"] in ("apply_complete", "apply_errored")
        }
        order = [a["address"] for a in planned]
        return Stream(
            lines=lines,
            planned=planned,
            outcomes=[ended[a] for a in order if a in ended] + [o for a, o in ended.items() if a not in order],
            summary=last["changes"],
            verify=last["verify"],
        )


@dataclass
class Stream:
    lines: list[dict]
    planned: list[dict]  # planned_change: the actions, in plan order
    outcomes: list[dict]  # apply_complete / apply_errored hooks, in plan order
    summary: dict  # change_summary's changes
    verify: dict

    def progress(self, address: str) -> list[dict]:
        return [
            line["hook"]["event"]
            for line in self.lines
            if line["type"] == "apply_progress" and line["hook"]["address"] == address
        ]


@pytest.fixture
def cli(engine, tmp_path):
    """Run the real ``reconcile`` command in a clean environment pointed at the private engine."""
    cache = tmp_path / "cache"  # the cron test reads the same one

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str | None = None) -> Result:
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in ("AI_INFRA_NETWORK_ENV", "INTERNAL_REGISTRY", "RECONCILE_STACK")
        }
        base.update(DOCKER_HOST=engine.docker_host, RECONCILE_CACHE_DIR=str(cache), NO_COLOR="1")
        base.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            capture_output=True,
            text=True,
            env=base,
            cwd=cwd,
            input=stdin or "",
            timeout=300,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def make_stack(tmp_path):
    """Write a small stack: ``make_stack({"svc": "FROM redis:7-alpine"}, stack_extra="...")``."""

    def write(dockerfiles: dict[str, str], *, toml: str = "", compose: str | None = None, name: str = "stack") -> Path:
        root = tmp_path / name
        for service, text in dockerfiles.items():
            folder = root / "src" / service
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "Dockerfile").write_text(textwrap.dedent(text).lstrip())
        head = '[stack]\nname = "t"\nservices = "src/*/Dockerfile"\n'
        if compose is not None:
            (root / "docker-compose.yml").write_text(textwrap.dedent(compose).lstrip())
            head += 'compose = ["docker-compose.yml"]\n'
        root.mkdir(parents=True, exist_ok=True)
        (root / "stack.toml").write_text(head + textwrap.dedent(toml))
        return root

    return write


def internal_env(engine) -> dict[str, str]:
    return {"AI_INFRA_NETWORK_ENV": "internal", "INTERNAL_REGISTRY": f"{engine.harbor}/{HARBOR_PROJECT}"}


def tags(engine) -> dict[str, str]:
    """Every tag on the daemon → image ID (read through docker-py, independently of reconcile)."""
    api = engine.api()
    try:
        return {t: i["Id"] for i in api.images() for t in (i.get("RepoTags") or []) if t != "<none>:<none>"}
    finally:
        api.close()


def origin(engine, ref: str) -> str | None:
    """Which registry copy a tag points at: the seed label 'hub' or 'harbor'."""
    api = engine.api()
    try:
        return (api.inspect_image(ref)["Config"].get("Labels") or {}).get(harness.LABEL_ORIGIN)
    finally:
        api.close()


def on_terminal(argv: list[str], env: dict[str, str], *, answer: str | None = None, cwd=None) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr; when it asks
    ("Enter a value:"), type ``answer``.  Returns the exit code and everything it showed.
    A child still running after 300 s is killed (code -9), so a hang fails the test."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    seen, answered = b"", False
    deadline = time.monotonic() + 300
    while True:
        if not select.select([master], [], [], max(0.0, deadline - time.monotonic()))[0]:
            proc.kill()
            seen += b"\n[killed by the test after 300 s]"
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if answer is not None and not answered and b"Enter a value:" in seen:
            os.write(master, answer.encode() + b"\n")
            answered = True
    os.close(master)
    return proc.wait(timeout=300), seen.decode(errors="replace")
