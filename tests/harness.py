"""Private test engine: a throw-away Docker daemon plus two local registries.

The test suite and `make demo` use this instead of any system Docker daemon:

* a private ``dockerd`` on ``unix://ROOT/docker.sock`` with its own containerd,
  data-root and exec-root, and Docker Hub replaced by a local mirror;
* a "hub" registry on 127.0.0.1:5551 (the daemon's ``--registry-mirror``, so
  ``docker pull redis:7-alpine`` is served from it);
* a "harbor" registry on 127.0.0.1:5552 (pulled by explicit references).

Nothing here talks to the internet: every process gets an HTTP(S) proxy that
points at a dead local port, so a fallback to Docker Hub fails at once.

Public API::

    engine = ensure_up()                      # idempotent; returns Engine
    seed(engine, {"127.0.0.1:5551/library/redis:7-alpine": "hub"})
    registry_digest(engine.hub, "library/redis", "7-alpine")
    delete_from_registry(engine.hub, "library/redis", "7-alpine")
    reset_images(engine)                      # empty the daemon between tests
    down()                                    # stop everything, keep data

CLI: ``python -m tests.harness {up,down,env,status}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import docker

DEFAULT_ROOT = "/tmp/reconcile-engine"
DEFAULT_HUB_PORT = 5551
DEFAULT_HARBOR_PORT = 5552
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Unique containerd namespaces so our images/containers can never mix with a
# system daemon's ("moby"), even if someone points us at a shared containerd.
CONTAINERD_NAMESPACE = "reconcile-engine"
CONTAINERD_PLUGINS_NAMESPACE = "reconcile-engine-plugins"

# Any attempt to reach a non-local registry goes to the discard port and dies.
# Go already skips proxies for loopback, so the local registries still work.
NO_INTERNET_ENV = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)

LABEL_ORIGIN = "io.reconcile.test.origin"
LABEL_REF = "io.reconcile.test.ref"


class EngineError(RuntimeError):
    """The private engine could not be started, stopped or used."""


@dataclasses.dataclass(frozen=True)
class Engine:
    docker_host: str  # e.g. "unix:///tmp/reconcile-engine/docker.sock"
    hub: str  # "127.0.0.1:5551"
    harbor: str  # "127.0.0.1:5552"
    root: str
    mirror: str = ""  # the daemon's --registry-mirror; empty: the hub registry

    def api(self, timeout: int = 300) -> docker.APIClient:
        """A low-level docker-py client for the private daemon."""
        return docker.APIClient(base_url=self.docker_host, version="auto", timeout=timeout)

    def env(self) -> dict[str, str]:
        return {
            "DOCKER_HOST": self.docker_host,
            "RECONCILE_HUB": self.hub,
            "RECONCILE_HARBOR": self.harbor,
        }


# --------------------------------------------------------------------------
# Configuration


def _root() -> Path:
    return Path(os.environ.get("RECONCILE_ENGINE_ROOT", DEFAULT_ROOT))


def _port(var: str, default: int) -> int:
    return int(os.environ.get(var, default))


def engine_info() -> Engine:
    """The Engine description from the environment, without starting anything."""
    root = _root()
    return Engine(
        docker_host=f"unix://{root}/docker.sock",
        hub=f"127.0.0.1:{_port('RECONCILE_HUB_PORT', DEFAULT_HUB_PORT)}",
        harbor=f"127.0.0.1:{_port('RECONCILE_HARBOR_PORT', DEFAULT_HARBOR_PORT)}",
        root=str(root),
        # A mirror other than the hub registry: the fault tests put a misbehaving proxy there.
        mirror=os.environ.get("RECONCILE_HUB_MIRROR", ""),
    )


@dataclasses.dataclass
class _Service:
    name: str
    binary: str  # basename expected in /proc/PID/cmdline
    argv: list[str]
    pidfile: Path
    logfile: Path
    ready: Callable[[], bool]
    config: tuple[Path, str] | None = None  # file to write before starting
    sockets: tuple[Path, ...] = ()  # stale sockets to remove before starting
    writes_own_pidfile: bool = False  # dockerd does, and refuses a stale one
    needs: str | None = None  # name of a service that must be ready first


def _registry_config(root: Path, name: str, addr: str) -> str:
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {root}/{name}-data\n"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: {addr}\n"
        # A fixed secret only silences the "generated random secret" warning.
        f"  secret: reconcile-test-{name}\n"
    )


def _containerd_config(root: Path) -> str:
    # Mirrors what dockerd writes for its own managed containerd. We run it
    # ourselves because dockerd 20.10 silently uses /run/containerd's system
    # containerd instead whenever that socket exists.
    return (
        "version = 2\n"
        f'root = "{root}/data/containerd"\n'
        f'state = "{root}/exec/containerd"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{root}/containerd.sock"\n'
        "[ttrpc]\n"
        f'  address = "{root}/containerd.sock.ttrpc"\n'
        "[debug]\n"
        '  address = ""\n'
        '[plugins."io.containerd.internal.v1.opt"]\n'
        f'  path = "{root}/data/containerd/opt"\n'
    )


def _services(engine: Engine) -> list[_Service]:
    """All components, in start order."""
    root = Path(engine.root)
    services = []
    for name, addr in (("hub", engine.hub), ("harbor", engine.harbor)):
        cfg = root / f"{name}.yml"
        services.append(
            _Service(
                name=name,
                binary="docker-registry",
                argv=["docker-registry", "serve", str(cfg)],
                pidfile=root / f"{name}.pid",
                logfile=root / f"{name}.log",
                ready=lambda addr=addr: _registry_answers(addr),
                config=(cfg, _registry_config(root, name, addr)),
            )
        )
    ctr_cfg = root / "containerd.toml"
    ctr_sock = root / "containerd.sock"
    services.append(
        _Service(
            name="containerd",
            binary="containerd",
            argv=["containerd", "--config", str(ctr_cfg)],
            pidfile=root / "containerd.pid",
            logfile=root / "containerd.log",
            ready=lambda: _unix_socket_answers(ctr_sock),
            config=(ctr_cfg, _containerd_config(root)),
            sockets=(ctr_sock, Path(f"{ctr_sock}.ttrpc")),
        )
    )
    daemon_json = root / "daemon.json"
    services.append(
        _Service(
            name="dockerd",
            binary="dockerd",
            argv=[
                "dockerd",
                "--config-file",
                str(daemon_json),
                "--data-root",
                f"{root}/data",
                "--exec-root",
                f"{root}/exec",
                "-H",
                engine.docker_host,
                "--pidfile",
                f"{root}/docker.pid",
                "--containerd",
                str(ctr_sock),
                "--containerd-namespace",
                CONTAINERD_NAMESPACE,
                "--containerd-plugins-namespace",
                CONTAINERD_PLUGINS_NAMESPACE,
                "--cgroup-parent",
                "reconcile-engine",
                # No docker0 bridge and no iptables: leave host networking alone.
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--registry-mirror",
                engine.mirror or f"http://{engine.hub}",
            ],
            pidfile=root / "docker.pid",
            logfile=root / "dockerd.log",
            ready=lambda: _daemon_answers(engine.docker_host),
            # Our own config file so /etc/docker/daemon.json is ignored; the key
            # path (config-file only, no flag) stops dockerd 20.10 from
            # writing /etc/docker/key.json.
            config=(daemon_json, json.dumps({"deprecated-key-path": f"{root}/key.json"}, indent=2) + "\n"),
            sockets=(root / "docker.sock",),
            writes_own_pidfile=True,
            needs="containerd",
        )
    )
    return services


# --------------------------------------------------------------------------
# Readiness probes


def _http(method: str, url: str, headers: dict[str, str] | None = None, timeout: float = 10):
    """(status, headers, body) for a plain local HTTP call; never raises on 4xx/5xx."""
    # An explicit empty ProxyHandler: the caller's HTTP_PROXY must not apply
    # to our 127.0.0.1 registries.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def _registry_answers(addr: str) -> bool:
    try:
        status, _, _ = _http("GET", f"http://{addr}/v2/", timeout=2)
    except OSError:
        return False
    return status == 200


def _unix_socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _daemon_answers(docker_host: str) -> bool:
    if not Path(docker_host.removeprefix("unix://")).exists():
        return False
    try:
        client = docker.APIClient(base_url=docker_host, version="auto", timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any connection/API failure just means "not ready yet"
        return False


# --------------------------------------------------------------------------
# Process bookkeeping

# Popen objects of processes started by this Python process. Kept so that we
# can reap them: a dead but unreaped child still shows up in /proc as a zombie.
_children: dict[int, subprocess.Popen] = {}


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 (after the parenthesised command name) is the state; Z = zombie.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_ours(pid: int, svc: _Service, root: Path) -> bool:
    """Whether pid is the process a pid file of ours claims (pids get reused)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return bool(args) and os.path.basename(args[0]) == svc.binary and any(str(root) in a for a in args)


