"""Plan: the pure difference between desired and actual state.

A plan is a typed, ordered list of actions -- pulls, the tags that may depend
on them, file writes, builds in dependency order, then the internal registry's
pushes and mirrors and, with prune, the untags and removals of what the stack
dropped -- each with a machine reason and a sentence for people.  Everything
that needs no action is kept too, with why, for ``plan -v``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, cast

from . import builds as b
from . import platforms
from .actual import ObservedFiles, ObservedImages, ObservedRegistry
from .builds import BuildSpec
from .context import dockerfile_in_context
from .desired import BaseImage, DesiredState, Upload, desired_state
from .errors import InputError
from .files import FileSpec, unified_diff
from .network import NetworkDecision
from .refs import DEFAULT_DOMAIN, ImageRef, InvalidReference, parse


def short_id(image_id: str | None) -> str:
    return image_id[:19] if image_id else "none"


@dataclass
class Action:
    kind: ClassVar[str] = ""
    symbol: ClassVar[str] = "+"
    address: str
    reason: str  # machine-readable: missing, moved, ...
    detail: str  # the same for people
    before: str | None = None  # image ID the resource has now
    depends_on: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "address": self.address,
            "kind": self.kind,
            "reason": self.reason,
            "detail": self.detail,
            "before": self.before,
            "depends_on": self.depends_on,
        }


@dataclass
class PullAction(Action):
    kind: ClassVar[str] = "pull"
    image: ImageRef = None  # type: ignore[assignment]
    serves: tuple[ImageRef, ...] = ()
    platform: str | None = None  # pulled for this platform; None: the daemon's

    @property
    def symbol(self) -> str:  # type: ignore[override]
        return "~" if self.before else "+"  # remote-changed: the local copy is replaced

    def to_json(self) -> dict:
        found = {**super().to_json(), "image": self.image.familiar, "serves": [r.familiar for r in self.serves]}
        return {**found, "platform": self.platform} if self.platform else found


@dataclass
class TagAction(Action):
    kind: ClassVar[str] = "tag"
    image: ImageRef = None  # type: ignore[assignment]  # the alias
    source: ImageRef = None  # type: ignore[assignment]
    after: str | None = None  # None: known after the source's pull
    base: ImageRef | None = None  # the base image the alias is for, named when the source is another copy of it

    @property
    def symbol(self) -> str:  # type: ignore[override]
        return "~" if self.before else "+"

    def to_json(self) -> dict:
        return {**super().to_json(), "image": self.image.familiar, "source": self.source.familiar, "after": self.after}


@dataclass
class WriteAction(Action):
    kind: ClassVar[str] = "write"
    spec: FileSpec = None  # type: ignore[assignment]
    diff: str = ""

    @property
    def symbol(self) -> str:  # type: ignore[override]
        return "~" if self.reason != "missing" else "+"

    def to_json(self) -> dict:
        return {**super().to_json(), "path": self.spec.rel, "mode": f"{self.spec.mode:04o}", "diff": self.diff}


@dataclass
class BuildAction(Action):
    kind: ClassVar[str] = "build"
    spec: BuildSpec = None  # type: ignore[assignment]
    inputs_hash: str | None = None  # None: decided after the pulls it depends on
    nocache: bool = False
    lookups: dict[str, ImageRef] = field(default_factory=dict)  # base in the record -> the local image it reads

    @property
    def symbol(self) -> str:  # type: ignore[override]
        return "~" if self.before else "+"

    def to_json(self) -> dict:
        return {
            **super().to_json(),
            "service": self.spec.service,
            "image": self.spec.image.familiar,
            "inputs_hash": self.inputs_hash,
            "nocache": self.nocache,
        }


@dataclass
class PushAction(Action):
    """The local ``image`` tagged ``target`` and pushed; ``before``: the registry's manifest digest now."""

    kind: ClassVar[str] = "push"
    image: ImageRef = None  # type: ignore[assignment]
    target: ImageRef = None  # type: ignore[assignment]

    @property
    def symbol(self) -> str:  # type: ignore[override]
        return "~" if self.before else "+"

    def to_json(self) -> dict:
        return {**super().to_json(), "image": self.image.familiar, "target": self.target.familiar}


