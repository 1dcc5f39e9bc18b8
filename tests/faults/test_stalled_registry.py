"""A registry that stops sending mid-pull must never hang apply.

A second private daemon (its own containerd and dockerd, the suite's registries)
has as its Docker Hub mirror a loopback proxy in front of the hub registry.  The
proxy forwards the first bytes the registry sends on each connection and then
goes silent with the connection open, as a wedged registry or middlebox does;
or it trickles everything, as a slow link does, which must not count as a stall.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reconciler.engine import Engine
from reconciler.errors import EngineError
from reconciler.refs import parse
from tests import harness

IMAGE = "busybox:1.36"  # seeded on the hub registry by the engine fixture; one ~1 MiB layer
STALL_TIMEOUT = 2
BUDGET = 64 * 1024  # what the stalling proxy forwards per connection: the manifest and config, not the layer
WAIT = 0.2  # the proxy's longest single wait, so it notices closing at once
# Three attempts of (stall + 2 s), retry pauses of 1 s and 2 s, process start: about 10 s.
APPLY_BOUND = 30.0


class FaultyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (``host:port``).

    ``mode`` (read when a connection opens): ``pass`` forwards everything;
    ``stall`` forwards the first ``budget`` bytes the registry sends on the
    connection, then nothing while keeping it open; ``cut`` forwards them and then
    closes the connection, as a registry killed mid-pull does; ``slow`` forwards
    everything, ``trickle`` bytes at most every ``pause`` seconds.
    """

    def __init__(self, upstream: str, *, budget: int = BUDGET, trickle: int = 160 * 1024, pause: float = 1.0):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.budget, self.trickle, self.pause = budget, trickle, pause
        self.mode = "pass"
        self.stalled = 0  # connections that hit the budget and went silent
        self.longest_pause = 0.0  # slow mode: the longest gap between two forwarded pieces
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(WAIT)
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._start(self._accept)

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=f"proxy-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._start(self._relay, client, self.mode)

    def _relay(self, client: socket.socket, mode: str) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        client.settimeout(10)  # bounds sendall to a daemon that stopped reading
        pending = bytearray()
        forwarded, silent, upstream_done, next_send, last_send = 0, False, False, 0.0, None
        try:
            with client, upstream:
                while not self._closing.is_set():
                    watched = [client] if upstream_done else [client, upstream]
                    readable, _, _ = select.select(watched, [], [], WAIT)
                    for sock in readable:
                        data = sock.recv(65536)
                        if sock is client:
                            if not data:
                                return  # the daemon hung up (a cancelled pull): close both
                            upstream.sendall(data)
                        elif data:
                            pending += data
                        else:
                            upstream_done = True  # a silent proxy keeps the daemon's side open
                    if mode == "cut" and forwarded + len(pending) > self.budget:
                        client.sendall(bytes(pending[: max(0, self.budget - forwarded)]))
                        with self._lock:
                            self.stalled += 1
                        return  # both sockets close: the registry is gone mid-response
                    if mode == "stall" and forwarded + len(pending) > self.budget and not silent:
                        silent = True
                        with self._lock:
                            self.stalled += 1
                    now = time.monotonic()
                    if mode == "slow" and now < next_send:
                        continue
                    size = {"stall": max(0, self.budget - forwarded), "slow": self.trickle}.get(mode, len(pending))
                    piece = bytes(pending[:size])
                    del pending[: len(pending) if silent else len(piece)]  # past the budget: dropped
                    if piece:
                        client.sendall(piece)
                        forwarded += len(piece)
                        if mode == "slow":
                            if last_send is not None:
                                self.longest_pause = max(self.longest_pause, now - last_send)
                            last_send, next_send = now, now + self.pause
                    if upstream_done and not pending and not silent:
                        return
        except OSError:
            pass  # a reset connection ends the relay like a closed one

    def reset(self, mode: str, *, budget: int = BUDGET) -> None:
        with self._lock:
            self.mode, self.budget, self.stalled, self.longest_pause = mode, budget, 0, 0.0

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=15)


@pytest.fixture(scope="module")
def faulty(engine):
    """(the second daemon, the proxy that is its Docker Hub mirror)."""
    proxy = FaultyProxy(engine.hub)
    root = f"{engine.root}-faults"
    daemon = dataclasses.replace(
        engine, root=root, docker_host=f"unix://{root}/docker.sock", mirror=f"http://{proxy.address}"
    )
    harness.down(daemon)  # one left by an interrupted run has another proxy as its mirror
    try:
        harness.ensure_up(daemon)
        yield daemon, proxy
    finally:
        harness.down(daemon)
        proxy.close()


@pytest.fixture
def stack(tmp_path) -> Path:
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "stack.toml").write_text(
        f'[stack]\nname = "faults"\nimages = ["{IMAGE}"]\n\n[network]\nstall_timeout = {STALL_TIMEOUT}\n'
    )
    return folder


