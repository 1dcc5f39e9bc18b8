"""Apply: the only stage that changes the daemon, then verify.

It executes the plan as planned; the one decision it takes is the one the
plan defers ("target decided after pulling ..."): a tag whose source was
pulled is compared with the pulled image ID and skipped when it already
points there.  Pulls run in parallel; a tag waits for its pull; an action
whose dependency failed is skipped, independent ones go on.  A failed pull
changes no tag, so nothing the user had is lost and the next apply finishes
the job.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Protocol

from . import builds, files, platforms
from .context import HashCache, context_record, pack
from .errors import BuildError, EngineError, NotFoundError, ReconcileError
from .plan import (
    Action,
    BuildAction,
    Plan,
    PullAction,
    PushAction,
    RemoveAction,
    TagAction,
    UntagAction,
    WriteAction,
    short_id,
)

if TYPE_CHECKING:
    from .engine import Engine  # docker-py loads only when a daemon is used

Status = Literal["succeeded", "failed", "skipped", "unchanged"]
PULL_ATTEMPTS = 3


@dataclass
class Outcome:
    action: Action
    status: Status
    message: str
    after: str | None = None
    error: str | None = None
    hint: str | None = None
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)  # a failed build's last output lines

    def to_json(self) -> dict:
        return {
            "address": self.action.address,
            "kind": self.action.kind,
            "status": self.status,
            "message": self.message,
            "before": self.action.before,
            "after": self.after,
            "error": self.error,
            "hint": self.hint,
            "seconds": round(self.seconds, 3),
            **({"log": self.log} if self.log else {}),
        }


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    remaining: list[Action] = field(default_factory=list)  # what the verifying plan still wants
    interrupted: bool = False  # a Ctrl-C or SIGTERM stopped it: no verify was made
    verify_error: str | None = None  # the verifying read failed (the daemon went away)

    def count(self, status: Status, kind: str | None = None) -> int:
        return sum(1 for o in self.outcomes if o.status == status and (kind is None or o.action.kind == kind))

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0 and not self.remaining and not self.interrupted and not self.verify_error

    @property
    def verified(self) -> bool:
        """Whether the verifying plan ran."""
        return not self.interrupted and self.verify_error is None

    def summary(self) -> dict[str, int]:
        done = {
            "pull": "pulled",
            "tag": "tagged",
            "build": "built",
            "write": "written",
            "push": "pushed",
            "mirror": "mirrored",
            "untag": "untagged",
            "remove": "removed",
        }
        return {
            **{word: self.count("succeeded", kind) for kind, word in done.items()},
            "succeeded": self.count("succeeded"),
            "unchanged": self.count("unchanged"),
            "failed": self.count("failed"),
            "skipped": self.count("skipped"),
            "total": len(self.outcomes),
        }


class Reporter(Protocol):
    def started(self, action: Action) -> None: ...
    def progress(self, action: Action, event: dict) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...

    # Optional: ``stopping(running)``, said once when an interrupt stops new actions.


class SilentReporter:
    def started(self, action: Action) -> None:
        pass

    def progress(self, action: Action, event: dict) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass


# After a graceful stop, how long running pulls and builds may take to end before apply
# returns without them (their daemon threads die with the process; the daemon cancels a
# pull or build whose client went away, and nothing is tagged by an unfinished action).
STOP_GRACE = 5.0


def apply(
    plan: Plan,
    engine: Engine,
    *,
    parallelism: int = 4,
    reporter: Reporter | None = None,
    retry_delay: float = 1.0,
    stop: threading.Event | None = None,
    grace: float = STOP_GRACE,
) -> list[Outcome]:
    """Run the plan's actions as their dependencies allow: up to ``parallelism``
    at once; an action whose dependency failed or was skipped is skipped.

    ``stop`` set (the first Ctrl-C or SIGTERM): nothing new starts, what waits is
    skipped, what runs gets ``grace`` seconds to end and is then reported failed."""
    gate = _Gate(reporter or SilentReporter())
    stop = stop or threading.Event()
    actions = {a.address: a for a in plan.actions}
    outcomes: dict[str, Outcome] = {}
    waiting = dict(actions)
    running: dict[str, Action] = {}
    done: queue.Queue[tuple[str, Outcome | BaseException]] = queue.Queue()

    def run(action: Action) -> Outcome:
        if isinstance(action, PullAction):
            return _pull(engine, action, gate, retry_delay)
        if isinstance(action, TagAction):
            pulled = [outcomes[d].after for d in action.depends_on if d in outcomes]
            return _tag(engine, action, pulled[0] if pulled else action.after, gate)
        if isinstance(action, WriteAction):
            return _write(action, gate)
        if isinstance(action, BuildAction):
            return _build(engine, action, gate)
        if isinstance(action, PushAction):  # a mirror is a push of a base image
            return _push(engine, action, gate, retry_delay)
        if isinstance(action, (UntagAction, RemoveAction)):
            return _untag(engine, action, gate)
        raise TypeError(f"no way to apply {action.address}")

    todo: queue.Queue[Action | None] = queue.Queue()
    workers: list[threading.Thread] = []

    def work() -> None:
        # A few long-lived workers, not a thread per action: each keeps its daemon connection.
        while (action := todo.get()) is not None:
            try:
                done.put((action.address, run(action)))
            except BaseException as exc:  # a bug in us: re-raised in the main thread with its traceback
                done.put((action.address, exc))

    def finish(address: str, outcome: Outcome) -> None:
        outcomes[address] = outcome
        gate.finished(outcome)

    deadline = None
    try:
        while waiting or running:
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + grace
                gate.stopping(len(running))
                for address, action in waiting.items():
                    finish(address, Outcome(action, "skipped", "not started: interrupted"))
                waiting.clear()
            for address, action in list(waiting.items()):
                if len(running) >= max(1, parallelism):
                    break
                deps = [d for d in action.depends_on if d in actions]
                if any(d not in outcomes for d in deps):
                    continue
                del waiting[address]
                broken = [d for d in deps if outcomes[d].status in ("failed", "skipped")]
                if broken:
                    finish(address, Outcome(action, "skipped", f"skipped: {broken[0]} {outcomes[broken[0]].status}"))
                    continue
                running[address] = action
                if len(workers) < len(running):
                    # Daemon threads: a stop after the grace period must not wait for a stalled stream.
                    workers.append(threading.Thread(target=work, name=f"apply worker {len(workers)}", daemon=True))
                    workers[-1].start()
                todo.put(action)
            if not running:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                for address, action in running.items():
                    finish(
                        address, Outcome(action, "failed", f"{address} interrupted", error="still running when stopped")
                    )
                running.clear()
                break
            try:
                address, result = done.get(timeout=0.2)  # short: signals are handled between waits
            except queue.Empty:
                continue
            if isinstance(result, BaseException):
                raise result
            del running[address]
            finish(address, result)
    finally:
        gate.close()  # threads still running report nothing more
        for _ in workers:
            todo.put(None)  # idle workers end; one still running after a stop ends with the process
    return [outcomes[a.address] for a in plan.actions]


class _Gate:
    """Passes reports on until apply returns; a thread that outlives apply says nothing more."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.open = True
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            self.open = False

    def _call(self, name: str, *args) -> None:
        with self.lock:
            if self.open and hasattr(self.reporter, name):
                getattr(self.reporter, name)(*args)

    def started(self, action: Action) -> None:
        self._call("started", action)

    def progress(self, action: Action, event: dict) -> None:
        self._call("progress", action, event)

    def finished(self, outcome: Outcome) -> None:
        self._call("finished", outcome)

    def stopping(self, running: int) -> None:
        self._call("stopping", running)


