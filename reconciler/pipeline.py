"""The pipeline, top to bottom: stack -> desired -> actual -> plan -> apply -> verify.

This is the importable library the CLI is a thin shell over::

    from reconciler import pipeline
    run = pipeline.prepare("desired/")            # stack file + network -> desired state
    the_plan = pipeline.plan(run)                  # one read of the daemon, pure diff
    result = pipeline.apply(run, the_plan)         # the only writer, then a verifying plan
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import builds as builds_mod
from . import desired as desired_mod
from . import files as files_mod
from . import network as network_mod
from . import stack as stack_mod
from .actual import ObservedFiles, ObservedImages, ObservedRegistry, observe, observe_containers, observe_files
from .desired import BaseImage, DesiredState
from .errors import InputError
from .network import NetworkDecision, decide, recalled
from .plan import Plan, heredoc_warnings, narrow, plan_aliases, scope
from .plan import plan as diff
from .refs import ImageRef, InvalidReference, parse
from .tree import StackTree

if TYPE_CHECKING:
    from .apply import ApplyResult, Reporter
    from .dockerfiles import DockerfileInfo
    from .engine import Engine


@dataclass
class Run:
    """Everything computed before the daemon is read."""

    stack: stack_mod.Stack
    bases: list[BaseImage]
    network: NetworkDecision
    desired: DesiredState
    host: str | None = None
    targets: list[str] = field(default_factory=list)  # --target services, images, addresses: a partial plan
    replace: frozenset[str] = frozenset()  # --replace services
    force: bool = False  # --force: rebuild every service
    refresh_remote: bool = False  # --refresh-remote: ask registries for upstream drift
    only: list[str] = field(default_factory=list)  # --only kinds: a partial plan
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from .engine import Engine  # docker-py is imported only when a command needs the daemon

            self._engine = Engine(self.host, stall_timeout=self.stack.config.network.stall_timeout)
        return self._engine


def prepare(
    stack: str | None = None,
    *,
    network: str | None = None,
    registry: str | None = None,
    host: str | None = None,
    images: list[str] | None = None,
    tag: str | None = None,
    targets: list[str] | None = None,
    replace: list[str] | None = None,
    force: bool = False,
    refresh_remote: bool = False,
    only: list[str] | None = None,
    push: bool = False,
    mirror: bool = False,
    prune: bool = False,
    role: str | None = None,
) -> Run:
    """Load the stack and compute the desired state.  ``images`` replaces the
    stack's base images by the given references and leaves out builds and
    files (``tag-localhost IMAGE...``); one the stack does not use is taken as
    given, with a warning.  ``targets`` and ``only`` are checked here, before
    the daemon is read: see :func:`reconciler.plan.scope`.

    ``push``, ``mirror``, ``prune`` (``--push`` ...) add to the stack file's settings;
    ``role`` (``--role``) replaces ``stack.role``.  A node builds nothing and reads no
    build context: its service images are pulled from the internal registry."""
    found = discover(stack, network=network, registry=registry, tag=tag, host=host)
    harbor_paths = found.stack.config.network.harbor_paths
    platform = found.stack.config.stack.platform
    state = desired_mod.desired_state(found.bases, found.network, harbor_paths, platform)
    if images:
        return _images_run(found, state, images, host)
    names = {s.name for s in found.stack.services}
    merged = {other: s.name for s in found.stack.services for other in s.also}  # compose services of one build
    replace = [merged.get(name, name) for name in replace or []]
    unknown = sorted(set(replace) - names)
    if unknown:
        raise InputError(
            f"--replace {', '.join(unknown)}: no such service",
            where="command line",
            hint=f"services are: {', '.join(sorted(names | set(merged))) or '(none)'}",
        )
    state.files = found.files
    cfg = found.stack.config
    role = role or cfg.stack.role
    if role not in ("builder", "node"):
        raise InputError(f"--role {role[:40]!r} is no role", where="command line", hint="use builder or node")
    if role == "node":
        service_images = {name: parse(s.image) for s in found.stack.services for name in (s.name, *s.also)}
        platforms = {name: s.platform for s in found.stack.services for name in (s.name, *s.also)}
        desired_mod.add_node_images(state, service_images, found.network, platforms)
    else:
        # --only without write: the builds read the files as they are now, not as the writes would leave them.
        writes = found.files if not only or "write" in only else []
        overlay = {f.dest: f"{f.mode:o}:{hashlib.sha256(f.content).hexdigest()}" for f in writes}
        state.builds = builds_mod.build_specs(found.stack, found.dockerfiles, overlay, tree=found.tree)
        if push or cfg.stack.push:
            state.pushes = desired_mod.push_targets(state.builds, found.network.registry)
    if mirror or cfg.network.mirror:
        state.mirrors, notes = desired_mod.mirror_targets(found.bases, found.network, harbor_paths)
        state.warnings += notes
    if prune or cfg.stack.prune:
        state.prune = cfg.stack.name
    scope(state, targets or [], only or [])  # a target that names nothing fails now, not after the read
    return Run(
        found.stack,
        found.bases,
        found.network,
        state,
        host,
        list(targets or []),
        frozenset(replace or []),
        force,
        refresh_remote,
        list(dict.fromkeys(only or [])),
    )


def _images_run(found: Discovered, stack_state: DesiredState, images: list[str], host: str | None) -> Run:
    """``tag-localhost IMAGE...``: those images alone, each as the stack uses it if it does."""
    used = {b.ref: b for b in found.bases}
    named = {p.ref for p in stack_state.presence} | {a.alias for a in stack_state.aliases}
    bases: list[BaseImage] = []
    notes: list[str] = []
    for text in images:
        try:
            ref = parse(text)
        except InvalidReference as exc:
            raise InputError(str(exc), where="command line", hint="give image references like redis:7-alpine") from None
        bases.append(used.get(ref) or BaseImage(ref, ()))
        if ref not in used and ref not in named:
            notes.append(f"{ref} is not used by the stack: tagged as given")
    config = found.stack.config
    state = desired_mod.desired_state(bases, found.network, config.network.harbor_paths, config.stack.platform)
    state.warnings += notes
    return Run(found.stack, bases, found.network, state, host)


def host_key(host: str | None) -> str:
    """Which daemon a run talks to, as far as can be told without asking it (``images``
    and ``env`` never do): where a remembered network decision is kept."""
    return host or os.environ.get("DOCKER_HOST") or f"context:{os.environ.get('DOCKER_CONTEXT', '')}"


@dataclass
class Discovered:
    """The stack read as apply will leave it: templates rendered in memory first."""

    stack: stack_mod.Stack  # services resolved
    network: NetworkDecision
    files: list[files_mod.FileSpec]  # what [[templates]] and [[files]] write
    tree: StackTree  # the stack folder overlaid with those files
    dockerfiles: dict[str, DockerfileInfo]  # by service
    bases: list[BaseImage]


def discover(
    stack: str | None = None,
    *,
    network: str | None = None,
    registry: str | None = None,
    tag: str | None = None,
    host: str | None = None,
) -> Discovered:
    """Templates first, in memory; then everything that reads the stack folder reads it as
    apply will leave it: the services (a template may write a Dockerfile), the compose
    files, the Dockerfiles.

    Templates see ``stack.services`` as found by the ``stack.services`` glob and the
    ``[services]`` tables; compose build sections join after, since a template may
    write the compose file."""
    loaded = stack_mod.read(stack, tag=tag)
    decision = decide(loaded.config.network, cli_mode=network, cli_registry=registry)
    decision = recalled(decision, loaded.path, host_key(host))
    planned = files_mod.planned_files(loaded)
    seen_by_templates = loaded
    if any(p.kind == "template" for p in planned):  # templates see the services: resolve them first
        before = StackTree(loaded.root, {p.dest: None for p in planned})
        seen_by_templates = stack_mod.resolve(loaded, before, partial=True)
    files = files_mod.desired_files(seen_by_templates, decision, planned)
    tree = StackTree(loaded.root, {f.dest: f.content for f in files})
    cfg = loaded.config.stack
    compose = stack_mod.read_compose(loaded, tree) if cfg.compose else {}
    loaded = stack_mod.resolve(loaded, tree, compose if cfg.compose_builds else None)
    infos = desired_mod.analyze_services(loaded, tree)
    bases = desired_mod.base_images(loaded, {name: info.uses for name, info in infos.items()}, compose)
    return Discovered(loaded, decision, files, tree, infos, bases)


@dataclass
class Observation:
    """The actual state a plan is computed from: one image list, the files, and
    (with ``--refresh-remote``) each base image's digest in its registry."""

    images: ObservedImages
    files: ObservedFiles
    remote: dict[ImageRef, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # registries that could not be asked
    api_version: str | None = None  # the daemon's API version: what its built-in Dockerfile frontend parses
    registry: ObservedRegistry = field(default_factory=ObservedRegistry)  # push and mirror targets
    containers: dict[str, list[str]] = field(default_factory=dict)  # prune: image ID -> containers using it
    created: dict[ImageRef, str] = field(default_factory=dict)  # prune: aliases reconcile created -> image ID


def observe_state(run: Run, known: Observation | None = None) -> Observation:
    """Read the actual state: the daemon's image list (one request), the files, and what the
    stack's lifecycle needs (registry digests, containers, the alias record).

    ``known``: what apply already knows exactly after performing a plan (:func:`after_apply`).
    The verify after an apply then asks the internal registry only about targets it did not
    just push, upstream registries nothing (applying changes nothing there), and inspects
    only images whose platform it has not seen; the local image list, files and containers
    are read again."""
    images = observe(run.engine.list_images())
    if known is not None:
        images.platforms.update(known.images.platforms)  # an image ID's platform never changes
    _observe_platforms(run, images)
    files = observe_files([f.dest for f in run.desired.files])
    observation = Observation(images, files, api_version=run.engine.api_version)
    if run.refresh_remote:
        # Applying changes nothing upstream: what the plan was told still holds.
        observation.remote, observation.warnings = (known.remote, []) if known is not None else remote_digests(run)
    uploads = list(dict.fromkeys(u.target for u in [*run.desired.pushes, *run.desired.mirrors]))
    if uploads:
        if known is not None:
            observation.registry = ObservedRegistry(dict(known.registry.digests), {})
            uploads = [ref for ref in uploads if ref not in known.registry.digests]
        asked = registry_digests(run.engine, uploads) if uploads else ObservedRegistry()
        observation.registry.digests.update(asked.digests)
        observation.registry.errors.update(asked.errors)
        observation.warnings += [
            f"cannot check {ref} in the internal registry: {problem}" for ref, problem in asked.errors.items()
        ]
    if run.desired.prune is not None:
        from .aliases import AliasRecord

        observation.containers = observe_containers(run.engine.list_containers())
        observation.created = AliasRecord(daemon_key(run)).created(run.desired.prune)
    return observation


def after_apply(seen: Observation, outcomes) -> Observation:
    """What is known exactly after ``outcomes``: ``seen`` with, for the registry, only the
    digests the pushes and mirrors of this apply were answered.  Any other target is asked
    again: another host may push to it (the lock is per daemon), and a failed push may
    have been cut anywhere."""
    from .plan import PushAction

    registry = ObservedRegistry()
    for outcome in outcomes:
        if isinstance(outcome.action, PushAction) and outcome.status in ("succeeded", "unchanged") and outcome.after:
            registry.digests[outcome.action.target] = outcome.after
    return replace(seen, registry=registry)


def _observe_platforms(run: Run, images: ObservedImages) -> None:
    """The platform of each local image a platform is wanted for: one inspect each (the image
    list has none), at most 8 at a time, and only when the stack names a platform."""
    wanted = [p.ref for p in run.desired.presence if p.platform] + [s.image for s in run.desired.builds if s.platform]
    ids = sorted({i for i in map(images.image_id, wanted) if i} - images.platforms.keys())
    if not ids:
        return
    from concurrent.futures import ThreadPoolExecutor  # here: with logging, ~8 ms a plan without platforms skips

    from . import platforms

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = pool.map(lambda image_id: platforms.of_image(run.engine.inspect(image_id)), ids)
        images.platforms.update({i: p for i, p in zip(ids, found, strict=True) if p})


def daemon_key(run: Run) -> str:
    """What identifies the daemon: its ID (the lock's key, the alias record's)."""
    return run.engine.info().get("ID") or run.engine.host


def _ask_all(engine: Engine, refs: list[ImageRef]):
    """Each reference's manifest digest in its registry, asked through the daemon at most 8 at a
    time (each ask bounded by ``stall_timeout``): a digest, or the EngineError it raised."""
    from concurrent.futures import ThreadPoolExecutor

    from .errors import EngineError

    def ask(ref: ImageRef) -> str | EngineError:
        try:
            return engine.distribution_digest(ref)
        except EngineError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(refs, pool.map(ask, refs), strict=True))


