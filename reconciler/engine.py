"""The Docker daemon adapter: the only module that talks to the daemon.

It speaks docker-py's raw API layer (``docker.APIClient``): one ``GET /images/json``
reads every image with its tags, digests and labels, where the object layer
would inspect image by image.  docker's exceptions become ours here.

Reads from a daemon on a local socket (the version, the image and container lists,
inspects) go through :class:`_SocketReader`, the standard library's HTTP client on
a unix socket: docker-py and requests take about 0.1 s to import, more than a no-op
plan's whole work, so they are imported only when something is written, or the
daemon is reached over TCP, TLS or ssh.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from .errors import BuildError, EngineError, InputError, NotFoundError
from .refs import ImageRef

if TYPE_CHECKING:
    import docker

BUILD_LOG_LINES = 15  # the output shown when a build fails
# A RUN step may be quiet for long (a compile, a large download with -q), so builds
# get their own, generous bound: two hours without one status or log line is a hang.
BUILD_STALL_TIMEOUT = 2 * 3600

PING_TIMEOUT = 10.0  # GET /_ping costs a daemon nothing: a longer silence is a proxy that drops it
_API_VERSION = re.compile(r"[0-9]+\.[0-9]+")  # what goes into every URL: /v1.41/...
_NOT_FOUND_MARKERS = ("manifest unknown", "not found", "does not exist", "pull access denied", "name unknown")


DEFAULT_HOST = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Daemon:
    """Which daemon to talk to, chosen as the docker CLI chooses it."""

    host: str  # unix://, tcp://, ssh://user@host[:port]
    source: str  # "--host", "DOCKER_HOST", "docker context NAME", "default"
    options: dict = field(default_factory=dict)  # what docker.APIClient gets besides base_url: tls, use_ssh_client


def resolve_daemon(host: str | None = None) -> Daemon:
    """The docker CLI's order: ``--host``, then ``DOCKER_HOST``, then the context named by
    ``DOCKER_CONTEXT``, then the one ``docker context use`` saved in the docker config
    (``$DOCKER_CONFIG/config.json``), then the local socket."""
    env_host = os.environ.get("DOCKER_HOST")
    if host and host != env_host:
        # The address of the context in use (a saved plan records it) keeps the context's TLS files.
        try:
            context = _context_daemon()
        except InputError:
            context = None
        if context is not None and context.host == host:
            return context
        return Daemon(host, "--host", _ssh(host, _env_tls()))
    if env_host:
        return Daemon(env_host, "--host" if host else "DOCKER_HOST", _ssh(env_host, _env_tls()))
    return _context_daemon() or Daemon(DEFAULT_HOST, "default")


def _env_tls() -> dict:
    """DOCKER_TLS_VERIFY and DOCKER_CERT_PATH: the TLS of a daemon named by ``--host`` or
    DOCKER_HOST, as the docker CLI takes them (the defaults of its --tlsverify and --tlscert)."""
    if not os.environ.get("DOCKER_CERT_PATH") and not os.environ.get("DOCKER_TLS_VERIFY"):
        return {}  # docker-py's kwargs_from_env() would find no TLS either
    from .dockerpy import docker

    try:
        tls = docker.utils.kwargs_from_env()
    except docker.errors.DockerException as exc:
        folder = os.environ.get("DOCKER_CERT_PATH") or str(Path.home() / ".docker")
        raise InputError(
            f"DOCKER_TLS_VERIFY is set but the TLS files in {folder} cannot be used: {str(exc).split('. ')[0]}",
            where="DOCKER_CERT_PATH",
            hint="put ca.pem, cert.pem and key.pem there, or unset DOCKER_TLS_VERIFY",
        ) from None
    return {"tls": tls["tls"]} if "tls" in tls else {}


def _context_daemon() -> Daemon | None:
    """The daemon of the context named by DOCKER_CONTEXT or in use; None for the default context."""
    folder = _docker_config_folder()
    name, where = os.environ.get("DOCKER_CONTEXT"), "DOCKER_CONTEXT"
    if not name:
        name, where = _current_context(folder / "config.json"), str(folder / "config.json")
    if not name or name == "default":
        return None
    chosen, options = _context_endpoint(folder, name, where)
    return Daemon(chosen, f"docker context {name}", _ssh(chosen, options))


def _docker_config_folder() -> Path:
    """Where the docker CLI keeps its config.json and contexts."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _current_context(config: Path) -> str | None:
    try:
        found = json.loads(config.read_text()).get("currentContext")
    except (OSError, ValueError, AttributeError):
        return None  # no config, or one the docker CLI would not read either: the local daemon
    return found if isinstance(found, str) else None