@dataclass
class MirrorAction(PushAction):
    """A base image, pulled from its public registry, pushed under its internal registry name."""

    kind: ClassVar[str] = "mirror"


@dataclass
class UntagAction(Action):
    """Tag ``image`` removed; the image stays under its other tags.  ``before``: its image ID."""

    kind: ClassVar[str] = "untag"
    symbol: ClassVar[str] = "-"
    image: ImageRef = None  # type: ignore[assignment]

    def to_json(self) -> dict:
        return {**super().to_json(), "image": self.image.familiar}


@dataclass
class RemoveAction(Action):
    """Every tag in ``tags`` removed: the image goes with the last one.  ``before``: its image ID."""

    kind: ClassVar[str] = "remove"
    symbol: ClassVar[str] = "-"
    image: ImageRef = None  # type: ignore[assignment]  # the name in its address
    tags: tuple[ImageRef, ...] = ()

    def to_json(self) -> dict:
        return {**super().to_json(), "image": self.image.familiar, "tags": [t.familiar for t in self.tags]}


@dataclass(frozen=True)
class Kept:
    """An image prune would remove, kept because containers use it."""

    image_id: str
    tags: tuple[ImageRef, ...]
    containers: tuple[str, ...]

    @property
    def text(self) -> str:
        users = ", ".join(self.containers[:3]) + (
            f" and {len(self.containers) - 3} more" if len(self.containers) > 3 else ""
        )
        return (
            f"kept {', '.join(t.familiar for t in self.tags)} ({short_id(self.image_id)}): no longer declared, "
            f"but used by container{'s' if len(self.containers) > 1 else ''} {users}"
        )

    def to_json(self) -> dict:
        return {
            "image_id": self.image_id,
            "tags": [t.familiar for t in self.tags],
            "containers": list(self.containers),
            "reason": "in-use",
            "detail": self.text,
        }


@dataclass
class Plan:
    network: NetworkDecision
    actions: list[Action] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # --target: the plan is partial
    only: list[str] = field(default_factory=list)  # --only kinds: the plan is partial
    kept: list[Kept] = field(default_factory=list)  # prune: images in use, not removed

    @property
    def empty(self) -> bool:
        return not self.actions

    @property
    def partial(self) -> bool:
        return bool(self.targets or self.only)

    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for action in self.actions:
            counts[action.kind] = counts.get(action.kind, 0) + 1
        return {**counts, "total": len(self.actions)}

    def to_json(self) -> dict:
        return {
            "format_version": "1.0",
            "network": {
                "mode": self.network.mode,
                "source": self.network.source,
                "registry": self.network.registry,
            },
            "actions": [a.to_json() for a in self.actions],
            "warnings": self.warnings,
            "partial": self.partial,
            "targets": self.targets,
            "only": self.only,
            "kept": [k.to_json() for k in self.kept],
            "summary": self.summary(),
        }


def _local_copy(ref: ImageRef, image_id: str, observed: ObservedImages) -> str:
    """The local image named as the registry names it: by its digest in ``ref``'s
    repository (RepoDigests), so a digest is compared with a digest."""
    digests = sorted(
        cast(str, d.digest)  # every key of observed.digests is repo@digest
        for d, i in observed.digests.items()
        if i == image_id and (d.domain, d.path) == (ref.domain, ref.path)
    )
    if digests:
        return digests[0][:19]
    return f"image {short_id(image_id)}, with no digest from {ref.familiar_name}"


def pull_address(ref: ImageRef) -> str:
    return f"pull[{ref.familiar}]"


def tag_address(ref: ImageRef) -> str:
    return f"tag[{ref.familiar}]"


def write_address(spec: FileSpec) -> str:
    return f"write[{spec.rel}]"


def build_address(service: str) -> str:
    return f"build[{service}]"


def push_address(upload: Upload) -> str:
    return f"{'push' if upload.service is not None else 'mirror'}[{upload.image.familiar}]"


def untag_address(ref: ImageRef) -> str:
    return f"untag[{ref.familiar}]"


def remove_address(ref: ImageRef) -> str:
    return f"remove[{ref.familiar}]"


