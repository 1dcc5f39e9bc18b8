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

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from .errors import EngineError, NotFoundError
from .plan import Action, Plan, PullAction, TagAction, short_id

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
        }


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    remaining: list[Action] = field(default_factory=list)  # what the verifying plan still wants

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0 and not self.remaining

    def summary(self) -> dict[str, int]:
        return {
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


class SilentReporter:
    def started(self, action: Action) -> None:
        pass

    def progress(self, action: Action, event: dict) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass


def apply(
    plan: Plan,
    engine: Engine,
    *,
    parallelism: int = 4,
    reporter: Reporter | None = None,
    retry_delay: float = 1.0,
) -> list[Outcome]:
    report = reporter or SilentReporter()
    outcomes: dict[str, Outcome] = {}

    def done(outcome: Outcome) -> None:
        outcomes[outcome.action.address] = outcome
        report.finished(outcome)

    pulls = [a for a in plan.actions if isinstance(a, PullAction)]
    tags = [a for a in plan.actions if isinstance(a, TagAction)]
    waiting: dict[str, list[TagAction]] = {}
    for tag in tags:
        if tag.depends_on:
            waiting.setdefault(tag.depends_on[0], []).append(tag)
        else:
            done(_tag(engine, tag, tag.after, report))

    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="pull") as pool:
        running: dict[Future, PullAction] = {
            pool.submit(_pull, engine, action, report, retry_delay): action for action in pulls
        }
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                action = running.pop(future)
                outcome = future.result()
                done(outcome)
                for tag in waiting.pop(action.address, []):
                    if outcome.status == "succeeded":
                        done(_tag(engine, tag, outcome.after, report))
                    else:
                        done(Outcome(tag, "skipped", f"skipped: {action.address} failed"))
    return [outcomes[a.address] for a in plan.actions]


def _pull(engine: Engine, action: PullAction, report: Reporter, retry_delay: float) -> Outcome:
    report.started(action)
    start = time.monotonic()
    error: EngineError | None = None
    for attempt in range(1, PULL_ATTEMPTS + 1):
        try:
            image_id = engine.pull(action.image, lambda event: report.progress(action, event))
            return Outcome(
                action, "succeeded", f"pulled {action.image} as {short_id(image_id)}",
                after=image_id, seconds=time.monotonic() - start,
            )
        except NotFoundError as exc:  # the registry said no: asking again will not change that
            error = exc
            break
        except EngineError as exc:
            error = exc
            if attempt < PULL_ATTEMPTS:
                report.progress(action, {"status": f"attempt {attempt} failed, retrying", "error": str(exc)})
                time.sleep(retry_delay * 2 ** (attempt - 1))
    assert error is not None
    attempts = "" if isinstance(error, NotFoundError) else f" (after {PULL_ATTEMPTS} attempts)"
    return Outcome(
        action, "failed", f"pull {action.image} failed{attempts}",
        error=str(error), hint=_pull_hint(action, error), seconds=time.monotonic() - start,
    )


def _pull_hint(action: PullAction, error: EngineError) -> str | None:
    if not isinstance(error, NotFoundError):
        return None
    return f"the registry has no {action.image}: push or mirror it there, then check with: docker pull {action.image}"


def _tag(engine: Engine, action: TagAction, target: str | None, report: Reporter) -> Outcome:
    report.started(action)
    if target is None:
        return Outcome(
            action, "failed", f"tag {action.image} failed", error=f"{action.source} is not present",
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
    return Outcome(action, "succeeded", f"{verb} {action.source} → {action.image} ({short_id(target)})", after=target)