def _context_endpoint(folder: Path, name: str, where: str) -> tuple[str, dict]:
    """A context's docker endpoint as the docker CLI stores it: ``contexts/meta/<sha256 of
    the name>/meta.json``, TLS files under ``contexts/tls/<same>/docker/``.

    Read here rather than by docker-py's ContextAPI, which looks beside whichever
    config.json exists (``~/.docker``, or the working folder when there is none), where
    the CLI reads ``$DOCKER_CONFIG`` (or ``~/.docker``) whether or not config.json is there."""
    key = hashlib.sha256(name.encode()).hexdigest()
    meta = folder / "contexts" / "meta" / key / "meta.json"
    try:
        endpoint = json.loads(meta.read_text())["Endpoints"]["docker"]
        chosen = endpoint["Host"]
    except FileNotFoundError:
        raise InputError(
            f"docker context {name!r} does not exist in {folder}",
            where=where,
            hint="list them with `docker context ls`; `docker context use default` goes back to the local daemon",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"docker context {name!r} cannot be read: {exc!r}", where=str(meta)) from None
    if not isinstance(chosen, str) or not chosen:
        raise InputError(f"docker context {name!r} has no docker host", where=str(meta))
    tls = folder / "contexts" / "tls" / key / "docker"
    ca, cert, private = (tls / f for f in ("ca.pem", "cert.pem", "key.pem"))
    if not (ca.is_file() or cert.is_file()):
        return chosen, {}
    from .dockerpy import docker

    try:
        config = docker.tls.TLSConfig(
            client_cert=(str(cert), str(private)) if cert.is_file() else None,
            ca_cert=str(ca) if ca.is_file() else None,
            verify=not endpoint.get("SkipTLSVerify", False),
        )
    except docker.errors.DockerException as exc:  # cert.pem without key.pem
        raise InputError(
            f"docker context {name!r} has unusable TLS files in {tls}: {str(exc).split('. ')[0]}",
            where=str(meta),
            hint=f"recreate it with `docker context create {name} --docker host=...,ca=...,cert=...,key=...`",
        ) from None
    return chosen, {"tls": config}


def _ssh(host: str, options: dict) -> dict:
    """ssh:// through the system's ssh binary, as the docker CLI does: ~/.ssh/config, the
    agent, ProxyJump and known_hosts apply (docker-py's default, paramiko, knows none of it)."""
    return {**options, "use_ssh_client": True} if host.startswith("ssh://") else options


