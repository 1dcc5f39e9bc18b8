"""Network detection with real probes against HTTP servers on 127.0.0.1."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest


class _Registry(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        self.send_response(401)  # what a real registry's /v2/ says without credentials
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def registry_url():
    handler = type("Handler", (_Registry,), {"hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v2/", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}/v2/"


def _stack(tmp_path, external, internal, mode="auto"):
    probes = lambda urls: "[" + ", ".join(f'"{u}"' for u in urls) + "]"  # noqa: E731
    (tmp_path / "stack.toml").write_text(
        f'[stack]\nname = "t"\nimages = ["redis:7-alpine"]\n[network]\nmode = "{mode}"\nprobe_timeout = 1.0\n'
        f"external_probes = {probes(external)}\ninternal_probes = {probes(internal)}\n"
    )
    return tmp_path


def test_an_answering_external_probe_means_external(cli, tmp_path, registry_url, dead_url):
    url, _ = registry_url
    result = cli("env", "--json", "-s", str(_stack(tmp_path, [url], [dead_url])))
    assert result.code == 0, result.err
    env = result.json()
    assert (env["mode"], env["source"]) == ("external", "probe")
    assert {(p["kind"], p["answered"], p["detail"]) for p in env["probes"]} >= {("external", True, "HTTP 401")}


def test_only_the_internal_probe_answering_means_internal(cli, tmp_path, registry_url, dead_url):
    url, _ = registry_url
    env = cli("env", "--json", "-s", str(_stack(tmp_path, [dead_url], [url]))).json()
    assert (env["mode"], env["source"], env["note"]) == ("internal", "probe", None)


def test_no_probe_answering_means_internal_and_says_so(cli, tmp_path, dead_url):
    result = cli("env", "-s", str(_stack(tmp_path, [dead_url], [dead_url])))
    assert "mode:     internal" in result.out
    assert "no probe answered" in result.out


def test_the_probe_result_is_cached_per_probe_set(cli, tmp_path, registry_url, dead_url):
    url, handler = registry_url
    stack = _stack(tmp_path, [url], [dead_url])
    assert cli("env", "--json", "-s", str(stack)).json()["source"] == "probe"
    assert handler.hits == 1
    assert cli("env", "--json", "-s", str(stack)).json()["source"] == "probe (cached)"
    assert handler.hits == 1
    assert cli("env", "--json", "--refresh", "-s", str(stack)).json()["source"] == "probe"
    assert handler.hits == 2


def test_precedence_flag_over_environment_over_stack_over_probe(cli, tmp_path, registry_url, dead_url):
    url, handler = registry_url
    stack = str(_stack(tmp_path, [url], [dead_url], mode="internal"))
    assert cli("env", "--json", "-s", stack).json()["source"] == "stack network.mode"
    env = {"AI_INFRA_NETWORK_ENV": "external", "INTERNAL_REGISTRY": "harbor.test:8443/proj"}
    from_env = cli("env", "--json", "-s", stack, env=env).json()
    assert (from_env["mode"], from_env["source"]) == ("external", "AI_INFRA_NETWORK_ENV")
    assert (from_env["registry"], from_env["registry_source"]) == ("harbor.test:8443/proj", "INTERNAL_REGISTRY")
    flags = cli("env", "--json", "--network", "internal", "--registry", "other.test/p", "-s", stack, env=env).json()
    assert (flags["mode"], flags["source"], flags["registry"]) == ("internal", "--network", "other.test/p")
    assert handler.hits == 0  # an explicit mode never probes