def _retried(action: Action, report: Reporter, retry_delay: float, call):
    """``call()`` up to PULL_ATTEMPTS times, 1 s then 2 s apart: (its result, None), or (None, the last
    error).  A NotFoundError is final at once: the registry said no, asking again changes nothing."""
    error: EngineError | None = None
    for attempt in range(1, PULL_ATTEMPTS + 1):
        try:
            return call(), None
        except NotFoundError as exc:
            return None, exc
        except EngineError as exc:
            error = exc
            if attempt < PULL_ATTEMPTS:
                report.progress(action, {"status": f"attempt {attempt} failed, retrying", "error": str(exc)})
                time.sleep(retry_delay * 2 ** (attempt - 1))
    return None, error


def _attempts(error: EngineError) -> str:
    return "" if isinstance(error, NotFoundError) else f" (after {PULL_ATTEMPTS} attempts)"


def _pull(engine: Engine, action: PullAction, report: Reporter, retry_delay: float) -> Outcome:
    report.started(action)
    start = time.monotonic()
    image_id, error = _retried(
        action,
        report,
        retry_delay,
        lambda: engine.pull(action.image, lambda event: report.progress(action, event), action.platform),
    )
    if error is not None:
        return Outcome(
            action,
            "failed",
            f"pull {action.image} failed{_attempts(error)}",
            error=str(error),
            hint=_pull_hint(action, error),
            seconds=time.monotonic() - start,
        )
    try:
        have = platforms.of_image(engine.inspect(image_id)) if action.platform else None
    except EngineError as exc:
        return Outcome(
            action, "failed", f"pull {action.image} failed", error=str(exc), seconds=time.monotonic() - start
        )
    if not platforms.matches(have, action.platform):
        # A registry without that platform serves its one image anyway (the daemon only warns).
        return Outcome(
            action,
            "failed",
            f"pull {action.image} failed",
            after=image_id,
            error=f"the registry serves {action.image} for {have} only, not {action.platform}",
            hint="push an image for that platform there, or change [stack] / [services.X] platform",
            seconds=time.monotonic() - start,
        )
    return Outcome(
        action,
        "succeeded",
        f"pulled {action.image} as {short_id(image_id)}",
        after=image_id,
        seconds=time.monotonic() - start,
    )


