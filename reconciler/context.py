"""Build contexts: which files the daemon receives, their hashes, and the tar itself.

The file set is docker-py's own ``.dockerignore`` matching (``exclude_paths``,
the code ``APIClient.build`` uses), so what is hashed is exactly what is sent.
Hashing goes through a stat cache (path, size, mtime_ns, inode -> sha256)
kept in the user's cache dir: an unchanged context costs one stat per file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .atomic import write_atomically
from .errors import InputError, where
from .network import cache_dir

if TYPE_CHECKING:
    from .dockerfiles import Source

# docker-py compiles .dockerignore patterns with `re`, which warns about pattern forms it may
# read differently one day ([[:alpha:]]); the match is docker's either way, and a warning on
# stderr is noise the user cannot act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"docker\.utils\.fnmatch")

# A file's entry in the inputs record: "<mode>:<sha256 hex>" (or "l:<target>" for a symlink).
Entry = str
DOCKERFILE_IN_TAR = ".reconcile.Dockerfile"  # when the Dockerfile lives outside its context


def ignore_patterns(context: Path) -> list[str]:
    """The ``.dockerignore`` patterns, read the way ``docker.APIClient.build`` reads them."""
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read .dockerignore: {exc}", where=str(path), hint="fix or remove the file") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def dockerfile_in_context(context: Path, dockerfile: Path) -> str:
    """The Dockerfile's name inside the tar the daemon receives."""
    try:
        return str(dockerfile.relative_to(context))
    except ValueError:
        return DOCKERFILE_IN_TAR


def context_paths(context: Path, dockerfile: Path) -> list[str]:
    """Every path (files, symlinks, folders) the daemon will receive, sorted."""
    from .dockerpy import docker  # docker-py's own matcher: the set equals what is sent

    exclude_paths = docker.utils.build.exclude_paths

    if not context.is_dir():
        raise InputError(f"build context {context} is not a folder", hint="fix the service's context")
    try:
        return sorted(
            exclude_paths(str(context), ignore_patterns(context), dockerfile=dockerfile_in_context(context, dockerfile))
        )
    except OSError as exc:
        raise InputError(f"cannot read build context: {exc}", where=str(context), hint="check permissions") from None
    except re.error as exc:  # docker-py turns each pattern into a regular expression
        raise InputError(
            f"bad .dockerignore pattern: {exc}", where=str(context / ".dockerignore"), hint="fix the pattern"
        ) from None


class HashCache:
    """sha256 of files, remembered by (size, mtime_ns, ctime_ns, inode) across runs.

    ctime as git's index uses it: ``cp -p`` or ``rsync -t`` can put back the mtime
    of a same-size edit, but nothing but the kernel sets the ctime, and any write or
    utime moves it. An entry of another shape (an older version's) is a miss.
    """

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "file-hashes.json"
        try:
            known = json.loads(self.path.read_text())
        except (OSError, ValueError):
            known = {}
        self.known: dict[str, list] = known if isinstance(known, dict) else {}  # a damaged cache is no cache
        self.changed = False

    def sha256(self, path: Path, st: os.stat_result) -> str:
        key = str(path)
        mark = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = self.known.get(key)
        if isinstance(hit, list) and len(hit) == len(mark) + 1 and hit[:-1] == mark and isinstance(hit[-1], str):
            return hit[-1]
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        self.known[key] = [*mark, digest.hexdigest()]
        self.changed = True
        return digest.hexdigest()

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, json.dumps(self.known).encode())
            self.changed = False
        except OSError:
            pass  # a cache that cannot be written only costs time next run


def entry(path: Path, cache: HashCache) -> Entry | None:
    """A path's entry in the record: mode and content hash; None for folders and sockets."""
    try:
        st = path.lstat()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="check the build context") from None
    if stat.S_ISLNK(st.st_mode):
        return f"l:{os.readlink(path)}"
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        return f"{stat.S_IMODE(st.st_mode):o}:{cache.sha256(path, st)}"
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="check permissions in the build context") from None


def context_record(
    context: Path,
    dockerfile: Path,
    cache: HashCache,
    overlay: dict[Path, Entry] | None = None,
    sources: list[Source] | None = None,
    *,
    shown_as: Callable[[Path], str] = str,
) -> dict[str, Entry]:
    """Relative path -> entry for every file the build reads.

    ``overlay`` holds files the plan will write first (rendered templates):
    their planned entry counts, whatever is on disk now.  ``sources`` (the
    Dockerfile's COPY/ADD/bind-mount paths; None: unknown) narrows the record
    to what the build can read, as BuildKit sends only those paths; a source
    that matches nothing is an error, as it would fail the build.
    """
    overlay = overlay or {}
    paths = build_paths(context, dockerfile, overlay, sources, shown_as=shown_as)
    record: dict[str, Entry] = {}
    for rel in paths:
        path = context / rel
        found = overlay.get(path) or entry(path, cache)
        if found is not None:
            record[rel] = found
    return record


