"""Interrupts during apply, against the real engine (terraform's contract).

The first SIGINT or SIGTERM is a graceful stop: nothing new starts, what runs may
end, the summary is printed (the ``change_summary`` line with ``--json``), the lock
and its note are released, exit 130; a second SIGINT stops at once.  The next
apply finishes what is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {"AI_INFRA_NETWORK_ENV": "external"}
SLOW = "FROM busybox:1.36\nRUN sleep 2\n"


@pytest.fixture
def slow_stack(make_stack):
    # Three independent builds, one at a time (--parallelism 1): an interrupt during the first leaves two queued.
    return make_stack({"a": SLOW, "b": SLOW, "c": SLOW}, toml='build_network = "none"\n')


def _start(engine, tmp_path: Path, stack: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("AI_INFRA_NETWORK_ENV", "INTERNAL_REGISTRY")}
    env.update(ENV, DOCKER_HOST=engine.docker_host, RECONCILE_CACHE_DIR=str(tmp_path / "cache"), NO_COLOR="1")
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "--parallelism", "1", "-s", str(stack), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(proc: subprocess.Popen, stream, marker: str, seconds: float = 60) -> list[str]:
    """Read ``stream`` line by line until ``marker`` shows (bounded)."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} not seen in {seconds}s: {''.join(seen)}")


def _finish(proc: subprocess.Popen, seconds: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=seconds)
    return proc.returncode, out, err


def _lock_notes(tmp_path: Path) -> list[Path]:
    """The notes beside the per-daemon lock files (who holds it): none once apply has returned."""
    return sorted((tmp_path / "cache" / "locks").glob("*.json"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_first_interrupt_stops_gracefully_with_a_summary_and_exit_130(cli, daemon, slow_stack, tmp_path, sig):
    proc = _start(daemon, tmp_path, slow_stack)
    _wait_for(proc, proc.stderr, "build[a]: building")
    started = time.monotonic()
    proc.send_signal(sig)
    code, out, err = _finish(proc)
    assert code == 130, out + err
    assert time.monotonic() - started < 15  # the running build ends (RUN sleep 2) within the grace period
    assert "interrupted: no new actions start; waiting for 1 running" in err
    assert "build[b]: - not started: interrupted" in err and "build[c]: - not started: interrupted" in err
    assert "Apply interrupted." in out and "2 skipped" in out and "Verify: not run (interrupted)" in out
    assert "Traceback" not in err
    assert _lock_notes(tmp_path) == []  # the lock and its note are released

    # The next apply finishes what is left.
    again = cli("apply", "--auto-approve", "-s", str(slow_stack), env=ENV)
    assert again.code == 0, again.out + again.err
    assert cli("plan", "--detailed-exitcode", "-s", str(slow_stack), env=ENV).code == 0


def test_an_interrupted_json_stream_still_ends_with_its_change_summary(daemon, slow_stack, tmp_path):
    proc = _start(daemon, tmp_path, slow_stack, "--json")
    _wait_for(proc, proc.stdout, '"type":"apply_start"')
    proc.send_signal(signal.SIGTERM)
    code, out, err = _finish(proc)
    assert code == 130, err
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    last = lines[-1]
    assert last["type"] == "change_summary" and last["interrupted"] is True
    assert last["verify"] == {"converged": False, "remaining": [], "checked": False}
    assert last["changes"]["skipped"] >= 1
    warnings = [line["diagnostic"]["summary"] for line in lines if line["type"] == "diagnostic"]
    assert any(w.startswith("interrupted: no new actions start") for w in warnings)


def test_a_second_interrupt_stops_at_once(daemon, make_stack, tmp_path):
    stack = make_stack({"a": "FROM busybox:1.36\nRUN sleep 30\n"}, toml='build_network = "none"\n')
    proc = _start(daemon, tmp_path, stack)
    _wait_for(proc, proc.stderr, "build[a]: building")
    proc.send_signal(signal.SIGINT)
    _wait_for(proc, proc.stderr, "interrupted: no new actions start")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, _, err = _finish(proc, seconds=20)
    assert code == 130
    assert time.monotonic() - started < 5  # not the 30 s the build would take, nor the grace period
    assert err.strip().splitlines()[-1] == "error: interrupted: stopped at once; a later apply finishes what is left"
    assert "Traceback" not in err
    assert _lock_notes(tmp_path) == []
