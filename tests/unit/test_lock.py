"""The daemon lock excludes a second writer, names the holder, and never outlives its process.

Holders are real processes (the kernel's flock is what is under test); each
test kills only the processes it started, by pid.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.errors import ReconcileError
from reconciler.lock import LOCK_DIR_MODE, LOCK_FILE_MODE, LockedError, hold, lock_dir, lock_path

DAEMON = "ABCD:EFGH:IJKL:MNOP:QRST:UVWX:YZ01:2345:6789:ABCD:EFGH:IJKL"
HOLDER = """
import sys
from pathlib import Path
from reconciler.lock import hold
with hold(sys.argv[2], "reconcile apply", directory=Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()  # hold until the test closes stdin
"""


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the lock for a daemon ID; it releases when its stdin is closed."""
    started: list[subprocess.Popen] = []

    def start(daemon_id: str = DAEMON) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path), daemon_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
        proc.wait(timeout=10)


def test_held_lock_fails_at_once_naming_the_holder(holder, tmp_path):
    proc = holder()
    began = time.monotonic()
    with pytest.raises(LockedError) as caught:
        with hold(DAEMON, "reconcile tag-localhost", directory=tmp_path):
            pytest.fail("acquired a held lock")
    assert time.monotonic() - began < 1
    message = str(caught.value)
    assert "\n" not in message
    assert re.fullmatch(
        rf'the daemon is locked by pid {proc.pid} \(\S+@\S+, "reconcile apply", since '
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); wait for it, or pass --lock-timeout SECONDS",
        message,
    ), message
    assert caught.value.holder["pid"] == proc.pid
    assert isinstance(caught.value, ReconcileError)


def test_timeout_that_covers_the_release_succeeds(holder, tmp_path):
    proc = holder()
    threading.Timer(0.5, proc.stdin.close).start()
    with hold(DAEMON, "reconcile apply", timeout=30, directory=tmp_path) as path:
        note = json.loads(path.with_suffix(".json").read_text())
        assert note["pid"] == os.getpid()
    assert proc.wait(timeout=10) == 0


def test_timeout_that_expires_says_how_long_it_waited(holder, tmp_path):
    holder()
    began = time.monotonic()
    with pytest.raises(LockedError, match=r"still after 0\.3s; wait for it"):
        with hold(DAEMON, "reconcile apply", timeout=0.3, directory=tmp_path):
            pass
    assert 0.3 <= time.monotonic() - began < 2


def test_a_killed_holder_leaves_no_block(holder, tmp_path):
    proc = holder()
    note = lock_path(DAEMON, tmp_path).with_suffix(".json")
    os.kill(proc.pid, 9)
    proc.wait(timeout=10)
    assert json.loads(note.read_text())["pid"] == proc.pid  # its note is left behind
    with hold(DAEMON, "reconcile apply", directory=tmp_path):
        assert json.loads(note.read_text())["pid"] == os.getpid()  # and overwritten


def test_a_stale_note_alone_does_not_block(tmp_path):
    note = lock_path(DAEMON, tmp_path).with_suffix(".json")
    note.write_text(json.dumps({"pid": 2**22 + 1, "user": "ghost", "command": "reconcile apply"}))
    with hold(DAEMON, "reconcile apply", directory=tmp_path):
        assert json.loads(note.read_text())["user"] != "ghost"
    assert not note.exists()


def test_different_daemons_do_not_block_each_other(holder, tmp_path):
    holder("daemon-one")
    with hold("daemon-two", "reconcile apply", directory=tmp_path):
        with pytest.raises(LockedError):
            with hold("daemon-one", "reconcile apply", directory=tmp_path):
                pass


