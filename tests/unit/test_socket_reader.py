"""The engine's standard-library reader against peers that misbehave: a daemon that answers
too slowly or cuts its answer, and a socket that is no Docker daemon.  (Its answers from a
real daemon are compared with docker-py's in tests/integration/test_engine_reads.py.)"""

from __future__ import annotations

import json
import socket
import threading
import types

import pytest

from reconciler import engine
from reconciler.errors import EngineError


@pytest.fixture
def peer(tmp_path):
    """A unix socket at ``tmp_path/peer.sock`` answering each request with ``peer.answer(request)``
    (bytes, or None to stay silent); ``peer.requests`` keeps what it received."""
    path = tmp_path / "peer.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)

    Peer = types.SimpleNamespace(answer=lambda request: None, requests=[], socket=str(path))

    stop = threading.Event()

    def reply(conn):
        with conn:
            request = conn.recv(65536)
            Peer.requests.append(request)
            answer = Peer.answer(request)
            if answer is None:
                stop.wait(5)
            else:
                conn.sendall(answer)

    def serve():  # each connection on its own thread: one left unanswered holds up no other
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=reply, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield Peer
    stop.set()
    server.close()


def _http(status: str, body: object, headers: str = "") -> bytes:
    data = json.dumps(body).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}Content-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


PING = b"HTTP/1.1 200 OK\r\nAPI-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK"


def test_the_api_version_comes_from_ping_and_every_read_uses_it(peer):
    peer.answer = lambda request: PING if b"/_ping" in request else _http("200 OK", [])
    assert engine.Engine(f"unix://{peer.socket}", timeout=1).list_images() == []
    assert [r.split(b"\r\n")[0] for r in peer.requests] == [b"GET /_ping HTTP/1.1", b"GET /v1.41/images/json HTTP/1.1"]


@pytest.mark.parametrize(
    "ping",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",  # no API-Version header
        b"HTTP/1.1 200 OK\r\nAPI-Version: 1.41\r\nAPI-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK",  # sent twice
        b"HTTP/1.1 200 OK\r\nAPI-Version: 2\r\nContent-Length: 2\r\n\r\nOK",  # not a Docker API version
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",  # a proxy that does not pass /_ping
        b"",  # closed without an answer
        None,  # no answer at all
    ],
)
def test_a_ping_that_gives_no_usable_version_falls_back_to_get_version(peer, ping):
    def answer(request):
        if b"/_ping" in request:
            return ping
        return _http("200 OK", {"ApiVersion": "1.40"} if b"GET /version" in request else [])

    peer.answer = answer
    assert engine.Engine(f"unix://{peer.socket}", timeout=1).list_images() == []
    assert peer.requests[-1].startswith(b"GET /v1.40/images/json ")


def test_a_version_that_is_no_api_version_is_no_docker_daemon(peer):
    peer.answer = lambda request: _http("200 OK", {"ApiVersion": "1.41/../x"})
    with pytest.raises(EngineError, match=r"does not answer as a Docker daemon"):
        engine.Engine(f"unix://{peer.socket}", timeout=1)


def test_a_daemon_that_answers_too_slowly_is_a_failed_read_not_an_unreachable_daemon(peer):
    peer.answer = lambda request: PING if b"/_ping" in request else None
    reader = engine.Engine(f"unix://{peer.socket}", timeout=1)
    with pytest.raises(EngineError) as caught:
        reader.list_images()
    assert str(caught.value).startswith("list images failed: timed out")


def test_an_answer_cut_short_is_a_failed_read(peer):
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{"
    peer.answer = lambda request: PING if b"/_ping" in request else cut
    with pytest.raises(EngineError, match=r"^list images failed: "):
        engine.Engine(f"unix://{peer.socket}", timeout=1).list_images()


def test_a_socket_that_is_no_docker_daemon_says_so(peer):
    peer.answer = lambda request: _http("200 OK", {})
    with pytest.raises(EngineError, match=r"does not answer as a Docker daemon"):
        engine.Engine(f"unix://{peer.socket}", timeout=1)


def test_reads_send_the_docker_config_http_headers_as_docker_py_does(peer, tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"HttpHeaders": {"X-Meta-Team": "infra"}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    peer.answer = lambda request: PING if b"/_ping" in request else _http("200 OK", [])
    assert engine.Engine(f"unix://{peer.socket}", timeout=1).list_images() == []
    assert all(b"X-Meta-Team: infra\r\n" in r and b"User-Agent: reconcile/" in r for r in peer.requests)


@pytest.mark.parametrize(
    "host, options, path",
    [
        ("unix:///run/docker.sock", {}, "/run/docker.sock"),
        ("unix://", {}, None),  # the default socket, as docker-py reads it
        ("unix:///run/docker.sock/", {}, None),
        ("unix://run/docker.sock", {}, None),
        ("unix:///run/docker.sock", {"tls": True}, None),
        ("tcp://127.0.0.1:2375", {}, None),
        ("ssh://deploy@node-07", {"use_ssh_client": True}, None),
    ],
)
def test_only_a_plain_absolute_socket_path_is_read_without_docker_py(host, options, path):
    assert engine._plain_socket(host, options) == path
