"""remote_digest asks a real HTTP server that behaves like a Docker Registry v2."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.errors import EngineError, NotFoundError
from reconciler.refs import parse
from reconciler.registry import MANIFEST_TYPES, manifest_url, remote_digest

# Odd spacing on purpose: the fallback digest must be of these exact bytes.
MANIFEST = b'{"schemaVersion": 2,\n  "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}\n'
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
HEADER_DIGEST = "sha256:" + "ab" * 32  # differs from the body's, to show which one was used
TOKEN = "t0ken"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeRegistry(ThreadingHTTPServer):
    """Serves ``manifests`` ({"team/app:1": body}); optionally demands a token
    (from /token, given ``credentials``) or Basic auth; logs every request."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RegistryHandler)
        self.host = f"127.0.0.1:{self.server_port}"
        self.manifests: dict[str, bytes] = {}
        self.send_digest = True
        self.auth: str | None = None  # None, "bearer" or "basic"
        self.credentials: str | None = None  # "user:password" the auth check wants
        self.token_field = "token"
        self.challenge_scope = True  # False: the client must derive the scope itself
        self.status: int | None = None  # force an answer for manifest requests
        self.log: list[tuple[str, str, dict]] = []


class RegistryHandler(BaseHTTPRequestHandler):
    server: FakeRegistry

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._manifest(body=False)

    def do_GET(self):
        if self.path.startswith("/token"):
            self._token()
        else:
            self._manifest(body=True)

    def _answer(self, status, body=b"", headers=None, send_body=True):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _basic_ok(self):
        return self.headers.get("Authorization") == f"Basic {b64(self.server.credentials or '')}"

    def _token(self):
        query = parse_qs(urlsplit(self.path).query)
        self.server.log.append(("GET", self.path, dict(self.headers)))
        if not self._basic_ok():
            return self._answer(
                401, json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]}).encode()
            )
        scopes = {f"repository:{key.rpartition(':')[0]}:pull" for key in self.server.manifests}
        if query.get("service") != ["fake"] or query.get("scope", [None])[0] not in scopes:
            return self._answer(400)
        self._answer(200, json.dumps({self.server.token_field: TOKEN}).encode())

    def _manifest(self, body):
        self.server.log.append((self.command, self.path, dict(self.headers)))
        name, _, reference = self.path.removeprefix("/v2/").rpartition("/manifests/")
        send = dict(send_body=body)
        if self.server.auth == "bearer" and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = f'Bearer realm="http://{self.server.host}/token",service="fake"'
            if self.server.challenge_scope:
                challenge += f',scope="repository:{name}:pull"'
            return self._answer(401, headers={"WWW-Authenticate": challenge}, **send)
        if self.server.auth == "basic" and not self._basic_ok():
            return self._answer(401, headers={"WWW-Authenticate": 'Basic realm="fake"'}, **send)
        if self.server.status:
            return self._answer(self.server.status, **send)
        manifest = self.server.manifests.get(f"{name}:{reference}")
        if manifest is None:
            return self._answer(404, json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN"}]}).encode(), **send)
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if self.server.send_digest:
            headers["Docker-Content-Digest"] = HEADER_DIGEST
        self._answer(200, manifest, headers, **send)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    # No credentials of whoever runs the tests.
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    # As in the integration harness: a proxy that answers nothing.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def registry():
    server = FakeRegistry()
    server.manifests["team/app:1"] = MANIFEST
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def docker_config(tmp_path):
    def write(auths):
        (tmp_path / "config.json").write_text(json.dumps({"auths": auths}))
        return tmp_path / "config.json"

    return write


def manifest_requests(registry):
    return [(method, path) for method, path, _ in registry.log if "/manifests/" in path]


def test_digest_comes_from_the_header_of_a_head_request(registry):
    assert remote_digest(parse(f"{registry.host}/team/app:1")) == HEADER_DIGEST
    assert manifest_requests(registry) == [("HEAD", "/v2/team/app/manifests/1")]


def test_accept_header_asks_for_all_four_manifest_types(registry):
    remote_digest(parse(f"{registry.host}/team/app:1"))
    accept = [t.strip() for t in registry.log[0][2]["Accept"].split(",")]
    assert set(MANIFEST_TYPES) <= set(accept)
    assert "application/vnd.docker.distribution.manifest.list.v2+json" in accept
    assert "application/vnd.oci.image.index.v1+json" in accept


def test_without_digest_header_falls_back_to_get_and_hashes_the_exact_body(registry):
    registry.send_digest = False
    assert remote_digest(parse(f"{registry.host}/team/app:1")) == MANIFEST_DIGEST
    assert manifest_requests(registry) == [("HEAD", "/v2/team/app/manifests/1"), ("GET", "/v2/team/app/manifests/1")]
    assert set(MANIFEST_TYPES) <= {t.strip() for t in registry.log[1][2]["Accept"].split(",")}


def test_digest_reference_asks_for_the_digest(registry):
    registry.manifests[f"team/app:{HEADER_DIGEST}"] = MANIFEST
    assert remote_digest(parse(f"{registry.host}/team/app@{HEADER_DIGEST}")) == HEADER_DIGEST
    assert manifest_requests(registry) == [("HEAD", f"/v2/team/app/manifests/{HEADER_DIGEST}")]


def test_unknown_tag_raises_not_found_naming_the_image(registry):
    with pytest.raises(NotFoundError) as info:
        remote_digest(parse(f"{registry.host}/team/app:2"))
    assert f"{registry.host}/team/app:2" in str(info.value)
    assert "404" in str(info.value)


def test_server_error_raises_engine_error_not_not_found(registry):
    registry.status = 500
    with pytest.raises(EngineError) as info:
        remote_digest(parse(f"{registry.host}/team/app:1"))
    assert not isinstance(info.value, NotFoundError)
    assert "HTTP 500" in str(info.value) and "\n" not in str(info.value)


def test_docker_hub_official_image_goes_to_library_path_on_the_mirror(registry):
    registry.manifests["library/redis:7"] = MANIFEST
    assert remote_digest(parse("redis:7"), mirrors={"docker.io": registry.host}) == HEADER_DIGEST
    assert remote_digest(parse("redis:7"), mirrors={"docker.io": f"http://{registry.host}/"}) == HEADER_DIGEST
    assert manifest_requests(registry) == [("HEAD", "/v2/library/redis/manifests/7")] * 2


def test_bearer_challenge_gets_a_token_with_credentials_from_docker_config(registry, docker_config):
    registry.auth = "bearer"
    registry.credentials = "alice:s3cret"
    config = docker_config({registry.host: {"auth": b64("alice:s3cret")}})
    assert remote_digest(parse(f"{registry.host}/team/app:1"), docker_config=config) == HEADER_DIGEST
    methods = [(method, urlsplit(path).path) for method, path, _ in registry.log]
    assert methods == [("HEAD", "/v2/team/app/manifests/1"), ("GET", "/token"), ("HEAD", "/v2/team/app/manifests/1")]
    assert registry.log[2][2]["Authorization"] == f"Bearer {TOKEN}"


def test_bearer_token_may_come_as_access_token(registry, docker_config):
    registry.auth, registry.credentials, registry.token_field = "bearer", "alice:s3cret", "access_token"
    config = docker_config({f"http://{registry.host}": {"username": "alice", "password": "s3cret"}})
    assert remote_digest(parse(f"{registry.host}/team/app:1"), docker_config=config) == HEADER_DIGEST


def test_bearer_challenge_without_scope_asks_for_pull_on_the_repository(registry, docker_config):
    registry.auth, registry.credentials, registry.challenge_scope = "bearer", "alice:s3cret", False
    config = docker_config({registry.host: {"auth": b64("alice:s3cret")}})
    assert remote_digest(parse(f"{registry.host}/team/app:1"), docker_config=config) == HEADER_DIGEST
    token_query = parse_qs(urlsplit(registry.log[1][1]).query)
    assert token_query == {"scope": ["repository:team/app:pull"], "service": ["fake"]}


def test_docker_hub_credentials_are_found_under_the_index_v1_key(registry, docker_config, monkeypatch):
    registry.manifests["library/redis:7"] = MANIFEST
    registry.auth, registry.credentials = "bearer", "hubuser:hubpass"
    config = docker_config({"https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass")}})
    monkeypatch.setenv("DOCKER_CONFIG", str(config.parent))  # a directory, as docker reads it
    assert remote_digest(parse("redis:7"), mirrors={"docker.io": registry.host}) == HEADER_DIGEST


