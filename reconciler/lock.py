"""One writer per Docker daemon.

Two ``reconcile apply`` runs against one daemon would plan from the same
observed state and then pull, tag and build over each other, so apply and
tag-localhost first take an exclusive lock named after the daemon ID.

It is a ``flock``: the kernel drops it when the holder dies, however it dies,
so a lock left by a dead process never blocks.  The JSON note beside it only
lets a refusal name the holder; it never decides whether the lock is held, and
a stale one is overwritten by the next holder.

Several Unix users may share one ``RECONCILE_CACHE_DIR``: the lock folder is
made setgid and group-writable, and lock files group-writable, with modes set
explicitly rather than left to each user's umask, so every member of the
folder's group can open and lock every lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import grp
import hashlib
import json
import os
import pwd
import socket
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .atomic import write_atomically
from .errors import ReconcileError

POLL_INTERVAL = 0.1
ENV_DIR = "RECONCILE_CACHE_DIR"  # as network.cache_dir reads it
# setgid: files created inside take the folder's group, not their creator's primary
# group. No sticky bit: a user must be able to replace or remove another's stale note.
LOCK_DIR_MODE = 0o2775
LOCK_FILE_MODE = 0o664  # flock needs no write access on Linux, but NFS's emulation does
NOTE_MODE = 0o644  # read by whoever is refused, to name the holder


class LockedError(ReconcileError):
    """Another process holds the daemon's lock; ``holder`` is its note, if readable."""

    def __init__(self, what: str, *, path: Path, holder: dict | None):
        super().__init__(what, hint="wait for it, or pass --lock-timeout SECONDS")
        self.path = path
        self.holder = holder


def lock_dir() -> Path:
    """``locks/`` in the user's cache dir (``RECONCILE_CACHE_DIR`` if set).  One
    place whatever the environment: a terminal with ``XDG_RUNTIME_DIR`` and a cron
    job without it must find the same lock."""
    from .network import cache_dir

    return cache_dir() / "locks"


def lock_path(daemon_id: str, directory: Path | None = None) -> Path:
    """A daemon ID holds ':' and may come from anywhere; a hash makes it a safe, fixed-length name."""
    key = hashlib.sha256(daemon_id.encode()).hexdigest()[:16]
    return (directory or lock_dir()) / f"daemon-{key}.lock"


@contextlib.contextmanager
def hold(daemon_id: str, command: str, *, timeout: float = 0.0, directory: Path | None = None) -> Iterator[Path]:
    """Hold the daemon's lock for the ``with`` block, waiting up to ``timeout`` seconds (0: fail at once)."""
    path = lock_path(daemon_id, directory)
    note = path.with_suffix(".json")
    fd = _open_lock_file(path)
    try:
        _acquire(fd, path, note, timeout)
        _write_note(note, daemon_id, command)
        try:
            yield path
        finally:
            # Removed while still held, so it can never be the next holder's note.
            with contextlib.suppress(OSError):
                note.unlink()
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _make_lock_dir(directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory)
    except FileExistsError:
        return  # someone chose its mode already; only a folder made here is set up here
    os.chmod(directory, LOCK_DIR_MODE)  # mkdir's mode is cut by the umask and never sets setgid


def _open_lock_file(path: Path) -> int:
    """Open (creating if needed) the lock file for reading and writing; a one-line error otherwise."""
    # O_NOFOLLOW: in a folder a whole group can write, a planted symlink must not
    # make us open, or chmod, a file of ours elsewhere.
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        _make_lock_dir(path.parent)
    except OSError as exc:
        raise ReconcileError(
            f"cannot create the lock file {path}: {exc.strerror}", hint=f"set {ENV_DIR} to a writable directory"
        ) from None
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, LOCK_FILE_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ReconcileError(
            f"cannot create the lock file {path}: {exc.strerror}",
            hint=f"its owner can make the folder group-writable (chmod 2775), or set {ENV_DIR} to a writable directory",
        ) from None
    else:
        os.fchmod(fd, LOCK_FILE_MODE)  # the creator's umask must not decide who else can lock
        return fd
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise ReconcileError(
            f"the lock file {path} is not writable for {_user()} ({_owner_and_mode(path)})",
            hint=f"its owner can run chmod g+w on it (you must be in its group), or set {ENV_DIR} to a directory of your own",
        ) from None
    except OSError as exc:
        raise ReconcileError(
            f"cannot open the lock file {path}: {exc.strerror}", hint=f"set {ENV_DIR} to a writable directory"
        ) from None
    info = os.fstat(fd)
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == os.geteuid() and mode & 0o060 != 0o060:
        # Made by an older reconcile with the umask's mode: open it to the group now.
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode | 0o060)
    return fd


def _owner_and_mode(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        return "owner unknown"
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return f"owner {owner}, group {group}, mode {stat.S_IMODE(info.st_mode):04o}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry and no $USER, e.g. in a container
        return str(os.getuid())


def _acquire(fd: int, path: Path, note: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(POLL_INTERVAL, left))
        except OSError as exc:  # e.g. ENOLCK on a filesystem without flock
            raise ReconcileError(
                f"cannot lock {path}: {exc.strerror}", hint=f"set {ENV_DIR} to a local directory"
            ) from None
    try:
        holder = json.loads(note.read_text())
    except (OSError, ValueError):
        holder = None
    if isinstance(holder, dict):
        get = {"pid": "?", "user": "?", "host": "?", "command": "?", "started": "?", **holder}.get
        who = f'pid {get("pid")} ({get("user")}@{get("host")}, "{get("command")}", since {get("started")})'
    else:
        holder, who = None, f"another process (no readable note at {note})"
    waited = f", still after {timeout:g}s" if timeout > 0 else ""
    raise LockedError(f"the daemon is locked by {who}{waited}", path=path, holder=holder)


def _write_note(note: Path, daemon_id: str, command: str) -> None:
    user = _user()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = dict(
        pid=os.getpid(), user=user, host=socket.gethostname(), command=command, started=started, daemon_id=daemon_id
    )
    with contextlib.suppress(OSError):  # the lock is held; a missing note only makes a refusal less specific
        write_atomically(note, (json.dumps(data, indent=2) + "\n").encode(), mode=NOTE_MODE)
