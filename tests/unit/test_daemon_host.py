"""Which daemon a command talks to: --host, DOCKER_HOST, the docker context, the local socket,
in the docker CLI's order.  Contexts are written in a temporary DOCKER_CONFIG exactly as
`docker context create` (docker 28) writes them."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import docker.tls
import pytest

from reconciler.engine import DEFAULT_HOST, Engine, resolve_daemon
from reconciler.errors import EngineError, InputError


def create_context(config: Path, name: str, host: str, tls: bool = False) -> None:
    """What `docker context create NAME --docker host=HOST[,ca=,cert=,key=]` leaves behind."""
    key = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / key / "meta.json"
    meta.parent.mkdir(parents=True)
    endpoint = {"Host": host, "SkipTLSVerify": False}
    meta.write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}}))
    if tls:
        folder = config / "contexts" / "tls" / key / "docker"
        folder.mkdir(parents=True)
        for file in ("ca.pem", "cert.pem", "key.pem"):
            (folder / file).write_text("-----BEGIN CERTIFICATE-----\n")


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    """A docker config dir with contexts "remote" (ssh), "build" (tcp) and "secure" (tcp with
    TLS), none in use, and no config.json: `docker context create` writes none."""
    config = tmp_path / "docker-config"
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    create_context(config, "remote", "ssh://deploy@node-07")
    create_context(config, "build", "tcp://127.0.0.1:2376")
    create_context(config, "secure", "tcp://127.0.0.1:2377", tls=True)
    return config


def use(config: Path, name: str) -> None:
    """What `docker context use NAME` writes."""
    (config / "config.json").write_text(json.dumps({"auths": {}, "currentContext": name}, indent="\t"))


def test_without_any_setting_the_local_socket_is_used(docker_config):
    daemon = resolve_daemon()
    assert (daemon.host, daemon.source, daemon.options) == (DEFAULT_HOST, "default", {})


def test_docker_context_use_chooses_the_daemon(docker_config):
    use(docker_config, "build")
    daemon = resolve_daemon()
    assert (daemon.host, daemon.source) == ("tcp://127.0.0.1:2376", "docker context build")


def test_docker_context_variable_wins_over_the_context_in_use(docker_config, monkeypatch):
    use(docker_config, "build")
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    daemon = resolve_daemon()
    assert (daemon.host, daemon.source) == ("ssh://deploy@node-07", "docker context remote")


def test_docker_host_wins_over_any_context(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/other.sock")
    daemon = resolve_daemon()
    assert (daemon.host, daemon.source) == ("unix:///tmp/other.sock", "DOCKER_HOST")


def test_host_option_wins_over_everything(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/other.sock")
    daemon = resolve_daemon("unix:///tmp/given.sock")
    assert (daemon.host, daemon.source) == ("unix:///tmp/given.sock", "--host")


def test_the_default_context_is_the_local_socket(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert resolve_daemon().host == DEFAULT_HOST


@pytest.mark.parametrize(
    "host, source",
    [("ssh://deploy@node-08:2222", "--host"), (None, "docker context remote")],
    ids=["--host", "context"],
)
def test_ssh_goes_through_the_ssh_binary(docker_config, monkeypatch, host, source):
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    daemon = resolve_daemon(host)
    assert daemon.source == source
    assert daemon.options == {"use_ssh_client": True}


def test_an_unknown_context_is_one_line_naming_where_it_was_chosen(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "nope")
    with pytest.raises(InputError) as info:
        resolve_daemon()
    assert str(info.value).startswith(f"DOCKER_CONTEXT: docker context 'nope' does not exist in {docker_config}; ")
    assert "docker context ls" in str(info.value)

    monkeypatch.delenv("DOCKER_CONTEXT")
    use(docker_config, "gone")
    with pytest.raises(InputError) as info:
        resolve_daemon()
    assert str(info.value).startswith(
        f"{docker_config / 'config.json'}: docker context 'gone' does not exist in {docker_config}; "
    )


def test_an_ssh_daemon_is_reached_by_running_ssh(docker_config, monkeypatch, tmp_path):
    """No ssh server here: a stand-in `ssh` first on PATH records how it was called and
    exits, so the daemon is unreachable, in one line that names the context."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "ssh-calls"
    fake = bin_dir / "ssh"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 255\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")

    with pytest.raises(EngineError) as info:
        Engine()
    # docker-py always names the port (22 unless the URL gives one), so ~/.ssh/config's Port does not apply.
    assert calls.read_text().splitlines()[0] == "-l deploy -p 22 -- node-07 docker system dial-stdio"
    message = str(info.value)
    assert message.startswith("cannot reach the Docker daemon at ssh://deploy@node-07 (")
    assert "from docker context remote)" in message
    assert "\n" not in message


