"""The daemon lost while apply verifies: the outcomes and summary are still reported,
then the one error line; exit 1.  A unix-socket proxy in front of the private daemon
cuts every connection from the verifying read on (the second ``GET /images/json``)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from tests.conftest import tags

ENV = {"AI_INFRA_NETWORK_ENV": "external"}
MARKER = b"/images/json"


class CuttingProxy:
    """Forwards a unix socket to the daemon's; from the ``cut_at``-th image list on, closes the connection."""

    def __init__(self, path: Path, upstream: str, cut_at: int):
        self.path, self.upstream, self.cut_at = path, upstream, cut_at
        self.lists = 0
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(16)
        self.server.settimeout(0.5)
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if requests and MARKER in chunk:
                    with self.lock:
                        self.lists += chunk.count(MARKER)
                        cut = self.lists >= self.cut_at
                    if cut:
                        break
                sink.sendall(chunk)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.stopped.set()
        self.server.close()


@pytest.fixture
def proxy(daemon, tmp_path):
    # The apply below reads the image list twice: to plan, then to verify. Only tags are planned.
    started = CuttingProxy(tmp_path / "d.sock", daemon.docker_host.removeprefix("unix://"), cut_at=2)
    yield started
    started.close()


@pytest.mark.parametrize("json_", [False, True])
def test_the_outcomes_are_reported_before_the_verify_error(cli, daemon, make_stack, proxy, json_):
    stack = make_stack({"app": "FROM busybox:1.36\n"})
    assert cli("apply", "--auto-approve", "-s", str(stack), env=ENV).code == 0
    api = daemon.api()
    api.remove_image("localhost/busybox:1.36")  # one alias to put back: a tag, no pull, no build
    api.close()

    args = ["apply", "--auto-approve", "-s", str(stack), *(["--json"] if json_ else [])]
    result = cli(*args, env={**ENV, "DOCKER_HOST": f"unix://{proxy.path}"})
    assert result.code == 1, result.out + result.err
    assert "localhost/busybox:1.36" in tags(daemon)  # the tag was made before the daemon was lost
    assert result.err.strip().splitlines()[-1].startswith("error: verify: cannot reach the Docker daemon")
    assert "Traceback" not in result.err
    if json_:
        last = json.loads(result.out.splitlines()[-1])
        assert last["type"] == "change_summary" and last["changes"]["tagged"] == 1
        assert last["verify"]["checked"] is False and "cannot reach the Docker daemon" in last["verify"]["error"]
    else:
        assert "1 tagged" in result.out and "Verify: not run: the daemon could not be read again" in result.out
