"""Build contexts: which files the daemon receives, their hashes, and the tar itself.

The file set is docker-py's ``.dockerignore`` matching (``exclude_paths``, the
code ``APIClient.build`` uses): its own pattern parsing and translation, walked by
``IgnoreMatcher`` with the same rules, so what is hashed is exactly what is sent
(tests compare the two).  Hashing goes through a stat cache (path, size,
mtime_ns, ctime_ns, inode -> sha256) kept in the user's cache dir: an unchanged
context costs one stat per path.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import stat
import warnings
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .atomic import write_atomically
from .errors import InputError, where
from .network import cache_dir

if TYPE_CHECKING:
    from .dockerfiles import Source

# .dockerignore patterns become `re` patterns (docker-py's translation, compiled by IgnoreMatcher
# here and by docker-py in its fnmatch), and `re` warns about forms it may read differently one
# day ([[:alpha:]]); the match is docker's either way, and a warning on stderr is noise the user
# cannot act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"docker\.utils\.fnmatch")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"reconciler\.context")

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
    return sorted(_listing(context, dockerfile))


def _listing(context: Path, dockerfile: Path) -> dict[str, os.stat_result | None]:
    """Every path the daemon will receive, with its lstat (see ``IgnoreMatcher.walk``)."""
    if not context.is_dir():
        raise InputError(f"build context {context} is not a folder", hint="fix the service's context")
    try:
        return _matcher(context, dockerfile).walk(str(context))
    except OSError as exc:
        raise InputError(f"cannot read build context: {exc}", where=str(context), hint="check permissions") from None


def _matcher(context: Path, dockerfile: Path) -> IgnoreMatcher:
    # exclude_paths adds the Dockerfile's negation after the file's own patterns.
    patterns = (*ignore_patterns(context), f"!{dockerfile_in_context(context, dockerfile)}")
    try:
        return ignore_matcher(patterns)
    except re.error as exc:  # docker-py turns each pattern into a regular expression
        raise InputError(
            f"bad .dockerignore pattern: {exc}", where=str(context / ".dockerignore"), hint="fix the pattern"
        ) from None


@functools.lru_cache(maxsize=128)
def ignore_matcher(patterns: tuple[str, ...]) -> IgnoreMatcher:
    """The compiled matcher for a pattern set, made once per process: services that share
    a ``.dockerignore`` (and Dockerfile name) share it.  Raises ``re.error`` for a bad pattern."""
    return IgnoreMatcher(patterns)


class IgnoreMatcher:
    """docker-py's ``PatternMatcher`` compiled once: which context paths ``.dockerignore`` leaves out.

    The patterns are docker-py's own ``Pattern`` (cleaning, ``.``/``..``) and
    ``fnmatch.translate`` (lower-cased, as its ``fnmatch`` does); ``matches`` and
    ``walk`` give exactly ``PatternMatcher.matches`` and ``.walk``.  What differs is
    the cost: the last pattern that matches decides, and whether a pattern matches
    a path's parent folder is the same for everything in that folder, so each
    folder works out once which patterns can still decide for its entries.  Without
    a ``.dockerignore`` no pattern can exclude anything and a path costs no regex.
    """

    def __init__(self, patterns: tuple[str, ...]):
        self.rules: list[tuple[Callable, bool, int, bool]] = []
        self.negations: tuple[str, ...] = ()
        if all(p.startswith("!") for p in patterns):
            return  # nothing can be excluded (the usual case: no .dockerignore), so no docker-py to import
        from .dockerpy import docker

        Pattern, translate = docker.utils.build.Pattern, docker.utils.fnmatch.translate

        parsed = [p for p in map(Pattern, patterns) if p.dirs] + [Pattern("!.dockerignore")]
        # (match on the lower-cased path, is a negation, how many path components it spans, and
        # whether it matches paths of other lengths: `**` crosses '/', and so can a [...] class)
        self.rules = [
            (
                re.compile(translate(p.cleaned_pattern.lower())).match,
                p.exclusion,
                len(p.dirs),
                "**" in p.cleaned_pattern or "[" in p.cleaned_pattern,
            )
            for p in parsed
        ]
        # docker-py descends into an excluded folder only when a negation's cleaned text starts with its path.
        self.negations = tuple(p.cleaned_pattern for p in parsed if p.exclusion)

    def in_folder(self, parts: list[str], width: int) -> tuple[list[tuple[Callable, bool]], bool]:
        """For paths of ``width`` '/'-separated pieces directly inside the folder ``parts``
        ([] for the top): the patterns to try on each, latest first, and the answer when
        none of them matches."""
        to_try: list[tuple[Callable, bool]] = []
        otherwise = False
        for match, negation, depth, any_width in reversed(self.rules):
            # PatternMatcher.matches: a pattern also matches a path when it matches the parent folder's first components.
            if depth <= len(parts) and match("/".join(parts[:depth]).lower()):
                otherwise = not negation
                break  # it decides unless a later pattern matches the path itself: earlier ones never count
            if any_width or depth == width:  # `*` and `?` never match '/': other patterns cannot match here
                to_try.append((match, negation))
        while to_try and (not to_try[-1][1]) == otherwise:
            to_try.pop()  # the earliest patterns that would give the same answer as none matching
        return to_try, otherwise

    def matches(self, rel: str) -> bool:
        """Whether ``.dockerignore`` excludes the context path ``rel`` ('/'-separated)."""
        if not self.rules:
            return False
        from .dockerpy import docker

        to_try, otherwise = self.in_folder(docker.utils.build.split_path(os.path.dirname(rel)), rel.count("/") + 1)
        return _decide(rel, to_try, otherwise)

    def walk(self, root: str) -> dict[str, os.stat_result | None]:
        """Relative path -> lstat for every path under ``root`` not excluded: ``PatternMatcher.walk``'s set.

        None for a folder (its type comes from the directory listing, unstatted) and
        for a path whose stat failed, so the caller that reads it reports why.  A file
        costs one stat, made relative to its open folder: no path lookup from the root.
        """
        kept: dict[str, os.stat_result | None] = {}
        folders = [("", root)]  # a stack, not recursion
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        while folders:
            folder, path = folders.pop()
            parts = folder.split("/") if folder else []
            to_try, otherwise = self.in_folder(parts, len(parts) + 1)
            prefix = folder + "/" if folder else ""
            # Only the folder being read is open: fds never grow with the tree.  A folder below
            # the root is opened without following a symlink put there since it was listed.
            fd = os.open(path, flags | os.O_NOFOLLOW if folder else flags)
            try:
                with os.scandir(fd) as entries:
                    for found in entries:
                        rel = prefix + found.name
                        excluded = _decide(rel, to_try, otherwise) if to_try else otherwise
                        if found.is_dir(follow_symlinks=False):
                            if not excluded:
                                kept[rel] = None
                            if not excluded or any(n.startswith(rel) for n in self.negations):
                                folders.append((rel, f"{path}/{found.name}"))
                        elif not excluded:
                            try:
                                kept[rel] = found.stat(follow_symlinks=False)
                            except OSError:
                                kept[rel] = None
            finally:
                os.close(fd)
        return kept


def _decide(rel: str, to_try: list[tuple[Callable, bool]], otherwise: bool) -> bool:
    lowered = rel.lower()
    for match, negation in to_try:
        if match(lowered):
            return not negation
    return otherwise


class HashCache:
    """sha256 of files, remembered by (size, mtime_ns, ctime_ns, inode) across runs.

    ctime as git's index uses it: ``cp -p`` or ``rsync -t`` can put back the mtime
    of a same-size edit, but nothing but the kernel sets the ctime, and any write or
    utime moves it.  An entry is one string, "<size>:<mtime_ns>:<ctime_ns>:<inode>:<sha256>":
    JSON reads strings three times faster than lists of numbers, and strings leave
    the garbage collector nothing to scan.  An entry of another shape (an older
    version's) is a miss.
    """

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "file-hashes.json"
        try:
            known = json.loads(self.path.read_text())
        except (OSError, ValueError):
            known = {}
        self.known: dict[str, str] = known if isinstance(known, dict) else {}  # a damaged cache is no cache
        self.changed = False

    def sha256(self, path: Path | str, st: os.stat_result) -> str:
        key = path if isinstance(path, str) else str(path)
        mark = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:"
        hit = self.known.get(key)
        if isinstance(hit, str) and len(hit) == len(mark) + 64 and hit.startswith(mark):
            return hit[-64:]
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        self.known[key] = mark + digest.hexdigest()
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
    return _entry(str(path), st, cache)


def _entry(path: str, st: os.stat_result, cache: HashCache) -> Entry | None:
    if not stat.S_ISREG(st.st_mode):
        return f"l:{os.readlink(path)}" if stat.S_ISLNK(st.st_mode) else None
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
    planned = _relative(context, overlay)
    listed = _listing(context, dockerfile)  # the walk's stats: a file costs no other
    base = os.path.join(str(context), "")
    record: dict[str, Entry] = {}
    for rel in _narrowed(context, dockerfile, set(listed), _links(listed), planned, sources, shown_as):
        found = planned.get(rel) if planned else None
        if not found:
            st = listed.get(rel)
            # A folder, a planned file not written yet, or a stat that failed in the walk: look again.
            found = _entry(base + rel, st, cache) if st is not None else entry(context / rel, cache)
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
    listed = _listing(context, dockerfile)
    return _narrowed(context, dockerfile, set(listed), _links(listed), _relative(context, overlay), sources, shown_as)


def _links(listed: dict[str, os.stat_result | None]) -> set[str]:
    """The symlinks among the walk's paths, from the stats it made."""
    return {rel for rel, st in listed.items() if st is not None and stat.S_ISLNK(st.st_mode)}


def _relative(context: Path, overlay: dict[Path, Entry] | None) -> dict[str, Entry]:
    """The overlay's files inside the context, by relative path."""
    planned = {}
    for path, found in (overlay or {}).items():
        try:
            planned[path.relative_to(context).as_posix()] = found
        except ValueError:
            continue
    return planned


def _narrowed(
    context: Path,
    dockerfile: Path,
    paths: set[str],
    links: Collection[str],
    planned: Iterable[str],
    sources: list[Source] | None,
    shown_as: Callable[[Path], str],
) -> list[str]:
    """``build_paths`` from the walk's ``paths`` (changed in place) and which of them are symlinks."""
    new = [rel for rel in planned if rel not in paths]  # planned files that do not exist yet
    if new:
        matcher = _matcher(context, dockerfile)
        paths.update(rel for rel in new if not matcher.matches(rel))
    if sources is None:
        return sorted(paths)
    from .dockerfiles import select

    if _through_a_link(context, links, sources):
        return sorted(paths)  # BuildKit follows a symlinked folder inside a source path: send and hash it all
    used, unmatched = select(paths, sources)
    # COPY follows a symlink it names: what the link points at (inside the context) is read too.
    for rel in [r for r in used if r in links]:
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


def _through_a_link(context: Path, links: Collection[str], sources: list[Source]) -> bool:
    """Whether a source's path goes through a symlinked folder (``COPY data/x`` with ``data -> real``)."""
    from .dockerfiles import Source, select

    folders = {p for p in links if (context / p).is_dir()}
    if not folders:
        return False
    for source in sources:
        parts = source.pattern.split("/")
        for k in range(1, len(parts)):
            if select(folders, [Source("/".join(parts[:k]), source.line, source.instruction)])[0]:
                return True
    return False


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
    import tarfile  # here: only a build packs
    import tempfile

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