def plan(
    desired: DesiredState,
    observed: ObservedImages,
    network: NetworkDecision,
    files: ObservedFiles | None = None,
    *,
    replace: frozenset[str] = frozenset(),
    force: bool = False,
    previous: Callable[[str], dict | None] = lambda inputs_hash: None,
    remote: dict[ImageRef, str] | None = None,
    only: Collection[str] = (),
    registry: ObservedRegistry | None = None,
    containers: Mapping[str, Sequence[str]] | None = None,
    created: Mapping[ImageRef, str] | None = None,
) -> Plan:
    """``replace`` / ``force`` rebuild those services (all) whatever their hash;
    ``previous`` finds an old inputs record by hash, to name changed files;
    ``remote`` holds the registry's current digest of base images (``--refresh-remote``):
    a local copy that is not that digest is pulled again.  ``only``: the kinds of action
    that will run (``--only``); a build reads the bases as they are now where the pulls or
    tags that would change them will not run (:func:`narrow` then leaves those out).

    ``registry``: the internal registry's digests of the push and mirror targets.  With
    ``desired.prune``: ``containers`` maps image IDs to the containers using them, ``created``
    the alias tags reconcile created on this daemon for the stack to the image ID each got."""
    remote = remote or {}
    result = Plan(network=network, warnings=list(desired.warnings))
    pulled: set[ImageRef] = set()
    for need in desired.presence:
        image_id = observed.image_id(need.ref)
        upstream = remote.get(need.ref)
        have = observed.platforms.get(image_id or "")
        if image_id and not platforms.matches(have, need.platform):
            reason, detail = "platform-differs", f"the local image is {have}, want {need.platform}"
        elif image_id and isinstance(upstream, str) and not observed.has_digest(need.ref, upstream):
            local = _local_copy(need.ref, image_id, observed)
            reason, detail = "remote-changed", f"the registry now serves {upstream[:19]}; the local copy is {local}"
        elif image_id:
            result.unchanged.append(
                f"{need.ref} is present as {short_id(image_id)}" + (" (same as upstream)" if upstream else "")
            )
            continue
        else:
            serves = ", ".join(str(r) for r in need.serves if r != need.ref)
            reason, detail = "missing", "not present locally" + (f"; provides {serves}" if serves else "")
        result.actions.append(
            PullAction(
                address=pull_address(need.ref),
                reason=reason,
                detail=detail,
                before=image_id,
                image=need.ref,
                serves=need.serves,
                platform=need.platform,
            )
        )
        pulled.add(need.ref)
    for alias in desired.aliases:
        current = observed.image_id(alias.alias)
        if alias.source in pulled:
            result.actions.append(
                TagAction(
                    address=tag_address(alias.alias),
                    reason="moved" if current else "missing",
                    detail=(f"now {short_id(current)}" if current else "not present")
                    + f"; target decided after pulling {alias.source}",
                    before=current,
                    depends_on=[pull_address(alias.source)],
                    image=alias.alias,
                    source=alias.source,
                    base=alias.base,
                )
            )
            continue
        want = observed.image_id(alias.source)
        if current == want:
            result.unchanged.append(f"{alias.alias} points at {short_id(want)} like {alias.source}")
            continue
        result.actions.append(
            TagAction(
                address=tag_address(alias.alias),
                reason="moved" if current else "missing",
                detail=f"now {short_id(current)}, want {short_id(want)}" if current else "not present",
                before=current,
                image=alias.alias,
                source=alias.source,
                after=want,
                base=alias.base,
            )
        )
    _plan_writes(desired.files, files or {}, result)
    _plan_builds(desired, observed, result, replace, force, previous, set(only or KINDS))
    _plan_uploads(desired, observed, registry or ObservedRegistry(), result)
    if desired.prune is not None:
        _plan_prune(desired, observed, containers or {}, created or {}, result)
    return result