def test_a_context_with_tls_files_connects_with_them(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "secure")
    daemon = resolve_daemon()
    assert daemon.host == "tcp://127.0.0.1:2377"
    tls = daemon.options["tls"]
    assert isinstance(tls, docker.tls.TLSConfig)
    folder = next((docker_config / "contexts" / "tls").iterdir()) / "docker"
    assert (tls.ca_cert, tls.cert, tls.verify) == (
        str(folder / "ca.pem"),
        (str(folder / "cert.pem"), str(folder / "key.pem")),
        True,
    )


def test_a_broken_context_file_is_one_line_naming_it(docker_config, monkeypatch):
    meta = next((docker_config / "contexts" / "meta").glob(f"{hashlib.sha256(b'build').hexdigest()}/meta.json"))
    meta.write_text("{not json")
    monkeypatch.setenv("DOCKER_CONTEXT", "build")
    with pytest.raises(InputError) as info:
        resolve_daemon()
    assert str(info.value).startswith(f"{meta}: docker context 'build' cannot be read: ")
    assert "\n" not in str(info.value)


def test_an_unreadable_config_json_means_the_local_daemon_as_for_the_cli(docker_config):
    (docker_config / "config.json").write_text("[]")
    assert resolve_daemon().host == DEFAULT_HOST


def test_the_address_of_the_context_in_use_keeps_its_tls_files(docker_config, monkeypatch):
    """A saved plan records the daemon's address; applying it reaches the daemon as planned."""
    use(docker_config, "secure")
    daemon = resolve_daemon("tcp://127.0.0.1:2377")
    assert daemon.source == "docker context secure" and isinstance(daemon.options["tls"], docker.tls.TLSConfig)
    other = resolve_daemon("tcp://127.0.0.1:2376")  # another address: as given, without TLS
    assert (other.source, other.options) == ("--host", {})


def test_an_explicit_host_works_whatever_state_the_contexts_are_in(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "nope")
    assert resolve_daemon("unix:///tmp/given.sock").host == "unix:///tmp/given.sock"


def _cert_folder(tmp_path: Path, files=("ca.pem", "cert.pem", "key.pem")) -> Path:
    folder = tmp_path / "certs"
    folder.mkdir()
    for file in files:
        (folder / file).write_text("-----BEGIN CERTIFICATE-----\n")
    return folder


def test_tls_variables_apply_to_the_host_option_as_for_the_docker_cli(docker_config, monkeypatch, tmp_path):
    """`DOCKER_TLS_VERIFY=1 docker -H tcp://...:2376` uses TLS: the variables are --tlsverify's defaults."""
    certs = _cert_folder(tmp_path)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(certs))
    daemon = resolve_daemon("tcp://10.0.0.7:2376")
    assert daemon.source == "--host"
    tls = daemon.options["tls"]
    assert (tls.verify, tls.ca_cert) == (True, str(certs / "ca.pem"))
    assert tls.cert == (str(certs / "cert.pem"), str(certs / "key.pem"))


@pytest.mark.parametrize("host", [None, "tcp://10.0.0.7:2376"])
def test_tls_variables_without_their_files_are_one_line(docker_config, monkeypatch, tmp_path, host):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.8:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(InputError) as info:
        resolve_daemon(host)
    message = str(info.value)
    assert message.startswith("DOCKER_CERT_PATH: DOCKER_TLS_VERIFY is set but the TLS files in ")
    assert "\n" not in message


def test_a_context_with_a_certificate_but_no_key_is_one_line(docker_config, monkeypatch):
    key = hashlib.sha256(b"secure").hexdigest()
    (docker_config / "contexts" / "tls" / key / "docker" / "key.pem").unlink()
    monkeypatch.setenv("DOCKER_CONTEXT", "secure")
    with pytest.raises(InputError) as info:
        resolve_daemon()
    assert "docker context 'secure' has unusable TLS files" in str(info.value)
