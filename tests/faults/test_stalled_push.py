"""A registry that stops answering mid-push must never hang apply.

The internal registry is reached through the stalling proxy of test_stalled_registry, in
front of the Harbor stand-in: it forwards the registry's first bytes on each connection and
then goes silent with the connection open.  The daemon's push then sends no progress, and
each wait for the next line is bounded by ``stall_timeout``.
"""

from __future__ import annotations

import threading
import time

import pytest

from reconciler.engine import Engine
from reconciler.errors import EngineError
from reconciler.refs import parse
from tests.faults.test_stalled_registry import STALL_TIMEOUT, FaultyProxy

IMAGE = "busybox:1.36"  # seeded on the hub registry by the engine fixture


@pytest.fixture
def harbor_proxy(daemon):
    proxy = FaultyProxy(daemon.harbor)
    api = daemon.api()
    try:
        for line in api.pull("busybox", tag="1.36", stream=True, decode=True):
            assert "error" not in line
    finally:
        api.close()
    try:
        yield proxy
    finally:
        proxy.close()


def _ours() -> int:
    """Threads of this process but the proxy's own relays."""
    return sum(1 for thread in threading.enumerate() if not thread.name.startswith("proxy-"))


def test_a_stalled_push_fails_within_its_bound_in_the_calling_thread(daemon, harbor_proxy):
    harbor_proxy.reset("stall", budget=0)  # the registry never answers past the connection
    engine = Engine(daemon.docker_host, stall_timeout=STALL_TIMEOUT)
    target = parse(f"{harbor_proxy.address}/stalled/busybox:1.36")
    before = _ours()
    started = time.monotonic()
    with pytest.raises(EngineError) as failed:
        engine.push(parse(IMAGE), target)
    took = time.monotonic() - started
    assert f"no progress for {STALL_TIMEOUT} s pushing {target}" in str(failed.value)
    assert took < 4 * STALL_TIMEOUT + 5, took
    assert harbor_proxy.stalled >= 1
    assert _ours() <= before  # nothing left waiting on the stream
    # The connection was dropped with the stream: this thread's next request gets a new client.
    assert engine.list_containers() == []


def test_a_push_through_a_registry_that_answers_succeeds(daemon, harbor_proxy):
    harbor_proxy.reset("pass")
    engine = Engine(daemon.docker_host, stall_timeout=STALL_TIMEOUT)
    digest = engine.push(parse(IMAGE), parse(f"{harbor_proxy.address}/passing/busybox:1.36"))
    assert digest.startswith("sha256:")
    assert engine.distribution_digest(parse(f"{daemon.harbor}/passing/busybox:1.36")) == digest
