"""Edge inputs found in review: each ends in a clear InputError or the right state, never a traceback."""

from __future__ import annotations

import socket
import threading

import pytest

from reconciler import stack
from reconciler.compose import compose_images
from reconciler.desired import BaseImage, desired_state
from reconciler.errors import EngineError, InputError
from reconciler.network import NetworkDecision, run_probes
from reconciler.refs import InvalidReference, parse, parse_prefix


def test_a_stack_file_that_is_not_utf8_is_a_one_line_error(tmp_path):
    (tmp_path / "stack.toml").write_bytes(b'[stack]\nname = "\xff"\n')
    with pytest.raises(InputError) as err:
        stack.load(tmp_path)
    assert "stack.toml" in str(err.value) and "\n" not in str(err.value)


def test_a_compose_file_that_is_not_utf8_is_a_one_line_error(tmp_path):
    path = tmp_path / "docker-compose.yml"
    path.write_bytes(b"services:\n  db:\n    image: \xff\n")
    with pytest.raises(InputError, match="cannot read compose file"):
        compose_images(path, {}, shown_as="docker-compose.yml")


def test_a_null_compose_image_is_no_image(tmp_path):
    path = tmp_path / "docker-compose.yml"
    path.write_text("services:\n  db:\n    image: ~\n  web:\n    image: nginx\n")
    assert [str(u.ref) for u in compose_images(path, {}, shown_as="c.yml")] == ["nginx:latest"]


def test_two_dockerfiles_making_the_same_service_name_is_an_error(tmp_path):
    for group in ("a", "b"):
        (tmp_path / group / "api").mkdir(parents=True)
        (tmp_path / group / "api" / "Dockerfile").write_text("FROM redis:7\n")
    (tmp_path / "stack.toml").write_text('[stack]\nname = "t"\nservices = "*/*/Dockerfile"\n')
    with pytest.raises(InputError, match="two Dockerfiles make the same service 'api'"):
        stack.load(tmp_path)


@pytest.mark.parametrize("mode", ["internal", "external"])
def test_the_exact_alias_name_a_dockerfile_uses_is_created(mode):
    network = NetworkDecision(
        mode=mode, source="test", registry="harbor.test/aihpc", registry_source="test", alias_prefix="localhost"
    )
    state = desired_state([BaseImage(parse("localhost/library/redis:7"), ())], network)
    assert parse("localhost/library/redis:7") in {a.alias for a in state.aliases}


def test_prefixes_are_compared_in_canonical_form():
    assert parse_prefix("index.docker.io/aihpc") == "docker.io/aihpc"
    assert parse("index.docker.io/aihpc/redis:7").is_under(parse_prefix("index.docker.io/aihpc"))


def test_a_non_ascii_tag_is_refused():
    with pytest.raises(InvalidReference):
        parse("redis:ß7")


def test_a_probe_answered_by_something_that_is_not_http_counts_as_no_answer():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def banner():
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.close()

    threading.Thread(target=banner, daemon=True).start()
    [result] = run_probes([(f"http://127.0.0.1:{server.getsockname()[1]}/v2/", "internal")], 2.0)
    server.close()
    assert result.answered is False


def test_a_stream_cut_mid_pull_becomes_a_retryable_engine_error():
    import urllib3.exceptions

    from reconciler.engine import _Translate

    with pytest.raises(EngineError) as err:
        with _Translate("unix:///x.sock", "pull", parse("redis:7")):
            raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")
    assert type(err.value) is EngineError  # not NotFoundError: apply tries again
