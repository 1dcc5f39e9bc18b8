"""Saved plans: ``reconcile plan --out FILE``, then ``reconcile apply FILE``.

A saved plan holds the options it was made with, the plan itself, and a
*fingerprint* of everything it was computed from: the stack's inputs, the
network decision, the daemon's identity and the observed state of every image
and file the plan reads.  Apply recomputes the fingerprint from a fresh read
and refuses when anything differs, naming what changed -- terraform's "saved
plan is stale".  The plan applied is then computed from identical inputs, so
it is exactly the plan that was saved.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from . import builds
from .atomic import write_atomically
from .errors import InputError

if TYPE_CHECKING:
    from .pipeline import Observation, Run
    from .plan import Plan

FORMAT_VERSION = "1.0"
KIND = "reconcile-saved-plan"


def fingerprint(run: Run, seen: Observation) -> dict:
    """Everything the plan depends on, as plain JSON values."""
    stack = run.stack
    images = {ref.familiar: seen.images.image_id(ref) for ref in _images_read(run)}
    labels = {}
    for spec in run.desired.builds:
        image_id = seen.images.image_id(spec.image)
        labels[spec.image.familiar] = (
            (seen.images.labels.get(image_id) or {}).get(builds.LABEL_INPUTS) if image_id else None
        )
    return {
        "stack": {
            "file": _sha256(stack.path.read_bytes()),
            "builds": {
                spec.service: builds.digest({**builds.record(spec, {}), "bases": [r.familiar for r in spec.bases]})
                for spec in run.desired.builds
            },
            "files": {spec.rel: f"{spec.mode:o}:{_sha256(spec.content)}" for spec in run.desired.files},
            "base_images": [b.ref.familiar for b in run.bases],
        },
        "network": {
            "mode": run.network.mode,
            "registry": run.network.registry,
            "alias_prefix": run.network.alias_prefix,
        },
        "daemon": run.engine.info().get("ID"),
        "images": images,
        "labels": labels,
        "files": {
            run.stack.rel(path): None if content is None else f"{mode:o}:{_sha256(content)}"
            for path, (content, mode) in seen.files.items()
        },
        "remote": {ref.familiar: digest for ref, digest in sorted(seen.remote.items(), key=lambda kv: kv[0].familiar)},
        **_lifecycle(run, seen),
    }


def _lifecycle(run: Run, seen: Observation) -> dict:
    """What platforms, pushes, mirrors and prune read: the images' platforms, the internal
    registry's digests, the containers using images, the record of created aliases.  Absent
    when none of them is on, so older saved plans keep their fingerprint."""
    found: dict = {}
    if seen.images.platforms:  # read only when the stack names a platform
        found["platforms"] = dict(sorted(seen.images.platforms.items()))
    targets = [u.target for u in [*run.desired.pushes, *run.desired.mirrors]]
    if targets:
        found["registry"] = {
            ref.familiar: seen.registry.digests.get(ref, "unknown" if ref in seen.registry.errors else None)
            for ref in sorted(set(targets), key=lambda r: r.familiar)
        }
    if run.desired.prune is not None:
        found["containers"] = {image_id: names for image_id, names in sorted(seen.containers.items())}
        found["created"] = {ref.familiar: image_id for ref, image_id in sorted(seen.created.items())}
        # Prune reads every image's tags and labels, not only the stack's names.
        found["all_images"] = _sha256(
            json.dumps(
                sorted((ref.familiar, image_id) for ref, image_id in seen.images.tags.items())
                + sorted((i, json.dumps(labels, sort_keys=True)) for i, labels in seen.images.labels.items())
            ).encode()
        )
    return found


def _images_read(run: Run):
    refs = [p.ref for p in run.desired.presence] + [a.alias for a in run.desired.aliases]
    refs += [spec.image for spec in run.desired.builds]
    return sorted(set(refs), key=lambda r: r.familiar)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(path: Path, *, options: dict, the_plan: Plan, print_: dict, rendered: str) -> None:
    """Write the saved plan atomically."""
    document = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "options": options,
        "fingerprint": print_,
        "plan": the_plan.to_json(),
        "rendered": rendered,
    }
    path = Path(path)
    try:
        write_atomically(path.resolve(), (json.dumps(document, indent=2) + "\n").encode())
    except OSError as exc:
        raise InputError(
            f"cannot write the saved plan: {exc}", where=str(path), hint="choose a writable path for --out"
        ) from None


def read(path: Path) -> dict:
    """Read and check a saved plan: a newer major format is refused."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            "saved plan not found", where=str(path), hint="write one with: reconcile plan --out FILE"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"not a readable saved plan: {exc}", where=str(path), hint="write one with: reconcile plan --out FILE"
        ) from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise InputError(
            "not a reconcile saved plan", where=str(path), hint="write one with: reconcile plan --out FILE"
        )
    version = str(document.get("format_version", ""))
    major = version.split(".")[0]
    if major != FORMAT_VERSION.split(".")[0]:
        newer = major.isdigit() and int(major) > int(FORMAT_VERSION.split(".")[0])
        raise InputError(
            f"saved plan format {version} is {'newer than' if newer else 'not'} what this reconcile reads ({FORMAT_VERSION.split('.')[0]}.x)",
            where=str(path),
            hint="upgrade reconcile" if newer else "write the plan again with: reconcile plan --out FILE",
        )
    try:
        SavedPlan.model_validate(document)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"])
        raise InputError(
            f"saved plan is damaged: {key}: {err['msg']}",
            where=str(path),
            hint="write it again with: reconcile plan --out FILE",
        ) from None
    return document


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SavedOptions(_Closed):
    """What ``apply FILE`` passes back to ``pipeline.prepare``."""

    stack: str
    network: str | None = None
    registry: str | None = None
    host: str | None = None
    tag: str | None = None
    targets: list[str] | None = None
    only: list[str] | None = None
    replace: list[str] | None = None
    force: bool = False
    refresh_remote: bool = False
    push: bool = False
    mirror: bool = False
    prune: bool = False
    role: str | None = None