def test_refused_credentials_raise_engine_error_with_login_hint(registry, docker_config):
    registry.auth, registry.credentials = "bearer", "alice:s3cret"
    config = docker_config({registry.host: {"auth": b64("alice:wrong")}})
    with pytest.raises(EngineError) as info:
        remote_digest(parse(f"{registry.host}/team/app:1"), docker_config=config)
    message = str(info.value)
    assert "HTTP 401" in message and "team/app:1" in message and "docker login" in message
    assert "\n" not in message


def test_basic_challenge_is_answered_with_basic_credentials(registry, docker_config):
    registry.auth, registry.credentials = "basic", "alice:s3cret"
    config = docker_config({registry.host: {"auth": b64("alice:s3cret")}})
    assert remote_digest(parse(f"{registry.host}/team/app:1"), docker_config=config) == HEADER_DIGEST


def test_basic_challenge_without_credentials_says_to_log_in(registry, tmp_path):
    registry.auth, registry.credentials = "basic", "alice:s3cret"
    with pytest.raises(EngineError, match="no credentials found; run: docker login"):
        remote_digest(parse(f"{registry.host}/team/app:1"), docker_config=tmp_path / "missing.json")


def test_unreachable_registry_raises_one_line_engine_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(EngineError) as info:
        remote_digest(parse(f"127.0.0.1:{port}/team/app:1"), timeout=2)
    message = str(info.value)
    assert not isinstance(info.value, NotFoundError)
    assert f"127.0.0.1:{port}" in message and "team/app:1" in message and "refused" in message.lower()
    assert "\n" not in message and "HTTPConnectionPool" not in message