class Engine:
    """A connection to one daemon; safe to use from several threads (one client each)."""

    def __init__(self, host: str | None = None, timeout: int = 300, stall_timeout: float = 60.0):
        daemon = resolve_daemon(host)
        self.host = daemon.host
        self.source = daemon.source  # said when the daemon cannot be reached: which setting chose it
        self._options = daemon.options
        self._timeout = timeout
        self.stall_timeout = stall_timeout  # longest wait for a registry-bound request's next byte
        self._local = threading.local()
        self._info: dict | None = None
        path = _plain_socket(self.host, self._options)
        self._reader = _SocketReader(path, timeout, _config_headers()) if path else None
        # The API version, asked once; every client after reuses the answer.
        self._version = "auto"
        if self._reader is not None:
            with self._errors("read the daemon's version"):
                self._version = self._reader.api_version()
        else:
            self._version = self._client().api_version  # docker-py's version="auto": GET /version

    def _read(self, path: str, name: str | None = None, **params) -> Any:
        """``GET /v{version}{path}`` (``{}`` in it: ``name``, quoted) and its JSON answer: on the
        local socket through the standard library, else through docker-py's client."""
        if self._reader is not None:
            quoted = path.format(quote(name, safe="/:@")) if name is not None else path
            return self._reader.get(f"/v{self._version}{quoted}", params)
        api = self._client()
        url = api._url(path, name) if name is not None else api._url(path)
        return api._result(api._get(url, params=params), json=True)

    def _client(self) -> docker.APIClient:
        from .dockerpy import docker, ssh_transport

        client = getattr(self._local, "client", None)
        if client is None:
            try:
                if self.host.startswith("ssh://"):
                    ssh_transport()
                client = docker.APIClient(
                    base_url=self.host, version=self._version, timeout=self._timeout, **self._options
                )
            except docker.errors.DockerException as exc:
                raise _unreachable(self.host, exc, self.source) from None
            self._local.client = client
        return client

    @property
    def api_version(self) -> str:
        """The API version negotiated with the daemon (docker-py's ``version="auto"``, no extra request)."""
        return self._version

    def info(self) -> dict:
        """``GET /info``, once per Engine: the daemon's ID (the lock key, a saved plan's
        identity) and its registry configuration (mirrors, insecure registries)."""
        if self._info is None:
            with self._errors("read daemon info"):
                self._info = self._read("/info")
        return self._info

    def list_images(self) -> list[dict]:
        """Every local image: one ``GET /images/json``."""
        with self._errors("list images"):
            return self._read("/images/json")

    def pull(self, ref: ImageRef, on_event: Callable[[dict], None] | None = None, platform: str | None = None) -> str:
        """Pull ``ref`` and return the local image ID it now resolves to.

        docker-py's ``pull()`` streams with ``timeout=None``, so a registry that stops
        sending leaves the read waiting forever, lock held.  This posts the same request
        with ``stall_timeout`` as the socket's read timeout: each wait for the daemon's
        next progress line is bounded, and a pull silent that long fails like a cut one.
        """
        name = ref.familiar_name
        what = ref.digest or ref.tag or "latest"
        with self._errors("pull", ref):
            api = self._client()
            with _on_timeout(lambda: self._stalled(f"pulling {ref}")):
                response = api._post(
                    api._url("/images/create"),
                    params={"fromImage": name, "tag": what, **({"platform": platform} if platform else {})},
                    headers=_registry_auth(api, name),
                    stream=True,
                    timeout=self.stall_timeout,
                )
                # Closing a cut stream drops the connection: the daemon sees its client
                # gone and cancels the pull, so nothing goes on waiting on either side.
                with response:
                    api._raise_for_status(response)
                    for event in api._stream_helper(response, decode=True):
                        if "error" in event:
                            raise _pull_error(ref, event["error"])
                        if on_event:
                            on_event(event)
            return api.inspect_image(ref.familiar)["Id"]

    def distribution_digest(self, ref: ImageRef) -> str:
        """The manifest digest ``ref``'s registry serves now, asked through the daemon
        (``GET /distribution/{name}/json``): its credentials, mirrors, proxy and CAs
        apply, as to its pulls.  Raises :class:`NotFoundError` when the registry has
        no such manifest, :class:`EngineError` when it cannot be asked."""
        from .dockerpy import docker

        with self._errors("check", ref), _on_timeout(lambda: self._stalled(f"asking the registry of {ref}")):
            api = self._client()
            # inspect_distribution() takes no timeout; the client is this thread's own,
            # so bounding this one call here bounds nothing else.
            api.timeout, usual = self.stall_timeout, api.timeout
            try:
                answer = api.inspect_distribution(ref.familiar)
            except docker.errors.APIError as exc:
                message = exc.explanation or str(exc)
                cls = NotFoundError if exc.status_code == 404 or _looks_not_found(message) else EngineError
                raise cls(" ".join(str(message).split())) from None
            finally:
                api.timeout = usual
        digest = (answer.get("Descriptor") or {}).get("digest") if isinstance(answer, dict) else None
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            raise EngineError(f"the daemon's answer for {ref} has no manifest digest")
        return digest

    def inspect(self, image_id: str) -> dict:
        """``GET /images/{id}/json``: what the image list leaves out (its platform)."""
        with self._errors("inspect image"):
            return self._read("/images/{}/json", image_id)

    def has_onbuild(self, ref: ImageRef) -> bool:
        """Whether the local image carries ONBUILD triggers (they read the child's context)."""
        with self._errors("inspect", ref):
            return bool((self._read("/images/{}/json", ref.familiar).get("Config") or {}).get("OnBuild"))

    def tag(self, image_id: str, alias: ImageRef) -> None:
        """Point ``alias`` at ``image_id`` (moving it if it exists)."""
        with self._errors("tag", alias):
            if not self._client().tag(image_id, alias.familiar_name, alias.tag, force=True):
                raise EngineError(f"the daemon refused to tag {image_id} as {alias}")

    def push(self, image: ImageRef, target: ImageRef, on_event: Callable[[dict], None] | None = None) -> str:
        """Tag the local ``image`` as ``target`` and push it; return the manifest digest the
        registry now serves for it.

        docker-py's ``push()`` sends the docker config's credentials for ``target``'s registry
        (credential helpers included), as the docker CLI would.  It reads its stream with the
        client's timeout, set here to ``stall_timeout``: each wait for the daemon's next progress
        line is bounded, as in :meth:`pull`.
        """
        digest = None
        with self._errors("push", target), _on_timeout(lambda: self._stalled(f"pushing {target}")):
            api = self._client()
            if image != target and not api.tag(image.familiar, target.familiar_name, target.tag, force=True):
                raise EngineError(f"the daemon refused to tag {image} as {target}")
            api.timeout, usual = self.stall_timeout, api.timeout
            try:
                for event in api.push(target.familiar_name, tag=target.tag, stream=True, decode=True):
                    if "error" in event:
                        raise _pull_error(target, str(event["error"]))
                    aux = event.get("aux")
                    if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                        digest = aux["Digest"]
                    if on_event:
                        on_event(event)
            except BaseException:
                # Dropping this thread's connection cuts the stream: the daemon sees its client gone
                # and cancels the push, so nothing goes on waiting on either side.
                api.close()
                self._local.client = None
                raise
            finally:
                api.timeout = usual
        if digest is None:
            raise EngineError(f"the daemon finished pushing {target} without a manifest digest")
        return digest

    def image_id(self, ref: ImageRef) -> str | None:
        """The image a tag points at now, or None."""
        try:
            with self._errors("inspect", ref):
                return self._read("/images/{}/json", ref.familiar)["Id"]
        except NotFoundError:
            return None

    def untag(self, ref: ImageRef) -> bool:
        """Remove the tag ``ref``; the image goes with its last tag (never forced: the daemon
        refuses to remove an image a container uses).  Whether the image went."""
        with self._errors("untag", ref):
            answer = self._client().remove_image(ref.familiar)
        return any(isinstance(entry, dict) and "Deleted" in entry for entry in answer or [])

    def save(self, names: list[str], out: IO[bytes]) -> None:
        """``docker save NAME...`` into ``out``: one archive holding the image and every name given
        (``GET /images/get?names=...``), streamed, so its size costs no memory."""
        with self._errors("save", None):
            api = self._client()
            response = api._get(api._url("/images/get"), params={"names": names}, stream=True)
            with response:
                api._raise_for_status(response)
                for chunk in response.iter_content(chunk_size=1024 * 1024):
                    out.write(chunk)

    def load(self, archive: IO[bytes]) -> list[str]:
        """``docker load``: the names (or IDs) the daemon reports loaded."""
        loaded = []
        with self._errors("load", None):
            api = self._client()
            for event in api.load_image(archive):
                if "error" in event:
                    raise EngineError(f"load failed: {event['error']}")
                stream = str(event.get("stream", ""))
                for prefix in ("Loaded image: ", "Loaded image ID: "):
                    if stream.startswith(prefix):
                        loaded.append(stream[len(prefix) :].strip())
        return loaded

    def list_containers(self) -> list[dict]:
        """Every container, whatever its state: one ``GET /containers/json?all=1``."""
        with self._errors("list containers"):
            return self._read("/containers/json", all=1)

    def build(
        self,
        context: IO[bytes],
        *,
        dockerfile: str,
        tag: ImageRef,
        labels: dict[str, str],
        build_args: dict[str, str],
        target: str | None = None,
        nocache: bool = False,
        network: str | None = None,
        platform: str | None = None,
        on_event: Callable[[dict], None] | None = None,
    ) -> str:
        """Build with BuildKit and tag the result; return its image ID.

        docker-py's ``build()`` cannot ask for BuildKit (no ``version`` parameter)
        and the classic builder refuses ``RUN --mount``, so this posts docker-py's
        own request with ``version=2``.  ``pull=0``: bases were reconciled first,
        and a build must never reach a registry on its own.
        """
        params = {
            "t": tag.familiar,
            "dockerfile": dockerfile,
            "version": "2",
            "pull": "0",
            "rm": "1",
            "nocache": "1" if nocache else "0",
            "labels": json.dumps(labels),
            "buildargs": json.dumps(build_args),
        }
        if target:
            params["target"] = target
        if network:
            params["networkmode"] = network
        if platform:
            params["platform"] = platform
        from . import buildkit  # here: only builds decode BuildKit's status

        tail: deque[str] = deque(maxlen=BUILD_LOG_LINES)
        announced: set[str] = set()
        image_id = None
        silent = f"no build output for {BUILD_STALL_TIMEOUT:g} s: a step hangs"
        with self._errors("build", tag), _on_timeout(lambda: BuildError(silent, list(tail))):
            api = self._client()
            response = api._post(
                api._url("/build"),
                params=params,
                data=context,
                headers={"Content-Type": "application/x-tar"},
                stream=True,
                timeout=BUILD_STALL_TIMEOUT,
            )
            with response:  # closed when cut: the daemon then cancels the build
                api._raise_for_status(response)
                for event in api._stream_helper(response, decode=True):
                    if event.get("id") == "moby.buildkit.trace":
                        status = buildkit.decode(event.get("aux", ""))
                        for _, data in status.logs:
                            tail.extend(data.decode("utf-8", "replace").splitlines())
                        for step in status.steps:
                            if (
                                on_event
                                and step.started
                                and step.digest not in announced
                                and not step.name.startswith("[internal]")
                            ):
                                announced.add(step.digest)
                                on_event({"step": step.name, "cached": step.cached})
                    elif event.get("id") == "moby.image.id":
                        image_id = event["aux"]["ID"]
                    elif "error" in event:
                        raise BuildError(event["error"].strip(), list(tail))
        if image_id is None:
            raise BuildError("the daemon finished the build without an image ID", list(tail))
        return image_id

    def _errors(self, doing: str, ref: ImageRef | None = None):
        return _Translate(self.host, doing, ref, self.source)

    def _stalled(self, doing: str) -> EngineError:
        return EngineError(
            f"no progress for {self.stall_timeout:g} s {doing}",
            hint="check the registry, or raise [network] stall_timeout if it is only slow",
        )


