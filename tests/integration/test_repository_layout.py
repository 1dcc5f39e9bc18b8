"""A repository taken as it is (tests/stacks/matrix, laid out like the ai-infra-matrix
repository `build.sh build-all` builds), against the real engine.

Dockerfiles and the compose file are rendered from templates filled from .env, every
service builds with the repository root as context, .env keys are build args, a fixture
folder under src/ is excluded, a compose build section is a service, and only
.env.example exists at first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.refs import parse
from tests import harness, seeding
from tests.conftest import tags
from tests.integration.test_builds import apply_json, four_steps, plan_json, read, reasons

MATRIX = Path(__file__).parent.parent / "stacks" / "matrix"
ENV = {"AI_INFRA_NETWORK_ENV": "external"}
SERVICES = ["backend", "gitea", "nginx", "singleuser", "worker"]


@pytest.fixture
def matrix(engine, tmp_path) -> Path:
    root = tmp_path / "matrix"
    shutil.copytree(MATRIX, root)
    seeding.seed_stack(engine, str(root))
    harness.seed(engine, seeding.targets_for(engine, [parse("gitea/gitea:1.22.4")]))  # the version bump below
    return root


def _env(root: Path, **changes: str) -> None:
    """What build.sh did: .env from .env.example, with some keys changed."""
    lines = []
    for line in (root / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={changes[key]}" if key in changes else line)
    (root / ".env").write_text("\n".join(lines) + "\n")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_first_plan_is_exact_before_any_file_exists_and_apply_converges(cli, daemon, matrix):
    before = _files(matrix)
    first, done = four_steps(cli, matrix, env=ENV)
    planned = reasons(first)
    # Every base image the rendered files use, from Dockerfiles (through .env-decided ARGs) and compose.
    assert [a for a, _ in planned if a.startswith("pull[")] == [
        "pull[busybox:1.36]",
        "pull[chrislusf/seaweedfs:3.80]",
        "pull[gitea/gitea:1.22.3]",
        "pull[nginx:stable]",
        "pull[redis:7-alpine]",
    ]
    assert [a for a, _ in planned if a.startswith("write[")] == [
        "write[src/backend/Dockerfile]",
        "write[src/gitea/Dockerfile]",
        "write[docker-compose.yml]",
    ]
    assert sorted(a for a, _ in planned if a.startswith("build[")) == [f"build[{s}]" for s in SERVICES]
    assert not any("test-fixture" in a or "does-not-exist" in a for a, _ in planned)
    # plan wrote nothing; apply wrote exactly the three rendered files.
    after = _files(matrix)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(set(after) - set(before)) == ["docker-compose.yml", "src/backend/Dockerfile", "src/gitea/Dockerfile"]
    assert b"FROM gitea/gitea:${GITEA_VERSION}" in after["src/gitea/Dockerfile"]
    assert b"ARG GITEA_VERSION=1.22.3" in after["src/gitea/Dockerfile"]
    assert b"image: chrislusf/seaweedfs:3.80" in after["docker-compose.yml"]
    # The builds used the root context and the .env values.
    images = tags(daemon)
    for service in SERVICES:
        assert f"ai-infra-{service}:v1" in images
    assert read(daemon, "ai-infra-backend:v1", "/etc/backend/message") == "hello\n"
    assert read(daemon, "ai-infra-gitea:v1", "/usr/local/bin/gitea-entrypoint.sh").startswith("#!/bin/sh")
    assert read(daemon, "ai-infra-worker:v1", "/opt/worker/run.sh") == "work\n"
    # worker-cpu and worker-gpu build one image with one definition: one build.
    assert done.outcomes["build[worker]"]["status"] == "succeeded"


def test_changing_one_env_key_rebuilds_exactly_the_services_that_use_it(cli, daemon, matrix):
    four_steps(cli, matrix, env=ENV)
    ids = tags(daemon)

    _env(matrix, UNUSED_SETTING="changed")  # declared by no Dockerfile: nothing to do
    assert plan_json(cli, matrix, env=ENV)["actions"] == []

    _env(matrix, APP_MESSAGE="goodbye")  # a declared ARG of backend only
    plan = plan_json(cli, matrix, env=ENV)
    assert reasons(plan) == [("build[backend]", "inputs-changed")]
    assert plan["actions"][0]["detail"] == "build args changed: APP_MESSAGE"
    done = apply_json(cli, matrix, env=ENV)
    assert done.code == 0 and done.verify == {"converged": True, "remaining": []}, done.out + done.err
    assert read(daemon, "ai-infra-backend:v1", "/etc/backend/message") == "goodbye\n"

    _env(matrix, APP_MESSAGE="goodbye", GITEA_VERSION="1.22.4")  # decides gitea's FROM through its ARG
    plan = plan_json(cli, matrix, env=ENV)
    assert reasons(plan) == [
        ("pull[gitea/gitea:1.22.4]", "missing"),
        ("tag[localhost/gitea/gitea:1.22.4]", "missing"),
        ("write[src/gitea/Dockerfile]", "content-changed"),
        ("build[gitea]", "inputs-changed"),
    ]
    done = apply_json(cli, matrix, env=ENV)
    assert done.code == 0 and done.verify == {"converged": True, "remaining": []}, done.out + done.err
    now = tags(daemon)
    changed = sorted(t for t in now if t.startswith("ai-infra-") and now[t] != ids.get(t))
    assert changed == ["ai-infra-backend:v1", "ai-infra-gitea:v1"]
    assert plan_json(cli, matrix, env=ENV)["actions"] == []


def test_a_heredoc_without_a_syntax_line_is_a_plan_warning_on_an_old_daemon(cli, daemon, make_stack):
    # This engine is Docker 20.10 (API 1.41): its built-in Dockerfile frontend predates heredocs.
    stack = make_stack({"tool": "FROM busybox:1.36\nRUN <<EOF\necho hi\nEOF\n"}, toml='build_network = "none"\n')
    result = cli("plan", "-s", str(stack), env=ENV)
    assert result.code == 0, result.err
    assert "src/tool/Dockerfile:2: a heredoc needs Dockerfile frontend 1.4" in result.err  # warnings: stderr
    assert "add `# syntax=docker/dockerfile:1`" in result.err
    (stack / "src/tool/Dockerfile").write_text("# syntax=docker/dockerfile:1\nFROM busybox:1.36\nRUN <<EOF\nx\nEOF\n")
    assert "heredoc" not in cli("plan", "-s", str(stack), env=ENV).err


def test_a_copy_source_missing_from_the_context_is_a_plan_error(cli, daemon, make_stack):
    stack = make_stack({"app": "FROM busybox:1.36\nCOPY conf/app.conf /etc/app.conf\n"})
    (stack / "src/app/conf").mkdir()
    (stack / "src/app/conf/app.conf").write_text("x\n")
    (stack / "src/app/.dockerignore").write_text("conf/app.conf\n")
    result = cli("plan", "-s", str(stack), env=ENV)
    assert result.code == 1
    (line,) = result.err.splitlines()
    assert line == (
        "error: src/app/Dockerfile:2: COPY source 'conf/app.conf' matches nothing in the build context src/app "
        "(after .dockerignore); fix the path (relative to the context), the service's context, or .dockerignore"
    )
