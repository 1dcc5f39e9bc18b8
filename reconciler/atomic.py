"""Atomic file replacement: what reconcile writes is either the old file or the new one.

Every writer (rendered files, saved plans, metrics, caches, lock notes) goes
through here: a temp file beside the target, fsynced, then a rename.  The temp
name (``.<name>.<random>.tmp``) never ends like the target, so a reader globbing
for ``*.prom`` or ``*.json`` never sees a half-written file, and it never stays behind.

The work is done relative to an open folder (:func:`replace_in`), so a caller
that walked down to the folder without following symlinks (``files.write``)
cannot be sent elsewhere between its check and its write.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` (and ``mode``, else 0600); the folder must exist."""
    folder = os.open(path.parent, FOLDER_FLAGS)
    try:
        replace_in(folder, path.name, data, mode)
    finally:
        os.close(folder)


def replace_in(folder: int, name: str, data: bytes, mode: int | None = None) -> None:
    """Replace ``name`` in the open ``folder`` with ``data`` (and ``mode``, else 0600).

    The temp file is created with ``O_EXCL | O_NOFOLLOW``: a name planted in its
    place (a symlink included) is never written through."""
    for _ in range(100):
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temp name for {name}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=folder)
        except OSError:
            pass  # the folder went away with it
        raise