def _plan_uploads(desired: DesiredState, observed: ObservedImages, registry: ObservedRegistry, result: Plan) -> None:
    """Pushes, then mirrors: the registry's manifest digest for the target against the digest the
    daemon recorded for the local image in that repository (its RepoDigests, set by a pull from or
    a push to it).  A build or pull in the plan changes the local image: the upload waits for it
    and is planned whatever the registry holds (apply reports unchanged when it pushed the same)."""
    by_address = {a.address: a for a in result.actions}
    for upload in [*desired.pushes, *desired.mirrors]:
        if upload.service is not None:
            upstream = build_address(upload.service)
        else:
            upstream = pull_address(upload.image)
        waits = [upstream] if upstream in by_address else []
        image_id = observed.image_id(upload.image)
        problem = registry.errors.get(upload.target)
        remote = registry.digests.get(upload.target)
        there = f"{upload.target} in the internal registry"
        if problem is not None:
            reason, detail = (
                "registry-unknown",
                f"cannot ask the registry for {upload.target} ({problem}): pushed to be sure",
            )
        elif remote is None:
            reason, detail = "missing", f"{there} does not exist"
        elif waits:
            reason, detail = "registry-differs", f"{there} is {remote[:19]}; decided after {waits[0]}"
        elif (
            image_id is not None
            and observed.digests.get(ImageRef(upload.target.domain, upload.target.path, None, remote)) == image_id
        ):
            result.unchanged.append(f"{there} is {remote[:19]}, the same as {upload.image}")
            continue
        else:
            local = _local_copy(upload.target, image_id, observed) if image_id else "not present"
            reason, detail = "registry-differs", f"{there} is {remote[:19]}; {upload.image} is {local}"
        kind = PushAction if upload.service is not None else MirrorAction
        result.actions.append(
            kind(
                address=push_address(upload),
                reason=reason,
                detail=detail,
                before=remote,
                depends_on=waits,
                image=upload.image,
                target=upload.target,
            )
        )


def _plan_prune(
    desired: DesiredState,
    observed: ObservedImages,
    containers: Mapping[str, Sequence[str]],
    created: Mapping[ImageRef, str],
    result: Plan,
) -> None:
    """What the stack made and no longer declares: the tags reconcile made for it (``created``:
    the per-daemon record of its builds, pushes and aliases) still on the image it gave them.  An image that keeps a
    declared or foreign tag loses only these (``untag``); one that would keep none is removed
    (one ``remove`` for all its tags), unless a container uses it: then it is kept, and said so."""
    from .builds import LABEL_STACK

    declared = desired.names()
    # Last, and only once everything else succeeded: the old version goes when the new one is there.
    before = [a.address for a in result.actions]
    dropped: dict[str, list[tuple[ImageRef, str]]] = {}
    for ref, image_id in sorted(observed.tags.items(), key=lambda kv: kv[0].familiar):
        if ref in declared:
            continue
        # Only tags reconcile made for this stack (its record) and still where it put them: a tag
        # the user added, even on this stack's image, is never the stack's to remove.
        if created.get(ref) != image_id:
            continue
        if observed.labels.get(image_id, {}).get(LABEL_STACK) == desired.prune:
            why = f"an image of stack {desired.prune} under a tag the stack no longer declares"
        else:
            why = f"an alias reconcile created for a base image stack {desired.prune} no longer uses"
        dropped.setdefault(image_id, []).append((ref, why))
    for image_id, found in dropped.items():
        refs = [ref for ref, _ in found]
        others = sorted(r.familiar for r, i in observed.tags.items() if i == image_id and r not in refs)
        if others:
            for ref, why in found:
                result.actions.append(
                    UntagAction(
                        address=untag_address(ref),
                        reason="not-declared",
                        detail=f"{why}; the image stays as {', '.join(others[:3])}",
                        before=image_id,
                        depends_on=before,
                        image=ref,
                    )
                )
            continue
        users = tuple(containers.get(image_id, ()))
        if users:
            result.kept.append(Kept(image_id, tuple(refs), users))
            continue
        also = f"; also tagged {', '.join(r.familiar for r in refs[1:])}" if len(refs) > 1 else ""
        result.actions.append(
            RemoveAction(
                address=remove_address(refs[0]),
                reason="not-declared",
                detail=f"{found[0][1]}; no container uses it{also}",
                before=image_id,
                depends_on=before,
                image=refs[0],
                tags=tuple(refs),
            )
        )