def _pull_hint(action: PullAction, error: EngineError) -> str | None:
    if not isinstance(error, NotFoundError):
        return None
    return f"the registry has no {action.image}: push or mirror it there, then check with: docker pull {action.image}"


def _push(engine: Engine, action: PushAction, report: Reporter, retry_delay: float) -> Outcome:
    """Tag and push, retried like a pull; pushing what the registry has already is a no-op there
    (every layer exists, the same manifest), reported unchanged."""
    report.started(action)
    start = time.monotonic()
    digest, error = _retried(
        action,
        report,
        retry_delay,
        lambda: engine.push(action.image, action.target, lambda event: report.progress(action, event)),
    )
    seconds = time.monotonic() - start
    if error is not None:
        return Outcome(
            action,
            "failed",
            f"{action.kind} {action.image} to {action.target} failed{_attempts(error)}",
            error=str(error),
            hint="check that the registry is reachable and that the docker config has credentials for it "
            f"(docker login {action.target.domain})",
            seconds=seconds,
        )
    if digest == action.before:
        return Outcome(action, "unchanged", f"{action.target} already is {digest[:19]}", after=digest, seconds=seconds)
    verb = "mirrored" if action.kind == "mirror" else "pushed"
    return Outcome(
        action, "succeeded", f"{verb} {action.image} as {action.target} ({digest[:19]})", after=digest, seconds=seconds
    )


def _untag(engine: Engine, action: UntagAction | RemoveAction, report: Reporter) -> Outcome:
    """Untag, or remove an image tag by tag (it goes with the last).  A tag already gone is
    not a failure; an image a container started to use meanwhile is (the daemon refuses)."""
    report.started(action)
    tags = action.tags if isinstance(action, RemoveAction) else (action.image,)
    gone: list = []
    deleted = False
    for ref in tags:
        try:
            if engine.image_id(ref) != action.before:  # moved since the plan: no longer what prune meant
                continue
            deleted = engine.untag(ref) or deleted
        except NotFoundError:
            continue
        except EngineError as exc:
            return Outcome(action, "failed", f"{action.kind} {action.image} failed", error=str(exc))
        gone.append(ref)
    if not gone:
        return Outcome(action, "unchanged", f"{action.image} was already gone")
    names = ", ".join(r.familiar for r in gone)
    if deleted:
        return Outcome(action, "succeeded", f"removed {names} ({short_id(action.before)})")
    # The image took a declared tag meanwhile (a build that made the same image): only the tags went.
    return Outcome(action, "succeeded", f"untagged {names} ({short_id(action.before)} stays)")


def _tag(engine: Engine, action: TagAction, target: str | None, report: Reporter) -> Outcome:
    report.started(action)
    if target is None:
        return Outcome(
            action,
            "failed",
            f"tag {action.image} failed",
            error=f"{action.source} is not present",
            hint="pull it first: reconcile apply",
        )
    if action.before == target:
        # The plan deferred this decision to after the pull; it turned out to be a no-op.
        return Outcome(action, "unchanged", f"{action.image} already points at {short_id(target)}", after=target)
    try:
        engine.tag(target, action.image)
    except EngineError as exc:
        return Outcome(action, "failed", f"tag {action.image} failed", error=str(exc))
    verb = "moved" if action.before else "created"
    if action.base is not None and action.base not in (action.source, action.image):
        # Another copy of the image: name both, so the user sees which copy the alias now shares.
        text = f"{verb} {action.base} → {action.image} (from {action.source}, {short_id(target)})"
    else:
        text = f"{verb} {action.source} → {action.image} ({short_id(target)})"
    return Outcome(action, "succeeded", text, after=target)