def _our_live_pid(svc: _Service, root: Path) -> int | None:
    pid = _read_pid(svc.pidfile)
    if pid is not None and _alive(pid) and _is_ours(pid, svc, root):
        return pid
    return None


def _log_tail(logfile: Path, lines: int = 30) -> str:
    try:
        return "\n".join(logfile.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _child_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
    }
    env.update(NO_INTERNET_ENV)
    env.update({k.lower(): v for k, v in NO_INTERNET_ENV.items()})
    # dockerd and runc live in /usr/sbin on Debian; a non-login PATH may lack it.
    env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return env


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    path.write_text(text)


def _start(svc: _Service) -> int:
    # The process is not running (or not ours): whatever is left is stale.
    svc.pidfile.unlink(missing_ok=True)
    for sock in svc.sockets:
        sock.unlink(missing_ok=True)
    with open(svc.logfile, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {shlex.join(svc.argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            svc.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            start_new_session=True,  # survive the test run / shell that started us
        )
    _children[proc.pid] = proc
    if not svc.writes_own_pidfile:
        svc.pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def _wait_ready(svc: _Service, pid: int | None, deadline: float) -> None:
    while True:
        if svc.ready():
            return
        if pid is not None and not _alive(pid):
            raise EngineError(
                f"{svc.name} (pid {pid}) exited before becoming ready; "
                f"last lines of {svc.logfile}:\n{_log_tail(svc.logfile)}"
            )
        if time.monotonic() > deadline:
            raise EngineError(
                f"{svc.name} not ready after {READY_TIMEOUT:.0f}s (pid {pid}); "
                f"last lines of {svc.logfile}:\n{_log_tail(svc.logfile)}"
            )
        time.sleep(0.1)


# --------------------------------------------------------------------------
# Lifecycle


def ensure_up(engine: Engine | None = None) -> Engine:
    """Start whatever part of the engine is not answering; reuse the rest.

    ``engine`` (default: from the environment) may name another root whose
    registries are the running ones: only its containerd and dockerd start."""
    engine = engine or engine_info()
    root = Path(engine.root)
    services = _services(engine)
    if all(svc.ready() for svc in services):
        return engine

    root.mkdir(parents=True, exist_ok=True)
    for svc in services:
        if svc.config:
            _write_if_changed(*svc.config)

    deadline = time.monotonic() + READY_TIMEOUT
    pending: dict[str, tuple[_Service, int | None]] = {}
    for svc in services:
        if svc.ready():
            continue
        if svc.needs in pending:
            # dockerd needs containerd's socket at start-up.
            _wait_ready(*pending.pop(svc.needs), deadline)
        # A live process of ours that does not answer yet is probably still
        # starting (e.g. another `up` just launched it): wait for it instead.
        pid = _our_live_pid(svc, root)
        if pid is None:
            pid = _start(svc)
        pending[svc.name] = (svc, pid)
    # Started everything first, then wait, so the slow starts overlap.
    for svc, pid in pending.values():
        _wait_ready(svc, pid, deadline)
    return engine


def _stop_pid(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            break
        time.sleep(0.1)
    _children.pop(pid, None)


def down(engine: Engine | None = None) -> None:
    """Stop the processes we started (reverse order); data is kept."""
    engine = engine or engine_info()
    root = Path(engine.root)
    for svc in reversed(_services(engine)):
        pid = _our_live_pid(svc, root)
        if pid is not None:
            try:
                _stop_pid(pid)
            except ProcessLookupError:
                pass
        svc.pidfile.unlink(missing_ok=True)
        for sock in svc.sockets:
            sock.unlink(missing_ok=True)


def status() -> dict[str, dict]:
    engine = engine_info()
    root = Path(engine.root)
    result = {}
    for svc in _services(engine):
        result[svc.name] = {
            "pid": _our_live_pid(svc, root),
            "ready": svc.ready(),
            "log": str(svc.logfile),
        }
    return result


# --------------------------------------------------------------------------
# Registries


def split_ref(ref: str) -> tuple[str, str, str]:
    """'127.0.0.1:5551/library/redis:7-alpine' -> (registry, path, tag)."""
    registry, _, rest = ref.partition("/")
    name, sep, tag = rest.rpartition(":")
    if not sep or "/" in tag:
        name, tag = rest, "latest"
    return registry, name, tag


def registry_digest(registry: str, path: str, tag: str) -> str | None:
    """The manifest digest the registry serves for path:tag, or None if absent."""
    status, headers, _ = _http("HEAD", f"http://{registry}/v2/{path}/manifests/{tag}", {"Accept": MANIFEST_ACCEPT})
    if status == 404:
        return None
    if status != 200:
        raise EngineError(f"HEAD {registry}/{path}:{tag} -> HTTP {status}")
    return headers.get("Docker-Content-Digest")


def delete_from_registry(registry: str, path: str, tag: str) -> str | None:
    """Delete the manifest behind path:tag (and so the tag); return its digest."""
    digest = registry_digest(registry, path, tag)
    if digest is None:
        return None
    status, _, body = _http("DELETE", f"http://{registry}/v2/{path}/manifests/{digest}")
    if status not in (200, 202):
        raise EngineError(f"DELETE {registry}/{path}@{digest} -> HTTP {status}: {body[:200]!r}")
    return digest


# --------------------------------------------------------------------------
# Seeding

_TAR_MTIME = 1_700_000_000  # fixed so the base layer is byte-for-byte stable
_base_tar: bytes | None = None


def _base_rootfs_members() -> bytes:
    """Tar members (no end-of-archive marker) of a minimal busybox rootfs.

    Built once per process: busybox is ~1-2 MB and seeding must be fast.
    """
    global _base_tar
    if _base_tar is not None:
        return _base_tar
    busybox = Path("/bin/busybox").read_bytes()
    applets = subprocess.run(["/bin/busybox", "--list"], check=True, capture_output=True, text=True).stdout.split()

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = kind, mode, _TAR_MTIME
        ti.uname = ti.gname = "root"
        return ti

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            tf.addfile(info(d, tarfile.DIRTYPE, mode))
        # Accounts so Dockerfiles can switch users (USER 0, USER 999, ...) as on real images.
        for name, text in (
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nargocd:x:999:999::/home/argocd:/bin/sh\n"
                "git:x:1000:1000::/var/lib/gitea:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
            ),
            ("etc/group", "root:x:0:\nargocd:x:999:\ngit:x:1000:\nnogroup:x:65534:\n"),
        ):
            ti = info(name, tarfile.REGTYPE, 0o644)
            ti.size = len(text)
            tf.addfile(ti, io.BytesIO(text.encode()))
        ti = info("bin/busybox", tarfile.REGTYPE, 0o755)
        ti.size = len(busybox)
        tf.addfile(ti, io.BytesIO(busybox))
        for applet in sorted(set(applets) - {"busybox"}):
            ti = info(f"bin/{applet}", tarfile.SYMTYPE, 0o777)
            ti.linkname = "busybox"
            tf.addfile(ti)
        # addfile() writes straight through; close() would append the two
        # end-of-archive blocks, which we don't want before the marker file.
        _base_tar = buf.getvalue()
    return _base_tar


def _rootfs_tar(target: str, origin: str) -> bytes:
    """The shared busybox rootfs plus a /marker that makes each image unique."""
    marker = f"ref={target}\norigin={origin}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("marker")
        ti.size, ti.mode, ti.mtime = len(marker), 0o644, _TAR_MTIME
        tf.addfile(ti, io.BytesIO(marker))
    # A tar stream is just members back to back, so this concatenation is valid.
    return _base_rootfs_members() + buf.getvalue()


def _check_stream(lines, what: str) -> list[dict]:
    chunks = []
    for chunk in lines:
        if isinstance(chunk, (bytes, str)):
            chunk = json.loads(chunk)
        if "error" in chunk or "errorDetail" in chunk:
            raise EngineError(f"{what} failed: {chunk.get('error') or chunk.get('errorDetail')}")
        chunks.append(chunk)
    return chunks


def seed(engine: Engine, targets: dict[str, str], force: bool = False) -> dict[str, str]:
    """Push a tiny distinct image to each target ref; return ref -> manifest digest.

    targets maps "127.0.0.1:PORT/path:tag" to an origin label ("hub", "harbor").
    Refs already present in their registry are left alone unless force=True.
    """
    api = engine.api()
    digests: dict[str, str] = {}
    try:
        for target, origin in targets.items():
            registry, path, tag = split_ref(target)
            if not force:
                existing = registry_digest(registry, path, tag)
                if existing:
                    digests[target] = existing
                    continue
            changes = [
                f"LABEL {LABEL_ORIGIN}={json.dumps(origin)}",
                f"LABEL {LABEL_REF}={json.dumps(target)}",
                "ENV PATH=/bin",
                'CMD ["/bin/sh"]',
            ]
            out = api.import_image_from_data(
                _rootfs_tar(target, origin), repository=f"{registry}/{path}", tag=tag, changes=changes
            )
            _check_stream([line for line in out.splitlines() if line.strip()], f"import {target}")
            pushed = _check_stream(api.push(f"{registry}/{path}", tag=tag, stream=True, decode=True), f"push {target}")
            digest = next(
                (c["aux"]["Digest"] for c in pushed if isinstance(c.get("aux"), dict) and "Digest" in c["aux"]),
                None,
            ) or registry_digest(registry, path, tag)
            if not digest:
                raise EngineError(f"push {target}: registry has no manifest afterwards")
            # Only the registry should hold the image; tests pull it themselves.
            api.remove_image(target)
            digests[target] = digest
    finally:
        api.close()
    return digests


def reset_images(engine: Engine) -> None:
    """Remove every container and image from the private daemon."""
    api = engine.api()
    try:
        for container in api.containers(all=True):
            api.remove_container(container["Id"], force=True, v=True)
        # Removing an image can take its parents with it, and a multi-tagged
        # image needs force; a few passes settle everything.
        for _ in range(5):
            images = api.images(all=True)
            if not images:
                break
            for image in images:
                try:
                    api.remove_image(image["Id"], force=True)
                except docker.errors.NotFound:
                    pass
        else:
            left = [i.get("RepoTags") or i["Id"] for i in api.images(all=True)]
            raise EngineError(f"images left after reset: {left}")
        try:
            api.prune_builds()
        except docker.errors.APIError:
            pass  # nothing important if the build cache can't be pruned
    finally:
        api.close()


# --------------------------------------------------------------------------
# CLI


def _print_env(engine: Engine) -> None:
    for key, value in engine.env().items():
        print(f"export {key}={shlex.quote(value)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "env", "status", "reset"])
    args = parser.parse_args(argv)
    if args.command == "up":
        started = time.monotonic()
        engine = ensure_up()
        print(f"# engine up in {time.monotonic() - started:.1f}s (root {engine.root})", file=sys.stderr)
        _print_env(engine)
    elif args.command == "down":
        down()
    elif args.command == "env":
        _print_env(engine_info())
    elif args.command == "reset":  # the demo starts from an empty private engine
        reset_images(engine_info())
    elif args.command == "status":
        report = status()
        for name, st in report.items():
            state = "ready" if st["ready"] else "DOWN"
            print(f"{name:10} {state:5} pid={st['pid'] or '-'} log={st['log']}")
        return 0 if all(st["ready"] for st in report.values()) else 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EngineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