def _plan_writes(specs: list[FileSpec], files: ObservedFiles, result: Plan) -> None:
    for spec in specs:
        content, mode = files.get(spec.dest, (None, None))
        if content is None:
            reason, detail = "missing", f"not present; {len(spec.content)} bytes from {spec.kind} {spec.src.name}"
        elif content != spec.content:
            reason, detail = "content-changed", f"content differs from {spec.kind} {spec.src.name}"
        elif mode != spec.mode:
            reason, detail = "mode-changed", f"mode is {mode:04o}, want {spec.mode:04o}"
        else:
            result.unchanged.append(f"{spec.rel} is up to date ({spec.mode:04o})")
            continue
        result.actions.append(
            WriteAction(
                address=write_address(spec),
                reason=reason,
                detail=detail,
                spec=spec,
                diff=unified_diff(spec, content) if content != spec.content else "",
            )
        )


def _resolve_bases(
    spec: BuildSpec,
    source_of: dict[ImageRef, ImageRef],
    image_id: Callable[[ImageRef], str | None],
    hashes: dict[str, str | None],
) -> dict[str, str | None]:
    """What each image the build uses will resolve to: a base's image ID once
    aliases are in place (None if a pull decides it), a sibling's inputs hash."""
    resolved = {ref.familiar: image_id(source_of.get(ref, ref)) for ref in spec.bases}
    for name, image in spec.needs.items():
        resolved[image.familiar] = hashes.get(name)  # a sibling's image: its inputs hash
    return resolved


def _plan_builds(desired, observed, result, replace, force, previous, runs: set[str]) -> None:
    by_address = {a.address for a in result.actions}
    # What each base will be when the build runs: a pull decides it, an alias reads its source once
    # tagged.  Pulls or tags that will not run (--only) leave the bases as they are now, and the
    # build's record must say what it really read.
    pulled = {a.image for a in result.actions if isinstance(a, PullAction)} if "pull" in runs else set()
    source_of = {a.alias: a.source for a in desired.aliases}
    reads = source_of if "tag" in runs else {}
    hashes: dict[str, str | None] = {}  # service -> inputs hash (None: known after the pulls)
    for spec in desired.builds:
        resolved = _resolve_bases(spec, reads, lambda ref: None if ref in pulled else observed.image_id(ref), hashes)
        inputs = b.record(spec, resolved)
        inputs_hash = b.digest(inputs) if None not in resolved.values() else None
        hashes[spec.service] = inputs_hash
        upstream = [
            a
            for ref in spec.bases
            for a in (pull_address(source_of.get(ref, ref)), tag_address(ref))
            if a in by_address
        ] + [build_address(n) for n in spec.needs if build_address(n) in by_address]
        # Writes into its context, and of its Dockerfile wherever that lives: the build reads them.
        writes = [
            a.address
            for a in result.actions
            if isinstance(a, WriteAction)
            and (a.spec.dest.is_relative_to(spec.context) or a.spec.dest == spec.dockerfile)
        ]
        current = observed.image_id(spec.image)
        labels = observed.labels.get(current, {}) if current else {}
        label = labels.get(b.LABEL_INPUTS)
        forced = force or spec.service in replace
        have = observed.platforms.get(current or "")
        if current is None:
            reason, detail = "missing", f"{spec.image} is not present"
        elif not platforms.matches(have, spec.platform):
            reason, detail = "platform-differs", f"{spec.image} is {have}, want {spec.platform}"
        elif forced:
            reason, detail = ("force" if force else "replace-requested"), "rebuild requested, without the build cache"
        elif label is None:
            reason, detail = "unlabeled", f"{spec.image} has no {b.LABEL_INPUTS} label: not built by reconcile"
        elif label == inputs_hash:
            result.unchanged.append(f"{spec.image} is up to date (inputs {label[7:19]})")
            continue
        else:
            reason, detail = _why_rebuild(
                label,
                labels.get(b.LABEL_PARTS),
                inputs,
                upstream,
                previous,
                dockerfile_in_context(spec.context, spec.dockerfile),
            )
        hashes[spec.service] = inputs_hash if reason != "base-changed" else None
        result.actions.append(
            BuildAction(
                address=build_address(spec.service),
                reason=reason,
                detail=detail,
                before=current,
                depends_on=upstream + writes,
                spec=spec,
                inputs_hash=inputs_hash,
                nocache=forced,
                lookups={ref.familiar: reads.get(ref, ref) for ref in spec.bases},
            )
        )
        by_address.add(build_address(spec.service))