@pytest.mark.parametrize(
    ("text", "kwargs", "url"),
    [
        ("redis:7", {}, "https://registry-1.docker.io/v2/library/redis/manifests/7"),
        ("osixia/openldap:1.5.0", {}, "https://registry-1.docker.io/v2/osixia/openldap/manifests/1.5.0"),
        ("quay.io/argoproj/argocd:v2", {}, "https://quay.io/v2/argoproj/argocd/manifests/v2"),
        (
            "harbor.test:8443/aihpc/redis:7",
            {"insecure_hosts": {"harbor.test:8443"}},
            "http://harbor.test:8443/v2/aihpc/redis/manifests/7",
        ),
        ("localhost:5000/x", {}, "http://localhost:5000/v2/x/manifests/latest"),
        ("[::1]:5000/x:1", {}, "http://[::1]:5000/v2/x/manifests/1"),
        (
            "redis:7",
            {"mirrors": {"docker.io": "http://127.0.0.1:5551"}},
            "http://127.0.0.1:5551/v2/library/redis/manifests/7",
        ),
        ("redis:7", {"mirrors": {"docker.io": "mirror.test"}}, "https://mirror.test/v2/library/redis/manifests/7"),
        (
            f"redis@sha256:{'cd' * 32}",
            {},
            f"https://registry-1.docker.io/v2/library/redis/manifests/sha256:{'cd' * 32}",
        ),
    ],
)
def test_manifest_url_picks_endpoint_scheme_and_path(text, kwargs, url):
    assert manifest_url(parse(text), **kwargs) == url