class SavedAction(BaseModel):
    address: str
    reason: str


class SavedPlanBody(BaseModel):
    actions: list[SavedAction]


class SavedPlan(BaseModel):
    """The parts of a saved plan that ``show`` and ``apply FILE`` read (additive: extra keys pass)."""

    format_version: str
    kind: str
    created: str
    options: SavedOptions
    fingerprint: dict
    plan: SavedPlanBody
    rendered: str


def changes(saved: dict, fresh: dict, limit: int = 5) -> list[str]:
    """People's words for how ``fresh`` differs from ``saved`` (two fingerprints)."""
    from deepdiff import DeepDiff

    # threshold_to_diff_deeper=0: name each changed key, never "the whole dict changed".
    diff = DeepDiff(saved, fresh, verbose_level=2, view="tree", threshold_to_diff_deeper=0)
    words = []
    for kind in (
        "values_changed",
        "type_changes",
        "dictionary_item_added",
        "dictionary_item_removed",
        "iterable_item_added",
        "iterable_item_removed",
    ):
        for level in diff.get(kind, []):
            path = level.path(output_format="list")
            before = None if kind in ("dictionary_item_added", "iterable_item_added") else level.t1
            after = None if kind in ("dictionary_item_removed", "iterable_item_removed") else level.t2
            words.append(_describe(path, before, after))
    shown = words[:limit]
    if len(words) > limit:
        shown.append(f"and {len(words) - limit} more")
    return shown


_WHAT = {
    "images": "image {key}",
    "labels": "build label of {key}",
    "files": "file {key}",
    "remote": "upstream digest of {key}",
    "registry": "internal registry digest of {key}",
    "containers": "the containers of image {key}",
    "created": "the recorded alias {key}",
    "all_images": "the daemon's images",
    "platforms": "the platform of image {key}",
    "daemon": "the daemon",
    "network": "network {key}",
}


def _describe(path: list, before, after) -> str:
    head = str(path[0])
    key = str(path[-1]) if len(path) > 1 else ""
    if head == "stack":
        part = str(path[1]) if len(path) > 1 else ""
        what = {
            "file": "the stack file",
            "builds": f"the inputs of service {key}",
            "files": f"the rendered content of {key}",
            "base_images": "the list of base images",
        }.get(part, "the stack")
        return f"{what} changed"
    what = _WHAT.get(head, head).format(key=key)
    return f"{what}: {_short(before)} → {_short(after)}"


def _short(value) -> str:
    if value is None:
        return "absent"
    text = str(value)
    return text[:19] if text.startswith("sha256:") else text