def test_note_says_who_holds_the_lock_and_goes_with_it(tmp_path):
    before = datetime.now(UTC).replace(microsecond=0)
    with hold(DAEMON, "reconcile apply", directory=tmp_path) as path:
        note = json.loads(path.with_suffix(".json").read_text())
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert set(note) == {"pid", "user", "host", "command", "started", "daemon_id"}
    assert note["pid"] == os.getpid()
    assert note["command"] == "reconcile apply"
    assert note["daemon_id"] == DAEMON
    assert note["user"] and note["host"]
    started = datetime.strptime(note["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= started <= datetime.now(UTC)
    assert not path.with_suffix(".json").exists()
    assert path.exists()  # the lock file stays: unlinking it would let two holders lock different inodes


def test_lock_file_name_is_safe_and_per_daemon(tmp_path):
    one, two = lock_path(DAEMON, tmp_path), lock_path("other", tmp_path)
    assert one != two and one.parent == tmp_path
    assert re.fullmatch(r"daemon-[0-9a-f]{16}\.lock", one.name)


def test_unusable_directory_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ReconcileError, match=r"cannot create the lock file .*RECONCILE_CACHE_DIR") as caught:
        with hold(DAEMON, "reconcile apply", directory=tmp_path / "file" / "locks"):
            pass
    assert not isinstance(caught.value, LockedError)


def test_the_lock_dir_is_the_same_with_or_without_a_runtime_dir(monkeypatch, tmp_path):
    # A deploy from a terminal (XDG_RUNTIME_DIR set) and one from cron (unset) must meet on one lock.
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    with_runtime = lock_dir()
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert lock_dir() == with_runtime == tmp_path / "cache" / "locks"


def test_held_lock_without_a_note_still_refuses(tmp_path):
    # flock is per open file, so a second hold() in the same process conflicts like another process would.
    with hold(DAEMON, "reconcile apply", directory=tmp_path) as path:
        path.with_suffix(".json").unlink()
        with pytest.raises(LockedError, match=r"locked by another process \(no readable note at .*\.json\)"):
            with hold(DAEMON, "reconcile apply", directory=tmp_path):
                pass


def test_lock_folder_and_file_are_shared_with_the_group_whatever_the_umask(tmp_path):
    locks = tmp_path / "cache" / "locks"
    old = os.umask(0o077)
    try:
        with hold(DAEMON, "reconcile apply", directory=locks) as path:
            note_mode = stat.S_IMODE(path.with_suffix(".json").stat().st_mode)
    finally:
        os.umask(old)
    assert stat.S_IMODE(locks.stat().st_mode) == LOCK_DIR_MODE == 0o2775
    assert stat.S_IMODE(path.stat().st_mode) == LOCK_FILE_MODE == 0o664
    assert note_mode == 0o644  # whoever is refused can read who holds it


def test_own_lock_file_left_by_an_older_version_is_opened_to_the_group(tmp_path):
    path = lock_path(DAEMON, tmp_path)
    path.touch()
    path.chmod(0o644)
    with hold(DAEMON, "reconcile apply", directory=tmp_path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o664


def test_existing_lock_folder_keeps_its_mode(tmp_path):
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    with hold(DAEMON, "reconcile apply", directory=locks):
        pass
    assert stat.S_IMODE(locks.stat().st_mode) == 0o700


def test_symlink_planted_as_lock_file_is_refused(tmp_path):
    # In a group-writable folder another member could point the lock file at a file of ours.
    mine = tmp_path / "private"
    mine.write_text("secret")
    mine.chmod(0o600)
    (tmp_path / "locks").mkdir()
    lock_path(DAEMON, tmp_path / "locks").symlink_to(mine)
    with pytest.raises(ReconcileError, match=r"cannot open the lock file .*daemon-\w+\.lock: "):
        with hold(DAEMON, "reconcile apply", directory=tmp_path / "locks"):
            pass
    assert stat.S_IMODE(mine.stat().st_mode) == 0o600


# Other Unix users, for real: a forked child switches uid and gid and runs hold()
# (forked, not exec'd: the interpreter lives under /root, which they cannot read).
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="taking another uid needs root")


def _free_ids(count: int) -> list[int]:
    ids, candidate = [], 61000
    while len(ids) < count:
        try:
            pwd.getpwuid(candidate)
        except KeyError:
            try:
                grp.getgrgid(candidate)
            except KeyError:
                ids.append(candidate)
        candidate += 1
    return ids


class Locker:
    """A process running as another user that takes the lock and holds it until released."""

    def __init__(self, pid: int, release_fd: int, output_fd: int):
        self.pid, self._release_fd, self._output_fd = pid, release_fd, output_fd
        self.status: int | None = None

    def line(self) -> str:
        text = b""
        while not text.endswith(b"\n"):
            ready, _, _ = select.select([self._output_fd], [], [], 10)
            assert ready, "the other user's locker said nothing in 10s"
            chunk = os.read(self._output_fd, 4096)
            if not chunk:
                break
            text += chunk
        return text.decode()

    def wait(self) -> int:
        if self.status is None:
            os.close(self._release_fd)  # EOF tells a holder to release
            self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            os.close(self._output_fd)
        return self.status


@pytest.fixture
def as_user():
    """Start hold() as uid/gid with supplementary group ``group`` and umask 077."""
    started: list[Locker] = []

    def start(uid: int, gid: int, group: int, name: str, cache: Path) -> Locker:
        release_r, release_w = os.pipe()
        output_r, output_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            code = 1
            try:
                os.close(release_w)
                os.close(output_r)
                os.setgroups([group])
                os.setgid(gid)
                os.setuid(uid)
                os.umask(0o077)
                os.environ.update(USER=name, RECONCILE_CACHE_DIR=str(cache))
                try:
                    with hold(DAEMON, "reconcile apply"):
                        os.write(output_w, b"locked\n")
                        os.read(release_r, 1)
                    code = 0
                except ReconcileError as exc:
                    os.write(output_w, f"{exc}\n".encode())
                    code = 3
            finally:
                os._exit(code)
        os.close(release_r)
        os.close(output_w)
        locker = Locker(pid, release_w, output_r)
        started.append(locker)
        return locker

    yield start
    for locker in started:
        if locker.status is None:
            os.kill(locker.pid, 9)
            locker.wait()


@pytest.fixture
def shared_cache():
    """A cache dir set up as docs/commands.md says: group-owned, setgid, group-writable;
    with the uids and gids of two users alice and bob who are both in that group."""
    uid_a, uid_b, gid_a, gid_b, group = _free_ids(5)
    base = Path(tempfile.mkdtemp(prefix="reconcile-lock-"))  # not under pytest's 0700 tmp
    base.chmod(0o755)
    cache = base / "cache"
    cache.mkdir()
    os.chown(cache, 0, group)
    cache.chmod(0o2770)
    yield cache, (uid_a, gid_a), (uid_b, gid_b), group
    shutil.rmtree(base)


@needs_root
def test_second_unix_user_takes_and_releases_the_shared_lock(as_user, shared_cache):
    cache, (uid_a, gid_a), (uid_b, gid_b), group = shared_cache
    alice = as_user(uid_a, gid_a, group, "alice", cache)
    assert alice.line() == "locked\n"

    locks = cache / "locks"
    path = lock_path(DAEMON, locks)
    note = path.with_suffix(".json")
    folder = locks.stat()
    assert stat.S_IMODE(folder.st_mode) == 0o2775 and folder.st_gid == group
    made = path.stat()
    # group from the setgid folder, not alice's own gid; mode not from her umask 077
    assert (made.st_uid, made.st_gid, stat.S_IMODE(made.st_mode)) == (uid_a, group, 0o664)

    refused = as_user(uid_b, gid_b, group, "bob", cache)
    assert refused.line().startswith(f"the daemon is locked by pid {alice.pid} (alice@")  # her note is readable
    assert refused.wait() == 3
    assert alice.wait() == 0

    bob = as_user(uid_b, gid_b, group, "bob", cache)
    assert bob.line() == "locked\n"
    assert json.loads(note.read_text())["pid"] == bob.pid  # he replaced alice's note
    assert bob.wait() == 0
    assert not note.exists()  # and removed his own

    again = as_user(uid_a, gid_a, group, "alice", cache)
    assert again.line() == "locked\n"
    assert again.wait() == 0


@needs_root
def test_lock_file_another_user_cannot_write_is_a_one_line_error(as_user, shared_cache):
    cache, _alice, (uid_b, gid_b), group = shared_cache
    locks = cache / "locks"
    locks.mkdir()
    locks.chmod(0o2775)
    path = lock_path(DAEMON, locks)
    path.touch()
    path.chmod(0o644)  # as an older reconcile left it, under umask 022

    bob = as_user(uid_b, gid_b, group, "bob", cache)
    output = bob.line()
    assert bob.wait() == 3
    assert output.count("\n") == 1
    assert output == (
        f"the lock file {path} is not writable for bob (owner root, group {group}, mode 0644); "
        "its owner can run chmod g+w on it (you must be in its group), "
        "or set RECONCILE_CACHE_DIR to a directory of your own\n"
    )


@needs_root
def test_lock_folder_another_user_cannot_write_is_a_one_line_error(as_user, shared_cache):
    cache, _alice, (uid_b, gid_b), group = shared_cache
    (cache / "locks").mkdir(mode=0o755)  # as an older reconcile made it, under umask 022

    bob = as_user(uid_b, gid_b, group, "bob", cache)
    output = bob.line()
    assert bob.wait() == 3
    assert output == (
        f"cannot create the lock file {lock_path(DAEMON, cache / 'locks')}: Permission denied; "
        "its owner can make the folder group-writable (chmod 2775), or set RECONCILE_CACHE_DIR to a writable directory\n"
    )
