"""Air-gapped hosts: build.sh's export-offline flow.

``reconcile export --out DIR`` writes every image the stack needs on a host -- its base
images as the network pulls them, their aliases, its service images (a node's as it pulls
them) -- as ``docker save`` archives, one per image with every name it must have, and a
manifest.  ``reconcile import DIR`` loads them into another daemon and gives each image its
names.  Both are idempotent: an archive of the same image with the same names is not written
again, an image the daemon has under every name is not loaded again.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .actual import observe
from .atomic import write_atomically
from .errors import EngineError, InputError
from .refs import ImageRef, InvalidReference, parse

if TYPE_CHECKING:
    from .engine import Engine
    from .pipeline import Run

MANIFEST = "reconcile-export.json"
FORMAT_VERSION = "1.0"
KIND = "reconcile-export"
Status = Literal["written", "loaded", "tagged", "unchanged", "failed"]


@dataclass
class Archive:
    """One image: its archive in the folder, and the names it must have."""

    path: str  # relative to the folder
    image_id: str
    tags: list[ImageRef]
    size: int | None = None  # bytes, as written

    def to_json(self) -> dict:
        return {
            "archive": self.path,
            "image_id": self.image_id,
            "tags": [t.familiar for t in self.tags],
            "size": self.size,
        }


@dataclass
class Moved:
    archive: Archive
    status: Status
    message: str
    error: str | None = None

    def to_json(self) -> dict:
        return {**self.archive.to_json(), "status": self.status, "message": self.message, "error": self.error}


@dataclass
class Report:
    folder: Path
    moved: list[Moved] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for m in self.moved if m.status == status)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    def summary(self) -> dict[str, int]:
        statuses: tuple[Status, ...] = ("written", "loaded", "tagged", "unchanged", "failed")
        return {**{s: self.count(s) for s in statuses}, "total": len(self.moved)}

    def to_json(self) -> dict:
        return {
            "format_version": "1.0",
            "folder": str(self.folder),
            "images": [m.to_json() for m in self.moved],
            "warnings": self.warnings,
            "summary": self.summary(),
        }


def wanted(run: Run) -> list[ImageRef]:
    """Every name the stack needs on a host of its network and role: base images as pulled and
    their aliases, service images.  Not the push and mirror names: those are the registry's."""
    names = [p.ref for p in run.desired.presence] + [a.alias for a in run.desired.aliases]
    names += [spec.image for spec in run.desired.builds]
    return list(dict.fromkeys(names))


def export(run: Run, folder: Path) -> Report:
    """Write the archives of every image :func:`wanted` names and the manifest."""
    report = Report(folder)
    observed = observe(run.engine.list_images())
    groups: dict[str, list[ImageRef]] = {}
    missing = []
    for ref in wanted(run):
        if ref.is_digest:  # a tag cannot carry a digest: the image's other names carry it
            report.warnings.append(f"{ref} is pinned by digest: exported under its other names only")
            continue
        image_id = observed.image_id(ref)
        if image_id is None:
            missing.append(ref.familiar)
        else:
            groups.setdefault(image_id, []).append(ref)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(
            f"not on the daemon, so not exported: {shown}",
            where=run.engine.host,
            hint="bring this host up to date first: reconcile apply",
        )
    try:
        (folder / "images").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the export folder: {exc}", where=str(folder), hint="choose --out") from None
    before = {a.path: a for a in _read_manifest(folder, missing_ok=True)}
    written: list[Archive] = []
    for image_id, tags in groups.items():
        archive = Archive(f"images/{image_id.removeprefix('sha256:')[:24]}.tar", image_id, sorted(tags))
        old = before.get(archive.path)
        target = folder / archive.path
        if old is not None and (old.image_id, old.tags) == (image_id, archive.tags) and _size(target) == old.size:
            archive.size = old.size
            report.moved.append(Moved(archive, "unchanged", f"{archive.path} holds {_names(archive)} already"))
            written.append(archive)
            continue
        try:
            archive.size = _save(run.engine, archive, target)
        except (EngineError, OSError) as exc:
            report.moved.append(Moved(archive, "failed", f"save {_names(archive)} failed", error=str(exc)))
            continue
        report.moved.append(Moved(archive, "written", f"wrote {archive.path} ({_mb(archive.size)}): {_names(archive)}"))
        written.append(archive)
    for path in set(before) - {a.path for a in written} - {m.archive.path for m in report.moved}:
        (folder / path).unlink(missing_ok=True)  # an image the stack no longer needs: its archive goes
    document = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "stack": run.stack.config.stack.name,
        "network": run.network.mode,
        "images": [a.to_json() for a in sorted(written, key=lambda a: a.path)],
    }
    write_atomically(folder / MANIFEST, (json.dumps(document, indent=2) + "\n").encode())
    return report