def registry_digests(engine: Engine, refs: list[ImageRef]) -> ObservedRegistry:
    """What the internal registry holds for each push or mirror target: a digest, absent
    (the registry says it has no such manifest), or why it could not be asked."""
    from .errors import NotFoundError

    seen = ObservedRegistry()
    for ref, answer in _ask_all(engine, list(dict.fromkeys(refs))).items():
        if isinstance(answer, str):
            seen.digests[ref] = answer
        elif isinstance(answer, NotFoundError):
            seen.digests[ref] = None
        else:
            seen.errors[ref] = str(answer)
    return seen


def remote_digests(run: Run) -> tuple[dict[ImageRef, str], list[str]]:
    """Ask the daemon for each base image's current digest in its registry
    (``GET /distribution/{name}/json``): it asks as it would pull, with its own
    credentials, registry mirrors, proxy and CAs.  An image that cannot be checked
    is a warning for that image, never fatal."""
    refs = [p.ref for p in run.desired.presence if not p.ref.is_digest]  # a digest cannot move
    answers = _ask_all(run.engine, refs)
    found = {ref: answer for ref, answer in answers.items() if isinstance(answer, str)}
    problems = [
        f"cannot check {ref} upstream: {answer}" for ref, answer in answers.items() if not isinstance(answer, str)
    ]
    return found, problems