@contextlib.contextmanager
def _on_timeout(error: Callable[[], EngineError]) -> Iterator[None]:
    """A read that timed out (the socket's, inside urllib3, or requests' while the
    headers were awaited) becomes ``error()``: one plain line, not a pool repr."""
    import requests.exceptions
    import urllib3.exceptions

    try:
        yield
    except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
        raise error() from None


def _registry_auth(api: docker.APIClient, name: str) -> dict[str, str]:
    """The X-Registry-Auth header docker-py's pull() would send: the docker config's
    credentials for the image's registry, credential helpers included."""
    from .dockerpy import docker

    registry, _ = docker.auth.resolve_repository_name(name)
    header = docker.auth.get_config_header(api, registry)
    return {"X-Registry-Auth": header} if header else {}


class _Translate:
    """Turn docker-py, requests and socket errors into ours (a context manager)."""

    def __init__(self, host: str, doing: str, ref: ImageRef | None, source: str | None = None):
        self.host, self.doing, self.ref, self.source = host, doing, ref, source

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, EngineError):
            return False
        if isinstance(exc, _DaemonAnswer):
            self._refused(exc.status, exc.message)
        if "docker" in sys.modules:  # docker-py raised it, if anything did
            self._docker_py(exc)
        if isinstance(exc, _Unanswered):
            raise _unreachable(self.host, exc.__cause__ or exc, self.source) from None
        if isinstance(exc, _Cut):
            raise EngineError(f"{self.doing} failed: {exc}") from None
        return False

    def _refused(self, status: int, message: str) -> None:
        if self.ref is not None and (status == 404 or _looks_not_found(message)):
            raise NotFoundError(message) from None
        target = f" {self.ref}" if self.ref is not None else ""
        raise EngineError(f"{self.doing}{target}: {message}") from None

    def _docker_py(self, exc: BaseException) -> None:
        import requests.exceptions
        import urllib3.exceptions

        from .dockerpy import docker

        if isinstance(exc, docker.errors.APIError):
            self._refused(exc.status_code or 0, exc.explanation or str(exc))
        if isinstance(exc, (requests.exceptions.ConnectionError, docker.errors.DockerException)):
            raise _unreachable(self.host, exc, self.source) from None
        if isinstance(
            exc, (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, docker.errors.StreamParseError)
        ):
            # A stream cut mid-pull (daemon restart, read timeout): worth another attempt.
            raise EngineError(f"{self.doing} failed: {exc}") from None