def _save(engine: Engine, archive: Archive, target: Path) -> int:
    """``docker save`` into a temp file beside ``target``, then renamed: never half an archive."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            engine.save([t.familiar for t in archive.tags], out)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target.stat().st_size


def import_(engine: Engine, folder: Path) -> Report:
    """Load each archive whose image the daemon lacks, then point every name at its image."""
    report = Report(folder)
    observed = observe(engine.list_images())
    for archive in _read_manifest(folder):
        absent = [t for t in archive.tags if observed.image_id(t) != archive.image_id]
        if not absent:
            report.moved.append(Moved(archive, "unchanged", f"{_names(archive)} present as {archive.image_id[:19]}"))
            continue
        present = archive.image_id in observed.labels  # under other names: tagging is enough
        try:
            if not present:
                with (folder / archive.path).open("rb") as data:
                    engine.load(data)
            now = observe(engine.list_images())
            if archive.image_id not in now.labels:
                raise EngineError(f"{archive.path} does not hold {archive.image_id[:19]}")
            for ref in archive.tags:
                if now.image_id(ref) != archive.image_id:
                    engine.tag(archive.image_id, ref)
        except (EngineError, OSError) as exc:
            report.moved.append(Moved(archive, "failed", f"import {archive.path} failed", error=str(exc)))
            continue
        if present:
            report.moved.append(Moved(archive, "tagged", f"tagged {', '.join(t.familiar for t in absent)}"))
        else:
            report.moved.append(Moved(archive, "loaded", f"loaded {archive.path}: {_names(archive)}"))
    return report


def _read_manifest(folder: Path, *, missing_ok: bool = False) -> list[Archive]:
    path = folder / MANIFEST
    hint = "export one with: reconcile export --out DIR"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return []
        raise InputError("no export manifest here", where=str(path), hint=hint) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"not a readable export manifest: {exc}", where=str(path), hint=hint) from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise InputError("not a reconcile export manifest", where=str(path), hint=hint)
    if str(document.get("format_version", "")).split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise InputError(
            f"export format {document.get('format_version')!r} is not what this reconcile reads",
            where=str(path),
            hint="export again with this version",
        )
    found = []
    try:
        for entry in document["images"]:
            relative = Path(entry["archive"])
            if relative.is_absolute() or ".." in relative.parts:
                raise ValueError(f"archive path {entry['archive']!r} leaves the folder")
            found.append(
                Archive(
                    relative.as_posix(),
                    str(entry["image_id"]),
                    [parse(t) for t in entry["tags"]],
                    entry.get("size"),
                )
            )
    except (KeyError, TypeError, ValueError, InvalidReference) as exc:
        raise InputError(f"export manifest is damaged: {exc}", where=str(path), hint=hint) from None
    return found


def _names(archive: Archive) -> str:
    return ", ".join(t.familiar for t in archive.tags)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1  # never equal to a size recorded


def _mb(size: int | None) -> str:
    return f"{(size or 0) / 1e6:.1f} MB"
