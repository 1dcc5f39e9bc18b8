"""The daemon lock excludes a second writer, names the holder, and never outlives its process.

Holders are real processes (the kernel's flock is what is under test); each
test kills only the processes it started, by pid.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest

from reconciler.errors import ReconcileError
from reconciler.lock import LockedError, hold, lock_dir, lock_path

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