class _Unanswered(Exception):
    """The socket reader could not connect (its cause says why)."""


class _Dropped(_Unanswered):
    """The socket reader connected, then the peer reset or closed without answering."""


class _Cut(Exception):
    """The daemon took the request but its answer timed out or was cut."""


class _DaemonAnswer(Exception):
    """The daemon answered a read with an error status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _SocketReader:
    """``GET`` requests to a daemon on a unix socket, one connection each (so any thread may
    read), every wait bounded by ``timeout``.  Answers are JSON; an error status raises
    :class:`_DaemonAnswer` with the daemon's message, as docker-py's APIError carries it."""

    def __init__(self, path: str, timeout: float, headers: dict[str, str]):
        self.path, self.timeout, self.headers = path, timeout, headers

    def api_version(self) -> str:
        """The daemon's API version, as the docker CLI negotiates it: the ``API-Version``
        header of ``GET /_ping``, about 1 ms, where ``GET /version`` (docker-py's way) asks
        containerd and the kernel and takes about 10.  A daemon or proxy whose ``/_ping``
        has no such header, closes, or does not answer within ``PING_TIMEOUT`` is asked
        ``GET /version``."""
        try:
            response, _ = self._request("/_ping", timeout=min(self.timeout, PING_TIMEOUT))
            version = response.getheader("API-Version") if response.status == 200 else None
        except (_Dropped, _Cut):
            version = None
        if version is not None and _API_VERSION.fullmatch(version):
            return version
        answer = self.get("/version")
        version = answer.get("ApiVersion") if isinstance(answer, dict) else None
        if not isinstance(version, str) or not _API_VERSION.fullmatch(version):
            raise EngineError(f"unix://{self.path} does not answer as a Docker daemon (no API version in GET /version)")
        return version

    def get(self, url: str, params: dict | None = None) -> Any:
        response, body = self._request(f"{url}?{urlencode(params)}" if params else url)
        try:
            answer = json.loads(body) if body else None
        except ValueError:
            answer = None
        if response.status >= 400:
            message = answer.get("message") if isinstance(answer, dict) else None
            raise _DaemonAnswer(response.status, str(message or body.decode("utf-8", "replace").strip()))
        if answer is None:
            raise EngineError(f"the daemon answered GET {url} with no JSON")
        return answer

    def _request(self, url: str, timeout: float | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        connection = _UnixConnection(self.path, self.timeout if timeout is None else timeout)
        try:
            try:
                connection.connect()
            except OSError as exc:
                raise _Unanswered(str(exc)) from exc
            try:
                connection.request("GET", url, headers=self.headers)
                response = connection.getresponse()
                body = response.read()
            except TimeoutError as exc:
                raise _Cut(str(exc) or "timed out") from None
            except ConnectionError as exc:  # reset, or closed without an answer: as requests classes them
                raise _Dropped(str(exc)) from exc
            except (OSError, http.client.HTTPException) as exc:  # an answer cut short, say
                raise _Cut(str(exc) or type(exc).__name__) from None
        finally:
            connection.close()
        return response, body


def _plain_socket(host: str, options: dict) -> str | None:
    """The socket path the standard library reader can use: an absolute ``unix://`` path with
    no TLS.  docker-py reads the rarer spellings (``unix://`` alone, a relative path)."""
    path = host.removeprefix("unix://") if host.startswith("unix://") else ""
    return path if path.startswith("/") and not path.endswith("/") and not options else None


def _config_headers() -> dict[str, str]:
    """The headers docker-py sends with every request: the docker config's ``HttpHeaders``
    (an authorization plugin or socket proxy may require them) and a User-Agent."""
    from . import __version__

    headers = {"User-Agent": f"reconcile/{__version__}"}
    config = _docker_config_folder() / "config.json"
    try:
        found = json.loads(config.read_text()).get("HttpHeaders")
    except (OSError, ValueError, AttributeError):
        return headers
    if isinstance(found, dict):
        headers.update({str(k): str(v) for k, v in found.items()})
    return headers


def _looks_not_found(message: str) -> bool:
    return any(marker in message.lower() for marker in _NOT_FOUND_MARKERS)


def _pull_error(ref: ImageRef, message: str) -> EngineError:
    cls = NotFoundError if _looks_not_found(message) else EngineError
    return cls(message)


def _unreachable(host: str, exc: BaseException, source: str | None = None) -> EngineError:
    reason = str(exc).split("\n")[0]
    chosen = f", from {source}" if source and source != "--host" else ""
    hint = "start it, or point --host, DOCKER_HOST or the docker context at a running daemon"
    if "paramiko" in reason:  # docker-py imports it for every ssh:// client, even one that runs ssh
        hint = "ssh:// needs docker-py's ssh extra: pip install 'reconcile[ssh]' (or 'docker[ssh]')"
    return EngineError(f"cannot reach the Docker daemon at {host} ({reason}{chosen})", hint=hint)
