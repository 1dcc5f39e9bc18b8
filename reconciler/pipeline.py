"""The pipeline, top to bottom: stack -> desired -> actual -> plan -> apply -> verify.

This is the importable library the CLI is a thin shell over::

    run = reconciler.prepare("desired/")          # stack file + network -> desired state
    the_plan = reconciler.plan(run)                # one read of the daemon, pure diff
    result = reconciler.apply(run, the_plan)       # the only writer, then a verifying plan
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import builds as builds_mod
from . import desired as desired_mod
from . import files as files_mod
from . import stack as stack_mod
from .actual import ObservedFiles, ObservedImages, observe, observe_files
from .desired import BaseImage, DesiredState
from .errors import InputError
from .network import NetworkDecision, decide
from .plan import Plan, TagAction, heredoc_warnings, narrow
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
    targets: list[str] = field(default_factory=list)  # --target services: a partial plan
    replace: frozenset[str] = frozenset()  # --replace services
    force: bool = False  # --force: rebuild every service
    refresh_remote: bool = False  # --refresh-remote: ask registries for upstream drift
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
) -> Run:
    """Load the stack and compute the desired state.  ``images`` replaces the
    stack's base images by the given references and leaves out builds and
    files (``tag-localhost IMAGE...``)."""
    if images:
        loaded = stack_mod.read(stack, tag=tag)
        decision = decide(loaded.config.network, cli_mode=network, cli_registry=registry)
        bases = []
        for text in images:
            try:
                bases.append(BaseImage(parse(text), ()))
            except InvalidReference as exc:
                raise InputError(
                    str(exc), where="command line", hint="give image references like redis:7-alpine"
                ) from None
        state = desired_mod.desired_state(bases, decision, loaded.config.network.harbor_paths)
        return Run(loaded, bases, decision, state, host)
    found = discover(stack, network=network, registry=registry, tag=tag)
    names = {s.name for s in found.stack.services}
    for option, given in (("--target", targets or []), ("--replace", replace or [])):
        unknown = sorted(set(given) - names)
        if unknown:
            raise InputError(
                f"{option} {', '.join(unknown)}: no such service",
                where="command line",
                hint=f"services are: {', '.join(sorted(names)) or '(none)'}",
            )
    state = desired_mod.desired_state(found.bases, found.network, found.stack.config.network.harbor_paths)
    state.files = found.files
    overlay = {f.dest: f"{f.mode:o}:{hashlib.sha256(f.content).hexdigest()}" for f in found.files}
    state.builds = builds_mod.build_specs(found.stack, found.dockerfiles, overlay, tree=found.tree)
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
    )


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
    stack: str | None = None, *, network: str | None = None, registry: str | None = None, tag: str | None = None
) -> Discovered:
    """Templates first, in memory; then everything that reads the stack folder reads it as
    apply will leave it: the services (a template may write a Dockerfile), the compose
    files, the Dockerfiles.

    Templates see ``stack.services`` as found by the ``stack.services`` glob and the
    ``[services]`` tables; compose build sections join after, since a template may
    write the compose file."""
    loaded = stack_mod.read(stack, tag=tag)
    decision = decide(loaded.config.network, cli_mode=network, cli_registry=registry)
    planned = files_mod.planned_files(loaded)
    before = StackTree(loaded.root, {p.dest: None for p in planned})
    files = files_mod.desired_files(stack_mod.resolve(loaded, before, partial=True), decision, planned)
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


def observe_state(run: Run) -> Observation:
    images = observe(run.engine.list_images())
    files = observe_files([f.dest for f in run.desired.files])
    observation = Observation(images, files, api_version=run.engine.api_version)
    if run.refresh_remote:
        observation.remote, observation.warnings = remote_digests(run)
    return observation


def remote_digests(run: Run) -> tuple[dict[ImageRef, str], list[str]]:
    """Ask the daemon for each base image's current digest in its registry
    (``GET /distribution/{name}/json``): it asks as it would pull, with its own
    credentials, registry mirrors, proxy and CAs.  An image that cannot be checked
    is a warning for that image, never fatal."""
    from concurrent.futures import ThreadPoolExecutor

    from .errors import EngineError

    engine = run.engine
    refs = [p.ref for p in run.desired.presence if not p.ref.is_digest]  # a digest cannot move

    def ask(ref: ImageRef) -> str | EngineError:
        try:
            return engine.distribution_digest(ref)
        except EngineError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(zip(refs, pool.map(ask, refs), strict=True))
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
    )
    the_plan.warnings += seen.warnings + heredoc_warnings(run.desired.builds, seen.api_version, run.stack.rel)
    return narrow(the_plan, run.targets) if run.targets else the_plan


def apply(run: Run, the_plan: Plan, *, parallelism: int = 4, reporter: Reporter | None = None) -> ApplyResult:
    """Perform ``the_plan``, then read the daemon again: what it still plans is ``remaining``."""
    from .apply import ApplyResult
    from .apply import apply as execute

    outcomes = execute(the_plan, run.engine, parallelism=parallelism, reporter=reporter)
    # --replace / --force asked for one rebuild, now done: verify plans as a plain run would.
    return ApplyResult(outcomes=outcomes, remaining=plan(replace(run, replace=frozenset(), force=False)).actions)


def aliases_only(the_plan: Plan) -> Plan:
    """``tag-localhost``: the tags of a plan whose sources are already present."""
    # A tag that waited for a pull has no target now: apply reports it failed, with a hint.
    return Plan(
        network=the_plan.network,
        actions=[replace(a, depends_on=[]) for a in the_plan.actions if isinstance(a, TagAction)],
        unchanged=the_plan.unchanged,
        warnings=the_plan.warnings,
    )