def _write(action: WriteAction, report: Reporter) -> Outcome:
    report.started(action)
    try:
        files.write(action.spec)
    except (OSError, ReconcileError) as exc:
        return Outcome(action, "failed", f"write {action.spec.rel} failed", error=str(exc))
    verb = "created" if action.reason == "missing" else "updated"
    return Outcome(action, "succeeded", f"{verb} {action.spec.rel} ({action.spec.mode:04o})")


def _build(engine: Engine, action: BuildAction, report: Reporter) -> Outcome:
    """Build one service.  The inputs are read again now, after the pulls,
    tags, writes and builds it waited for; a ``base-changed`` build whose
    inputs turn out unchanged is skipped as a no-op."""
    from .actual import observe

    report.started(action)
    start = time.monotonic()
    spec = action.spec
    hide = builds.redactor(spec)  # secret build args never reach the output (BuildKit puts them in step names)
    try:
        observed = observe(engine.list_images())
        resolved = resolve_now(action, observed)
        if action.reason == "base-changed":
            label = observed.labels.get(action.before or "", {}).get(builds.LABEL_INPUTS)
            inputs = builds.record(
                replace(spec, files=context_record(spec.context, spec.dockerfile, HashCache(), None, spec.sources)),
                resolved,
            )
            if builds.digest(inputs) == label:
                return Outcome(
                    action,
                    "unchanged",
                    f"{spec.image}: inputs unchanged after its bases were updated; not rebuilt",
                    after=action.before,
                )
        # A base with ONBUILD triggers copies from our context paths no COPY here names: send it all.
        # The record stays what the plan hashed (such triggers are invisible to a plan; see docs/builds.md).
        onbuild = spec.sources is not None and any(engine.has_onbuild(ref) for ref in action.lookups.values())
        packed = pack(spec.context, spec.dockerfile, None if onbuild else spec.sources)
        files = (
            context_record(spec.context, spec.dockerfile, HashCache(), None, spec.sources) if onbuild else packed.record
        )
        inputs = builds.record(replace(spec, files=files), resolved)
        inputs_hash = builds.digest(inputs)
        with packed.file:
            image_id = engine.build(
                packed.file,
                dockerfile=packed.dockerfile,
                tag=spec.image,
                labels={
                    builds.LABEL_INPUTS: inputs_hash,
                    builds.LABEL_PARTS: json.dumps(builds.parts(inputs), sort_keys=True),
                    builds.LABEL_STACK: spec.stack,
                    builds.LABEL_SERVICE: spec.service,
                },
                build_args=spec.build_args,
                target=spec.target,
                nocache=action.nocache,
                network=spec.network,
                platform=spec.platform,
                on_event=lambda event: report.progress(action, {k: _hidden(v, hide) for k, v in event.items()}),
            )
    except BuildError as exc:
        return Outcome(
            action,
            "failed",
            f"build {spec.service} failed",
            error=hide(str(exc)),
            log=[hide(line) for line in exc.log],
            seconds=time.monotonic() - start,
        )
    except ReconcileError as exc:
        return Outcome(
            action, "failed", f"build {spec.service} failed", error=hide(str(exc)), seconds=time.monotonic() - start
        )
    builds.RecordStore().put(inputs_hash, inputs)
    return Outcome(
        action,
        "succeeded",
        f"built {spec.image} as {short_id(image_id)}",
        after=image_id,
        seconds=time.monotonic() - start,
    )


def _hidden(value, hide):
    return hide(value) if isinstance(value, str) else value


def resolve_now(action: BuildAction, observed) -> dict[str, str | None]:
    """What the build's bases resolve to on the daemon now; a sibling's image: its inputs label."""
    resolved: dict[str, str | None] = {key: observed.image_id(ref) for key, ref in action.lookups.items()}
    for image in action.spec.needs.values():
        image_id = observed.image_id(image)
        resolved[image.familiar] = observed.labels.get(image_id, {}).get(builds.LABEL_INPUTS) if image_id else None
    return resolved