def build_paths(
    context: Path,
    dockerfile: Path,
    overlay: dict[Path, Entry] | None = None,
    sources: list[Source] | None = None,
    *,
    shown_as: Callable[[Path], str] = str,
) -> list[str]:
    """The context paths a build reads: after ``.dockerignore``, narrowed to ``sources``."""
    paths = set(context_paths(context, dockerfile))
    for path in overlay or {}:  # planned files that do not exist yet
        try:
            rel = path.relative_to(context).as_posix()
        except ValueError:
            continue
        if rel not in paths and not _ignored(context, dockerfile, rel):
            paths.add(rel)
    if sources is None:
        return sorted(paths)
    from .dockerfiles import select

    if _through_a_link(context, paths, sources):
        return sorted(paths)  # BuildKit follows a symlinked folder inside a source path: send and hash it all
    used, unmatched = select(paths, sources)
    # COPY follows a symlink it names: what the link points at (inside the context) is read too.
    for rel in [r for r in used if (context / r).is_symlink()]:
        target = (context / rel).resolve()
        if target.is_relative_to(context.resolve()):
            inside = target.relative_to(context.resolve()).as_posix()
            used.update(p for p in paths if p == inside or p.startswith(inside + "/"))
    missing = [s for s in unmatched if not s.wildcard]
    if missing:
        source = missing[0]
        raise InputError(
            f"{source.instruction} source {source.pattern[:200]!r} matches nothing in the build context "
            f"{shown_as(context)} (after .dockerignore)",
            where=where(shown_as(dockerfile), source.line),
            hint="fix the path (relative to the context), the service's context, or .dockerignore",
        )
    return sorted(used)


def _through_a_link(context: Path, paths: set[str], sources: list[Source]) -> bool:
    """Whether a source's path goes through a symlinked folder (``COPY data/x`` with ``data -> real``)."""
    from .dockerfiles import Source, select

    links = {p for p in paths if (context / p).is_symlink() and (context / p).is_dir()}
    if not links:
        return False
    for source in sources:
        parts = source.pattern.split("/")
        for k in range(1, len(parts)):
            if select(links, [Source("/".join(parts[:k]), source.line, source.instruction)])[0]:
                return True
    return False


def _ignored(context: Path, dockerfile: Path, rel: str) -> bool:
    from .dockerpy import docker

    PatternMatcher = docker.utils.build.PatternMatcher

    patterns = [*ignore_patterns(context), f"!{dockerfile_in_context(context, dockerfile)}"]
    try:
        return PatternMatcher(patterns).matches(rel)
    except re.error as exc:
        raise InputError(
            f"bad .dockerignore pattern: {exc}", where=str(context / ".dockerignore"), hint="fix the pattern"
        ) from None


@dataclass
class PackedContext:
    """A build context as a tar on disk, and the record of exactly what it holds."""

    file: IO[bytes]
    dockerfile: str  # the Dockerfile's name inside the tar
    record: dict[str, Entry]


def pack(context: Path, dockerfile: Path, sources: list[Source] | None = None) -> PackedContext:
    """Write the tar the daemon receives, hashing each file from the bytes sent.

    GNU format with whole-second mtimes: BuildKit's Dockerfile frontend reads a
    PAX header (what Python writes for float mtimes) as a Dockerfile line.
    """
    inside = dockerfile_in_context(context, dockerfile)
    paths = build_paths(context, dockerfile, sources=sources)
    # The frontend reads the Dockerfile even when no COPY names it; it is hashed apart from the context.
    frontend_only = inside != DOCKERFILE_IN_TAR and inside not in paths
    record: dict[str, Entry] = {}
    spool = tempfile.TemporaryFile()  # noqa: SIM115 -- handed to the caller, who closes it
    try:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for rel in [*paths, inside] if frontend_only else paths:
                path = context / rel
                info = tar.gettarinfo(str(path), arcname=rel)
                if info is None:  # sockets and the like: the daemon would not get them either
                    continue
                info.mtime = int(info.mtime)
                if info.islnk():  # a second name of a hard link: sent as the file it is, as it was hashed
                    info.type, info.linkname, info.size = tarfile.REGTYPE, "", path.stat().st_size
                if info.issym():
                    record[rel] = f"l:{info.linkname}"
                if not info.isfile():
                    tar.addfile(info)
                    continue
                with open(path, "rb") as f:
                    reader = _Hashing(f)
                    tar.addfile(info, reader)  # streams: a context may hold files larger than memory
                record[rel] = f"{stat.S_IMODE(info.mode):o}:{reader.digest.hexdigest()}"
            if inside == DOCKERFILE_IN_TAR:
                data = dockerfile.read_bytes()
                info = tarfile.TarInfo(DOCKERFILE_IN_TAR)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    except OSError as exc:  # a file removed or made unreadable since the plan
        spool.close()
        raise InputError(
            f"cannot read the build context: {exc}", where=str(context), hint="check the files, then apply again"
        ) from None
    if frontend_only:
        record.pop(inside, None)
    spool.seek(0)
    return PackedContext(spool, inside, record)


class _Hashing:
    """A file reader that hashes what tarfile reads from it."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.digest.update(data)
        return data