def _why_rebuild(
    label: str, parts_label: str | None, inputs: dict, upstream: list[str], previous, dockerfile: str
) -> tuple[str, str]:
    """Why an image whose label differs must be rebuilt.  ``base-changed``
    means only what a base resolves to differs, and an upstream pull, tag or
    build decides that: apply decides again after it."""
    import json

    try:
        old_parts = json.loads(parts_label or "")
    except ValueError:
        old_parts = None
    if not isinstance(old_parts, dict):
        return "inputs-changed", "inputs hash differs (no per-part record on the image)"
    changed = b.changed_parts(old_parts, inputs)
    if changed in (["bases"], []) and upstream:
        unknown = [k for k, v in inputs["bases"].items() if v is None]
        if unknown:
            return "base-changed", f"decided after {', '.join(upstream)}: rebuilt only if {', '.join(unknown)} changes"
        return "base-changed", b.describe_changes(["bases"], previous(label), inputs) + f" (by {', '.join(upstream)})"
    return "inputs-changed", b.describe_changes(
        changed, previous(label), inputs, dockerfile=dockerfile
    ) or "inputs hash differs"


# Docker 23 (API 1.42) is the first whose built-in Dockerfile frontend (1.4) parses heredocs.
HEREDOC_API = (1, 42)


def heredoc_warnings(builds: list[BuildSpec], api_version: str | None, rel: Callable[[Path], str]) -> list[str]:
    """A heredoc in a Dockerfile without ``# syntax=`` builds only where the daemon's own
    frontend parses heredocs; older ones read its body as instructions and fail."""
    try:
        too_old = api_version is not None and tuple(int(n) for n in api_version.split(".")) < HEREDOC_API
    except ValueError:
        too_old = False
    if not too_old:
        return []
    return [
        f"{rel(spec.dockerfile)}:{spec.heredocs[0]}: a heredoc needs Dockerfile frontend 1.4, and this daemon's "
        f"built-in frontend (API {api_version}, Docker < 23) cannot parse it: the build of {spec.service} will fail; "
        "add `# syntax=docker/dockerfile:1` as the Dockerfile's first line (BuildKit then fetches that frontend "
        "image, so it must be reachable) or write the step without a heredoc"
        for spec in builds
        if spec.heredocs
    ]


KINDS = ("pull", "tag", "write", "build", "push", "mirror", "untag", "remove")


@dataclass(frozen=True)
class Scope:
    """``--target`` and ``--only``: the part of a plan to keep."""

    targets: tuple[str, ...] = ()  # as given
    addresses: frozenset[str] = frozenset()  # the actions the targets name
    only: tuple[str, ...] = ()  # action kinds to keep; none: every kind

    def __bool__(self) -> bool:
        return bool(self.targets or self.only)


_ADDRESS = re.compile(r"(pull|tag|push|mirror|untag|remove)\[(.+)\]")


def scope(desired: DesiredState, targets: Sequence[str] = (), only: Sequence[str] = ()) -> Scope:
    """What ``--target`` and ``--only`` name in ``desired``, whatever the daemon holds, so a
    target with nothing to do now is valid.  A target is a service (its build), an image
    (every pull and tag of it: a base image's pull and aliases, an alias, the name it is
    pulled as; a service's image: its build) or an action address as ``plan`` prints it."""
    unknown_kinds = [k for k in only if k not in KINDS]
    if unknown_kinds:
        raise InputError(
            f"--only {', '.join(map(repr, unknown_kinds))}: no such kind of action",
            where="command line",
            hint=f"kinds are: {', '.join(KINDS)}",
        )
    if not targets:
        return Scope((), frozenset(), tuple(dict.fromkeys(only)))
    by_name, by_image = _targetable(desired)
    addresses: set[str] = set()
    unknown = []
    for text in targets:
        address = _normalized_address(text)
        found = by_name.get(address) or (by_image.get(image) if (image := _image(text)) is not None else None)
        if not found and desired.prune is not None and _is_prune_address(text):
            found = {address}  # what prune drops is known only from the daemon: any valid name may be one
        if found:
            addresses |= found
        else:
            unknown.append(text)
    if unknown:
        services = [s.service for s in desired.builds]
        bases = list(dict.fromkeys(str(b) for p in desired.presence for b in p.serves))
        raise InputError(
            f"--target {', '.join(_shown(t) for t in unknown)}: no service, image or action of this stack",
            where="command line",
            hint=f"services: {_few(services)}; images: {_few(bases)}; or an action as plan prints it "
            f"({_few([address for address in by_name if '[' in address], 3)})",
        )
    return Scope(tuple(targets), frozenset(addresses), tuple(dict.fromkeys(only)))


