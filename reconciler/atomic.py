"""Atomic file replacement: what reconcile writes is either the old file or the new one.

Every writer (rendered files, saved plans, metrics, caches, lock notes) goes
through here: a temp file beside the target, then a rename.  The temp name
(``.<name>.*.tmp``) never ends like the target, so a reader globbing for
``*.prom`` or ``*.json`` never sees a half-written file, and it never stays behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` (and ``mode``); the folder must exist."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