def _apply(daemon, stack: Path, cache: Path) -> tuple[subprocess.CompletedProcess, float, list[dict]]:
    env = {k: v for k, v in os.environ.items() if k not in ("INTERNAL_REGISTRY", "RECONCILE_STACK")}
    env.update(
        DOCKER_HOST=daemon.docker_host, RECONCILE_CACHE_DIR=str(cache), AI_INFRA_NETWORK_ENV="external", NO_COLOR="1"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "--json", "-s", str(stack)],
        capture_output=True,
        text=True,
        env=env,
        timeout=2 * APPLY_BOUND,  # past that the test fails instead of hanging with the bug
    )
    took = time.monotonic() - started
    return proc, took, [json.loads(line) for line in proc.stdout.splitlines()]


def _ended(lines: list[dict], address: str) -> dict:
    (hook,) = [
        line["hook"]
        for line in lines
        if line["type"] in ("apply_complete", "apply_errored") and line["hook"]["address"] == address
    ]
    return hook


def _retries(lines: list[dict], address: str) -> list[str]:
    return [
        line["hook"]["event"]["status"]
        for line in lines
        if line["type"] == "apply_progress"
        and line["hook"]["address"] == address
        and "retrying" in line["hook"]["event"].get("status", "")
    ]


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _cancelled_pulls(daemon) -> int:
    """How many pulls the daemon gave up because its client went away (its log says so)."""
    log = Path(daemon.root, "dockerd.log").read_text(errors="replace")
    return log.count("Not continuing with pull after error: context canceled")


def test_apply_fails_a_stalled_pull_within_its_bound_and_releases_the_lock(faulty, stack, tmp_path):
    daemon, proxy = faulty
    harness.reset_images(daemon)
    proxy.reset("stall")
    cancelled = _cancelled_pulls(daemon)
    result, took, lines = _apply(daemon, stack, tmp_path / "cache")
    print(f"stalled apply failed after {took:.1f} s")  # shown with -s; the report's measurement

    assert result.returncode == 1, result.stderr
    assert took < APPLY_BOUND
    pull = _ended(lines, f"pull[{IMAGE}]")
    assert pull["status"] == "failed"
    assert pull["message"] == f"pull {IMAGE} failed (after 3 attempts)"
    assert f"no progress for {STALL_TIMEOUT} s pulling {IMAGE}" in pull["error"]
    assert _retries(lines, f"pull[{IMAGE}]") == ["attempt 1 failed, retrying", "attempt 2 failed, retrying"]
    assert _ended(lines, f"tag[localhost/{IMAGE}]")["status"] == "skipped"
    assert proxy.stalled >= 3  # every attempt really met the silent registry
    # Each attempt dropped its stream, and so the daemon cancelled that pull.
    assert _wait_until(lambda: _cancelled_pulls(daemon) - cancelled == 3, timeout=5)

    # The lock went with the process: an apply started at once (no --lock-timeout) runs.
    proxy.reset("pass")
    again, _, lines = _apply(daemon, stack, tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    assert _ended(lines, f"pull[{IMAGE}]")["status"] == "succeeded"


def test_a_slow_registry_that_keeps_sending_is_not_a_stall(faulty, stack, tmp_path):
    daemon, proxy = faulty
    harness.reset_images(daemon)
    proxy.reset("slow")
    result, took, lines = _apply(daemon, stack, tmp_path / "cache")

    assert result.returncode == 0, result.stderr
    assert _ended(lines, f"pull[{IMAGE}]")["status"] == "succeeded"
    assert _retries(lines, f"pull[{IMAGE}]") == []
    # Slower overall than the stall timeout, with no gap as long as it.
    print(f"slow pull took {took:.1f} s, longest pause {proxy.longest_pause:.2f} s")
    assert took > 2 * STALL_TIMEOUT
    assert 0 < proxy.longest_pause < STALL_TIMEOUT


@pytest.mark.parametrize("budget", [0, BUDGET], ids=["before-the-daemon-answers", "mid-layer"])
def test_a_stalled_pull_raises_in_the_calling_thread_and_leaves_no_thread_behind(faulty, budget):
    daemon, proxy = faulty
    harness.reset_images(daemon)
    proxy.reset("stall", budget=budget)
    before = set(threading.enumerate())
    engine = Engine(daemon.docker_host, stall_timeout=1)
    started = time.monotonic()
    with pytest.raises(EngineError) as info:
        engine.pull(parse(IMAGE))
    took = time.monotonic() - started

    assert str(info.value).startswith(f"no progress for 1 s pulling {IMAGE}; ")
    assert "\n" not in str(info.value)
    assert took < 1 + 5  # the stall timeout, and time to spare for a loaded machine
    left = [t for t in set(threading.enumerate()) - before if not t.name.startswith("proxy-")]
    assert left == []