def plan(run: Run, observation: Observation | None = None) -> Plan:
    """Diff the actual state (read now unless given) against the desired state."""
    seen = observation or observe_state(run)
    the_plan = diff(
        run.desired,
        seen.images,
        run.network,
        seen.files,
        replace=run.replace,
        force=run.force,
        previous=builds_mod.RecordStore().get,
        remote=seen.remote,
        only=run.only,
        registry=seen.registry,
        containers=seen.containers,
        created=seen.created,
    )
    the_plan.warnings += seen.warnings + heredoc_warnings(run.desired.builds, seen.api_version, run.stack.rel)
    return narrow(the_plan, scope(run.desired, run.targets, run.only))


def apply(
    run: Run,
    the_plan: Plan,
    *,
    parallelism: int = 4,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
    verify: Callable[[Run], Plan] | None = None,
    seen: Observation | None = None,
) -> ApplyResult:
    """Perform ``the_plan``, then read the daemon again: what ``verify`` (the plan of the same
    scope, unless given) still wants is ``remaining``.  ``seen``: the observation ``the_plan``
    was made from; the verify then reuses what applying cannot have changed (see
    :func:`observe_state`).

    ``stop``: set by the first interrupt; apply then starts nothing new and no verify runs.
    A verifying read that fails (the daemon went away) is kept as ``verify_error``, so the
    outcomes are still reported."""
    from .apply import ApplyResult
    from .apply import apply as execute
    from .errors import ReconcileError

    outcomes = execute(the_plan, run.engine, parallelism=parallelism, reporter=reporter, stop=stop)
    network_mod.record(run.network, run.stack.path, host_key(run.host))  # what a later check should assume
    record_aliases(run, outcomes)
    if stop is not None and stop.is_set():
        return ApplyResult(outcomes=outcomes, interrupted=True)
    # --replace / --force asked for one rebuild, now done: verify plans as a plain run would.
    verified = replace(run, replace=frozenset(), force=False)
    try:
        if verify is not None:
            remaining = verify(verified).actions
        else:
            known = after_apply(seen, outcomes) if seen is not None else None
            remaining = plan(verified, observe_state(verified, known)).actions
    except ReconcileError as exc:  # the daemon went away, most likely: what was done is still reported
        return ApplyResult(outcomes=outcomes, verify_error=str(exc))
    return ApplyResult(outcomes=outcomes, remaining=remaining)


