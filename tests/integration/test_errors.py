"""Bad input of each kind: exit 1, one line saying what, where and what to do,
no traceback, and the daemon untouched."""

from __future__ import annotations

import pytest

from tests.conftest import tags

GOOD_TOML = '[stack]\nname = "t"\nservices = "src/*/Dockerfile"\n'

CASES = {
    # name: (stack.toml, {service: Dockerfile}, extra files, args, env, expected substrings of the one line)
    "unknown stack key": (
        GOOD_TOML + 'colour = "blue"\n',
        {"api": "FROM redis:7-alpine\n"},
        {},
        [],
        {},
        ["stack.toml:4:", "unknown key 'stack.colour'", "remove it"],
    ),
    "wrong type": (
        GOOD_TOML + '[network]\nprobe_timeout = "soon"\n',
        {"api": "FROM redis:7-alpine\n"},
        {},
        [],
        {},
        ["stack.toml:5:", "network.probe_timeout", "fix the value"],
    ),
    "bad network mode in stack": (
        GOOD_TOML + '[network]\nmode = "intranet"\n',
        {"api": "FROM redis:7-alpine\n"},
        {},
        [],
        {},
        ["stack.toml:5:", "network.mode", "'auto', 'internal' or 'external'"],
    ),
    "toml syntax": (
        GOOD_TOML + "images = [\n",
        {"api": "FROM redis:7-alpine\n"},
        {},
        [],
        {},
        ["stack.toml:", "not valid TOML", "fix the syntax"],
    ),
    "invalid reference in Dockerfile": (
        GOOD_TOML,
        {"api": "FROM alpine\nFROM Redis:7\n"},
        {},
        [],
        {},
        ["src/api/Dockerfile:2:", "repository name must be lowercase"],
    ),
    "undefined ARG in FROM": (
        GOOD_TOML,
        {"api": "FROM redis:${REDIS_TAG}\n"},
        {},
        [],
        {},
        ["src/api/Dockerfile:1:", "undefined variable REDIS_TAG", "declare ARG REDIS_TAG"],
    ),
    "unknown build target": (
        GOOD_TOML + '[services.api]\ntarget = "prod"\n',
        {"api": "FROM redis:7-alpine AS dev\n"},
        {},
        [],
        {},
        ["src/api/Dockerfile", "build target 'prod' is not a stage", "use one of: dev"],
    ),
    "compose YAML": (
        GOOD_TOML + 'compose = ["docker-compose.yml"]\n',
        {"api": "FROM redis:7-alpine\n"},
        {"docker-compose.yml": "services:\n  db:\n    image: [postgres\n"},
        [],
        {},
        ["docker-compose.yml:", "not valid YAML"],
    ),
    "bad AI_INFRA_NETWORK_ENV": (
        GOOD_TOML,
        {"api": "FROM redis:7-alpine\n"},
        {},
        [],
        {"AI_INFRA_NETWORK_ENV": "intranet"},
        ["AI_INFRA_NETWORK_ENV='intranet' is not a network mode", "use internal or external"],
    ),
    "bad INTERNAL_REGISTRY": (
        GOOD_TOML,
        {"api": "FROM redis:7-alpine\n"},
        {},
        [],
        {"AI_INFRA_NETWORK_ENV": "internal", "INTERNAL_REGISTRY": "Bad Host/x"},
        ["INTERNAL_REGISTRY:", "invalid registry prefix"],
    ),
    "missing stack file": (
        None,
        {},
        {},
        [],
        {},
        ["stack file", "not found", "--stack"],
    ),
    "usage error": (
        GOOD_TOML,
        {"api": "FROM redis:7-alpine\n"},
        {},
        ["--no-such-flag"],
        {},
        ["No such option: --no-such-flag", "--help"],
    ),
    "unreachable daemon": (
        GOOD_TOML,
        {"api": "FROM redis:7-alpine\n"},
        {},
        [],
        {"DOCKER_HOST": "unix:///tmp/reconcile-no-such.sock", "AI_INFRA_NETWORK_ENV": "external"},
        ["cannot reach the Docker daemon at unix:///tmp/reconcile-no-such.sock", "DOCKER_HOST"],
    ),
}


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_1_with_one_clear_line_and_changes_nothing(cli, daemon, tmp_path, case, command):
    toml, dockerfiles, files, args, env, expected = CASES[case]
    root = tmp_path / "stack"
    root.mkdir()
    if toml is not None:
        (root / "stack.toml").write_text(toml)
    for service, text in dockerfiles.items():
        (root / "src" / service).mkdir(parents=True)
        (root / "src" / service / "Dockerfile").write_text(text)
    for name, text in files.items():
        (root / name).write_text(text)
    listing_before = sorted(p.name for p in root.rglob("*"))
    daemon_before = tags(daemon)

    extra = ["--auto-approve"] if command == "apply" else []
    result = cli(command, *extra, *args, cwd=root, env={"AI_INFRA_NETWORK_ENV": "external", **env})

    assert result.code == 1, result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    for part in expected:
        assert part in lines[0]
    assert "Traceback" not in result.out + result.err
    assert tags(daemon) == daemon_before
    assert sorted(p.name for p in root.rglob("*")) == listing_before


def test_detailed_exitcode_is_2_only_with_changes_and_plain_plan_is_0(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    env = {"AI_INFRA_NETWORK_ENV": "external"}
    assert cli("plan", "-s", str(stack), env=env).code == 0
    assert cli("plan", "--detailed-exitcode", "-s", str(stack), env=env).code == 2


def test_help_and_schema_work_without_a_daemon(cli, tmp_path):
    env = {"DOCKER_HOST": "unix:///tmp/reconcile-no-such.sock"}
    assert cli("--help", env=env).code == 0
    schema = cli("schema", env=env)
    assert schema.code == 0
    assert set(schema.json()["properties"]) == {"stack", "network", "services", "templates", "files"}
