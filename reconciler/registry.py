"""Ask a Docker Registry (HTTP API v2) which manifest digest a reference has now.

This is the read side of upstream drift: ``redis:7`` pulled last month may
point at a different manifest today.  :func:`remote_digest` asks with
``HEAD /v2/<path>/manifests/<tag>`` and reads ``Docker-Content-Digest``: HEAD
costs no body and, on Docker Hub, does not count against the pull rate limit.
Only a registry that omits the header gets a GET, and then the digest is the
sha256 of the exact bytes it sent.  The Accept header lists the manifest list
and OCI index types too, so a multi-platform tag reports the digest that
``docker pull`` records in RepoDigests, not one platform's manifest.

Written by hand over ``requests``: docker-py can only ask through a daemon
(``/distribution/{name}/json``), and no maintained package speaks this API.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .errors import EngineError, NotFoundError
from .refs import DEFAULT_DOMAIN, ImageRef

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
# Docker Hub credentials may be stored under any of these (the CLI writes https://index.docker.io/v1/).
_HUB_HOSTS = (DEFAULT_DOMAIN, "index.docker.io", DOCKER_HUB_ENDPOINT)
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


def manifest_url(
    ref: ImageRef, *, mirrors: Mapping[str, str] | None = None, insecure_hosts: Collection[str] = ()
) -> str:
    """The manifest URL for ``ref``.  ``mirrors`` maps a reference's registry
    (``docker.io``) to the endpoint to ask instead (``127.0.0.1:5551`` or
    ``http://127.0.0.1:5551``).  Without a scheme: http for loopback and
    ``insecure_hosts``, https otherwise."""
    endpoint = (mirrors or {}).get(ref.domain) or (DOCKER_HUB_ENDPOINT if ref.domain == DEFAULT_DOMAIN else ref.domain)
    scheme, _, host = endpoint.rstrip("/").rpartition("://")
    if not scheme:
        scheme = "http" if _is_loopback(host) or host in insecure_hosts else "https"
    return f"{scheme}://{host}/v2/{ref.path}/manifests/{ref.digest or ref.tag or 'latest'}"


def remote_digest(
    ref: ImageRef,
    *,
    timeout: float = 5.0,
    docker_config: Path | None = None,
    mirrors: Mapping[str, str] | None = None,
    insecure_hosts: Collection[str] = (),
) -> str:
    """The digest (``sha256:…``) the registry serves for ``ref`` now.

    Raises :class:`NotFoundError` when the registry has no such manifest and
    :class:`EngineError` when it cannot be reached or refuses.
    """
    url = manifest_url(ref, mirrors=mirrors, insecure_hosts=insecure_hosts)
    host = urlsplit(url).netloc
    session = requests.Session()
    # A loopback registry is never behind a proxy, and the environment's proxy
    # would swallow the request; remote registries keep HTTPS_PROXY, NO_PROXY
    # and REQUESTS_CA_BUNDLE as every other docker client does.
    session.trust_env = not _is_loopback(host)
    session.headers["Accept"] = ", ".join(MANIFEST_TYPES)
    credentials = _credentials(docker_config, (host, *(_HUB_HOSTS if ref.domain == DEFAULT_DOMAIN else (ref.domain,))))
    with session:
        resp = _send(session, "HEAD", url, ref, timeout)
        if resp.status_code == 401:
            session.headers["Authorization"] = _authorization(session, resp, ref, credentials, timeout)
            resp = _send(session, "HEAD", url, ref, timeout)
        if resp.ok and resp.headers.get("Docker-Content-Digest"):
            return resp.headers["Docker-Content-Digest"]
        if resp.ok:
            resp = _send(session, "GET", url, ref, timeout)
        _check(resp, ref, host, login=bool(credentials))
        return "sha256:" + hashlib.sha256(resp.content).hexdigest()


def _send(session: requests.Session, method: str, url: str, ref: ImageRef, timeout: float) -> requests.Response:
    try:
        return session.request(method, url, timeout=timeout, allow_redirects=True)
    except requests.RequestException as exc:
        raise EngineError(f"cannot reach registry {urlsplit(url).netloc} for {ref} ({_reason(exc)})") from None


def _check(resp: requests.Response, ref: ImageRef, host: str, *, login: bool) -> None:
    if resp.ok:
        return
    try:  # the registry's error body: {"errors": [{"code": "MANIFEST_UNKNOWN", "message": …}]}
        errors = [e for e in resp.json()["errors"] if isinstance(e, dict)]
    except (ValueError, KeyError, TypeError):
        errors = []
    detail = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
    what = f"{host} answered HTTP {resp.status_code} for {ref}" + (f": {detail}" if detail else "")
    if resp.status_code == 404 or {"MANIFEST_UNKNOWN", "NAME_UNKNOWN"}.intersection(e.get("code") for e in errors):
        raise NotFoundError(what)
    if resp.status_code in (401, 403):
        login_host = "" if ref.domain == DEFAULT_DOMAIN else f" {ref.domain}"
        hint = "the credentials were refused" if login else "no credentials found"
        raise EngineError(what, hint=f"{hint}; run: docker login{login_host}")
    raise EngineError(what)


def _authorization(
    session: requests.Session, challenge: requests.Response, ref: ImageRef, credentials: str | None, timeout: float
) -> str:
    """The Authorization header answering a 401's WWW-Authenticate challenge."""
    header = challenge.headers.get("WWW-Authenticate", "")
    scheme = header.split(" ", 1)[0].lower()
    params = dict(re.findall(r'(\w+)="([^"]*)"', header))
    basic = f"Basic {credentials}" if credentials else None
    if scheme != "bearer" or "realm" not in params:
        if scheme == "basic" and basic:
            return basic
        _check(challenge, ref, urlsplit(challenge.url).netloc, login=False)  # raises: a 401 we cannot answer
    # requests leaves out a service that is None.
    query = {"service": params.get("service"), "scope": params.get("scope", f"repository:{ref.path}:pull")}
    headers = {"Authorization": basic} if basic else {}
    try:
        resp = session.get(params["realm"], params=query, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise EngineError(f"cannot get a token for {ref} from {params['realm']} ({_reason(exc)})") from None
    _check(resp, ref, urlsplit(params["realm"]).netloc, login=bool(credentials))
    try:
        body = resp.json()
        return f"Bearer {body.get('token') or body['access_token']}"
    except (ValueError, KeyError, AttributeError):
        raise EngineError(f"the token service {params['realm']} sent no token for {ref}") from None


def _credentials(docker_config: Path | None, hosts: tuple[str, ...]) -> str | None:
    """Base64 ``user:password`` for the first of ``hosts`` in the docker config
    file.  Read by hand, not with ``docker.auth``, as only engine.py imports
    docker-py.  Credential helpers (``credsStore``, ``credHelpers``) are ignored:
    each is a program to run; with one, we ask as if we had no credentials."""
    path = docker_config or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    path = path / "config.json" if path.is_dir() else path
    try:
        auths = json.loads(path.read_text()).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(auths, dict):  # a damaged config: ask as if there were no credentials
        return None
    # Keys may be "host", "https://host" or "https://index.docker.io/v1/".
    by_host = {urlsplit(k if "://" in k else f"//{k}").netloc: v for k, v in auths.items() if isinstance(v, dict)}
    for host in hosts:
        entry = by_host.get(host) or {}
        if entry.get("auth"):
            return entry["auth"]
        if entry.get("username") and entry.get("password"):
            return base64.b64encode(f"{entry['username']}:{entry['password']}".encode()).decode()
    return None


def _is_loopback(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    try:
        return name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _reason(exc: BaseException) -> str:
    # The innermost of requests' and urllib3's wrappers says it plainly: "[Errno 111] Connection refused".
    while exc.__cause__ or exc.__context__:
        exc = exc.__cause__ or exc.__context__
    return " ".join(str(exc).split()) or type(exc).__name__