def record_aliases(run: Run, outcomes) -> None:
    """Keep the per-daemon record of the alias tags this stack created for its base images
    (prune reads it): the ones apply created, and the recorded ones it moved; drop the ones it
    untagged.  An alias ``tag-localhost IMAGE`` made for an image the stack does not use is
    not the stack's."""
    from .aliases import AliasRecord
    from .plan import BuildAction, RemoveAction, TagAction, UntagAction

    used = {b.ref for b in run.bases if b.used_by}
    bases = {a.alias for a in run.desired.aliases if a.base in used}
    done = [o for o in outcomes if o.status == "succeeded"]
    tagged = [o for o in done if isinstance(o.action, TagAction) and o.after and o.action.image in bases]
    # The service images it built: prune removes an old version only if reconcile made that tag.
    built = {o.action.spec.image: o.after for o in done if isinstance(o.action, BuildAction) and o.after}
    gone = [
        ref
        for o in done
        if isinstance(o.action, (UntagAction, RemoveAction))
        for ref in (o.action.tags if isinstance(o.action, RemoveAction) else (o.action.image,))
    ]
    if not tagged and not gone and not built:
        return
    from .errors import EngineError

    try:
        record = AliasRecord(daemon_key(run))
    except EngineError:
        return  # the daemon went away: verify says so; these aliases stay unrecorded, so prune keeps them
    stack = run.stack.config.stack.name
    ours = record.created(stack) if any(o.action.before for o in tagged) else {}
    made = {o.action.image: o.after for o in tagged if o.action.before is None or o.action.image in ours}
    record.update(stack, {**made, **built}, gone)


def aliases_only(run: Run, observation: Observation | None = None) -> Plan:
    """``tag-localhost``: the alias tags alone, each from any local copy of its image
    (:func:`reconciler.plan.plan_aliases`); nothing is pulled.  It verifies its own apply."""
    seen = observation or Observation(observe(run.engine.list_images()), {})
    return plan_aliases(run.desired, seen.images, run.network, run.stack.config.network.harbor_paths)