def _targetable(desired: DesiredState) -> tuple[dict[str, set[str]], dict[ImageRef, set[str]]]:
    """Service names and addresses -> the actions they name; images -> every action on them."""
    by_name: dict[str, set[str]] = {}
    by_image: dict[ImageRef, set[str]] = {}
    for need in desired.presence:
        for ref in (need.ref, *need.serves):
            by_image.setdefault(ref, set()).add(pull_address(need.ref))
        by_name[pull_address(need.ref)] = {pull_address(need.ref)}
    for alias in desired.aliases:
        for ref in (alias.alias, alias.source, alias.base):
            by_image.setdefault(ref, set()).add(tag_address(alias.alias))
        by_name[tag_address(alias.alias)] = {tag_address(alias.alias)}
    for file in desired.files:
        by_name[write_address(file)] = {write_address(file)}
    pushes = {u.service: push_address(u) for u in desired.pushes}
    for spec in desired.builds:
        named = {build_address(spec.service)} | ({pushes[spec.service]} if spec.service in pushes else set())
        by_name[spec.service] = by_name[build_address(spec.service)] = named
        for other in spec.also:  # a compose service that runs the same build
            by_name[other] = by_name[build_address(other)] = named
        by_image.setdefault(spec.image, set()).update(named)
    for upload in [*desired.pushes, *desired.mirrors]:
        by_name[push_address(upload)] = {push_address(upload)}
        for ref in (upload.image, upload.target):
            by_image.setdefault(ref, set()).add(push_address(upload))
    for service, image in desired.services.items():  # a node: its service's image, pulled and tagged
        by_name[service] = set(by_image.get(image, set()))
    return by_name, by_image


def _is_prune_address(text: str) -> bool:
    match = _ADDRESS.fullmatch(text)
    return bool(match and match.group(1) in ("untag", "remove") and _image(match.group(2)))


def _normalized_address(text: str) -> str:
    """``pull[docker.io/library/redis:7]`` is ``pull[redis:7]``: the name in brackets is normalized."""
    match = _ADDRESS.fullmatch(text)
    ref = _image(match.group(2)) if match else None
    return f"{match.group(1)}[{ref.familiar}]" if match and ref else text


def _image(text: str) -> ImageRef | None:
    try:
        return parse(text)
    except InvalidReference:
        return None


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:80]) + "..."


def _few(names: list[str], limit: int = 8) -> str:
    if not names:
        return "(none)"
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def narrow(the_plan: Plan, wanted: Scope) -> Plan:
    """terraform's ``-target`` (the actions the targets name and what they depend on), then
    ``--only`` (those kinds of action).  An action kept whose dependency ``--only`` leaves
    out runs against what is there now, as build.sh's steps did: the plan warns, and the
    dependency is dropped so apply does not wait for it."""
    if not wanted:
        return the_plan
    actions = {a.address: a for a in the_plan.actions}
    keep: set[str] = set()
    todo = list(wanted.addresses) if wanted.targets else list(actions)
    while todo:
        address = todo.pop()
        if address in keep or address not in actions:
            continue
        keep.add(address)
        todo += actions[address].depends_on
    if wanted.only:
        keep = {address for address in keep if actions[address].kind in wanted.only}
    kept: list[Action] = []
    warnings = list(the_plan.warnings)
    for action in the_plan.actions:
        if action.address not in keep:
            continue
        left_out = [d for d in action.depends_on if d in actions and d not in keep]
        if left_out:
            action, warning = _without(action, left_out, actions, wanted.only)
            warnings.append(warning)
        kept.append(action)
    return Plan(
        network=the_plan.network,
        actions=kept,
        unchanged=the_plan.unchanged,
        warnings=warnings,
        targets=list(wanted.targets),
        only=list(wanted.only),
        kept=the_plan.kept,
    )


