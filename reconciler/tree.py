"""The stack folder as apply will leave it.

Templates and copied files are rendered in memory before anything else reads
the stack, so a Dockerfile or compose file that a template writes is read as
it *will* be: the plan is exact before the first apply, and ``plan`` writes
nothing.  Every reader of stack files (service discovery, Dockerfiles, compose
files) goes through a :class:`StackTree`: the files on disk, overlaid with the
planned writes.

What may be read at all is the stack folder, plus the folders a stack opts in
to with ``[stack] allow_outside`` (:func:`readable_folders`): a source, an
included template, a Dockerfile or a build context leading elsewhere, through
``..``, an absolute path or a symlink, is refused by whoever reads it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path, PurePosixPath

MAX_FILE_BYTES = 64 * 1024 * 1024  # a stack file (Dockerfile, compose, env, template source) read whole


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.  Anything else is an OSError
    naming why, so a path to a FIFO, a device such as /dev/zero, or a huge file can neither
    hang a read nor fill memory (opened non-blocking: opening a FIFO does not wait)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        content = file.read(limit + 1)
        if len(content) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit // (1024 * 1024)} MiB", str(path))
        return content


def readable_folders(root: Path, allow_outside: Iterable[str] = ()) -> tuple[Path, ...]:
    """The stack folder and each ``allow_outside`` folder (relative to it), symlinks resolved."""
    return (root.resolve(), *((root / folder).resolve() for folder in allow_outside))


def leads_outside(path: Path, folders: tuple[Path, ...]) -> Path | None:
    """Where ``path`` really is (symlinks followed) when that is in none of ``folders``; else None."""
    real = Path(os.path.realpath(path))
    return None if any(real.is_relative_to(folder) for folder in folders) else real


class StackTree:
    """Files on disk under ``root``, overlaid by ``planned`` (absolute path -> bytes).

    A planned path whose content is ``None`` is known to be written but not yet
    rendered: it exists for :meth:`is_file` and :meth:`glob` only.
    """

    def __init__(self, root: Path, planned: Mapping[Path, bytes | None] | None = None):
        self.root = root
        self.planned: dict[Path, bytes | None] = dict(planned or {})

    def is_file(self, path: Path) -> bool:
        return path in self.planned or path.is_file()

    def read_bytes(self, path: Path) -> bytes:
        content = self.planned.get(path)
        if content is not None:
            return content
        if path in self.planned:
            raise LookupError(f"{path} is read before it is rendered")  # a bug in the pipeline's order
        return read_regular(path)

    def read_text(self, path: Path) -> str:
        return self.read_bytes(path).decode("utf-8")

    def glob(self, pattern: str) -> list[Path]:
        """``Path.glob`` relative to the root, plus the planned files the pattern matches."""
        found = {p for p in self.root.glob(pattern) if p.is_file()}
        regex = _glob_regex(pattern)
        for path in self.planned:
            try:
                rel = path.relative_to(self.root)
            except ValueError:
                continue
            if regex.fullmatch(PurePosixPath(rel).as_posix()):
                found.add(path)
        return sorted(found)


@lru_cache(maxsize=64)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``pathlib`` glob semantics as a regex: ``*`` and ``?`` within one component, ``**`` any depth."""
    out = []
    for part in PurePosixPath(pattern).parts:
        if part == "**":
            out.append("(?:[^/]+/)*")
            continue
        i, piece = 0, []
        while i < len(part):
            c = part[i]
            if c == "*":
                piece.append("[^/]*")
            elif c == "?":
                piece.append("[^/]")
            elif c == "[" and (end := part.find("]", i + 2)) != -1:
                body = part[i + 1 : end]
                body = body.replace("\\", "\\\\")
                piece.append("[^" + body[1:] + "]" if body[0] == "!" else "[" + body + "]")
                i = end
            else:
                piece.append(re.escape(c))
            i += 1
        out.append("".join(piece) + "/")
    return re.compile("".join(out).removesuffix("/"))
