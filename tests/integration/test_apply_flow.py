"""Apply's confirmation on a terminal and its retries, against the real engine."""

from __future__ import annotations

import os
import socket
import sys

from tests.conftest import on_terminal, tags


def _on_terminal(engine, stack, answer: str, cache) -> tuple[int, str]:
    """Run `reconcile apply` on a pseudo-terminal and type ``answer`` at its question."""
    env = {k: v for k, v in os.environ.items() if k not in ("AI_INFRA_NETWORK_ENV", "INTERNAL_REGISTRY")}
    env.update(DOCKER_HOST=engine.docker_host, AI_INFRA_NETWORK_ENV="external", RECONCILE_CACHE_DIR=str(cache))
    return on_terminal([sys.executable, "-m", "reconciler", "apply", "-s", str(stack)], env, answer=answer)


def test_on_a_terminal_apply_asks_and_only_yes_applies(daemon, make_stack, tmp_path):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    code, screen = _on_terminal(daemon, stack, "no", tmp_path / "cache")
    assert code == 1 and "apply cancelled" in screen
    assert tags(daemon) == {}

    code, screen = _on_terminal(daemon, stack, "yes", tmp_path / "cache")
    assert code == 0, screen
    assert "Apply complete! 1 pulled, 1 tagged, 0 written, 1 built" in screen
    assert tags(daemon)["localhost/redis:7-alpine"] == tags(daemon)["redis:7-alpine"]


def test_an_unreachable_registry_is_tried_three_times_then_reported(cli, daemon, make_stack):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    env = {"AI_INFRA_NETWORK_ENV": "internal", "INTERNAL_REGISTRY": f"{dead}/aihpc"}

    result = cli("apply", "--auto-approve", "--json", "-s", str(stack), env=env)
    assert result.code == 1
    done = result.stream()
    pull = done.outcomes[0]
    assert pull["status"] == "failed"
    assert pull["message"] == f"pull {dead}/aihpc/redis:7-alpine failed (after 3 attempts)"
    assert "connection refused" in pull["error"]
    retries = [e["status"] for e in done.progress(pull["address"]) if "error" in e]
    assert retries == ["attempt 1 failed, retrying", "attempt 2 failed, retrying"]
    assert tags(daemon) == {}