def _without(
    action: Action, left_out: list[str], actions: dict[str, Action], only: Sequence[str]
) -> tuple[Action, str]:
    """``action`` without the dependencies ``--only`` leaves out, and the warning that says so."""
    head = f"{action.address} depends on {', '.join(left_out)}, left out by --only {', '.join(only)}"
    rest = [d for d in action.depends_on if d not in left_out]
    if isinstance(action, TagAction):
        # Without its pull the tag copies the source as it is now (None: there is none).
        now = next((actions[d].before for d in left_out if isinstance(actions[d], PullAction)), action.after)
        if now is None:
            return replace(action, depends_on=rest), f"{head}: {action.source} is not present, so the tag will fail"
        return (
            replace(action, depends_on=rest, after=now),
            f"{head}: it points {action.image} at the {action.source} there now ({short_id(now)})",
        )
    return replace(action, depends_on=rest), f"{head}: it runs against what is there now"


def local_copies(upstream: ImageRef, network: NetworkDecision, harbor_paths: Mapping[str, str]) -> list[ImageRef]:
    """Where a copy of ``upstream`` may be on the daemon, in the order build.sh's
    tag-localhost looked: the internal registry's name, the full name, the name without
    its registry host (``argoproj/argocd:v2`` for ``quay.io/argoproj/argocd:v2``)."""
    copies = [upstream]
    if not upstream.is_under(network.registry):
        try:  # the name an internal network pulls, by the same rules (harbor_paths included)
            internal = network.model_copy(update={"mode": "internal"})
            copies.insert(0, desired_state([BaseImage(upstream, ())], internal, harbor_paths).presence[0].ref)
        except InputError:
            pass  # no valid name in the internal registry: there is no such copy
    short = _image(upstream.hub_path + upstream.canonical[len(upstream.name) :])
    if short is not None and short.domain == DEFAULT_DOMAIN:
        copies.append(short)
    return list(dict.fromkeys(copies))


def plan_aliases(
    desired: DesiredState,
    observed: ObservedImages,
    network: NetworkDecision,
    harbor_paths: Mapping[str, str] | None = None,
) -> Plan:
    """``tag-localhost``: each alias tag from the first local copy of its image
    (:func:`local_copies`, then the image's aliases themselves), whatever the plan would
    pull.  An alias that is itself the first copy is left alone; with no copy at all
    the tag is planned without a target, and apply reports it failed."""
    result = Plan(network=network, warnings=list(desired.warnings))
    prefix = network.alias_prefix
    upstream_of = {a.alias: a.base.relative_to(prefix) if a.base.is_under(prefix) else a.base for a in desired.aliases}
    for alias in desired.aliases:
        upstream = upstream_of[alias.alias]
        siblings = [a.alias for a in desired.aliases if upstream_of[a.alias] == upstream]
        copies = list(dict.fromkeys(local_copies(upstream, network, harbor_paths or {}) + siblings))
        chosen = next((ref for ref in copies if observed.image_id(ref)), None)
        current = observed.image_id(alias.alias)
        if chosen == alias.alias:
            result.unchanged.append(f"{alias.alias} is the first local copy of {upstream} ({short_id(current)})")
            continue
        want = observed.image_id(chosen) if chosen else None
        if chosen and current == want:
            result.unchanged.append(f"{alias.alias} points at {short_id(want)} like {chosen}")
            continue
        found = (
            f"from {chosen}, the first local copy of {upstream}"
            if chosen
            else f"no local copy of {upstream}: looked for {', '.join(str(r) for r in copies)}"
        )
        result.actions.append(
            TagAction(
                address=tag_address(alias.alias),
                reason="moved" if current else "missing",
                detail=(f"now {short_id(current)}, want {short_id(want)}" if current else "not present") + f"; {found}",
                before=current,
                image=alias.alias,
                source=chosen or alias.source,
                after=want,
                base=upstream,
            )
        )
    return result
