"""``apply --json``: one JSON object per line, as terraform's machine-readable UI.

Every line has ``@level``, ``@message``, ``@timestamp`` and a ``type``:
``version`` first, then ``diagnostic`` (warnings, errors), ``planned_change``
per action, ``apply_start`` / ``apply_progress`` / ``apply_complete`` or
``apply_errored`` as actions run, and ``change_summary`` last.  The models
below are the schema (docs/apply-stream.schema.json is generated from them),
and every line is written through them, so the two cannot drift.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

STREAM_VERSION = "1.0"
Level = Literal["info", "warn", "error"]


class _Line(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    level: Level = Field(alias="@level")
    message: str = Field(alias="@message")
    timestamp: str = Field(alias="@timestamp", description="RFC 3339, UTC, microseconds")


class Version(_Line):
    type: Literal["version"] = "version"
    reconcile: str
    stream: str = Field(description="This format's version: additive within 1.x")


class Diagnostic(BaseModel):
    severity: Literal["warning", "error"]
    summary: str
    detail: str | None = None


class DiagnosticLine(_Line):
    type: Literal["diagnostic"] = "diagnostic"
    diagnostic: Diagnostic


class PlannedChange(_Line):
    type: Literal["planned_change"] = "planned_change"
    change: dict[str, Any] = Field(description="The action, as in plan --json")


class Hook(BaseModel):
    address: str
    kind: str


class ApplyStart(_Line):
    type: Literal["apply_start"] = "apply_start"
    hook: Hook


class ProgressHook(Hook):
    event: dict[str, Any] = Field(description="pull: the daemon's layer status; build: {step, cached}")


class ApplyProgress(_Line):
    type: Literal["apply_progress"] = "apply_progress"
    hook: ProgressHook


class Outcome(BaseModel):
    address: str
    kind: str
    status: Literal["succeeded", "failed", "skipped", "unchanged"]
    message: str
    before: str | None = None
    after: str | None = None
    error: str | None = None
    hint: str | None = None
    seconds: float
    log: list[str] | None = None


class ApplyComplete(_Line):
    type: Literal["apply_complete"] = "apply_complete"
    hook: Outcome


class ApplyErrored(_Line):
    type: Literal["apply_errored"] = "apply_errored"
    hook: Outcome


class Changes(BaseModel):
    pulled: int
    tagged: int
    written: int
    built: int
    pushed: int = 0
    mirrored: int = 0
    untagged: int = 0
    removed: int = 0
    succeeded: int
    unchanged: int
    failed: int
    skipped: int
    total: int


class Verify(BaseModel):
    converged: bool
    remaining: list[str] = Field(description="Addresses a fresh plan still wants")
    checked: Literal[False] | None = Field(
        None, description="false when no verifying plan ran (interrupted, or the daemon was lost); absent otherwise"
    )
    error: str | None = Field(None, description="Why the verifying read failed")


class ChangeSummary(_Line):
    type: Literal["change_summary"] = "change_summary"
    changes: Changes
    verify: Verify
    interrupted: Literal[True] | None = Field(None, description="true when a Ctrl-C or SIGTERM stopped the apply")


StreamLine = Annotated[
    Version
    | DiagnosticLine
    | PlannedChange
    | ApplyStart
    | ApplyProgress
    | ApplyComplete
    | ApplyErrored
    | ChangeSummary,
    Field(discriminator="type"),
]
LINE = TypeAdapter(StreamLine)

# Pull progress ticks (bytes so far) would be thousands of lines; state changes are kept.
_TICKS = {"Downloading", "Extracting", "Waiting"}


def schema() -> dict:
    return LINE.json_schema(by_alias=True)


class JsonStream:
    """Writes the stream; also the apply Reporter (started / progress / finished)."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.lock = threading.Lock()

    def _emit(self, kind: type[_Line], level: Level, message: str, **fields) -> None:
        now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        line = kind(level=level, message=message, timestamp=now, **fields)
        text = json.dumps(line.model_dump(by_alias=True, exclude_none=True), separators=(",", ":"))
        with self.lock:
            print(text, file=self.out, flush=True)

    def version(self, reconcile: str) -> None:
        self._emit(Version, "info", f"reconcile {reconcile}", reconcile=reconcile, stream=STREAM_VERSION)

    def diagnostic(self, severity: Literal["warning", "error"], summary: str, detail: str | None = None) -> None:
        level: Level = "warn" if severity == "warning" else "error"
        self._emit(
            DiagnosticLine,
            level,
            f"{severity.capitalize()}: {summary}",
            diagnostic=Diagnostic(severity=severity, summary=summary, detail=detail),
        )

    def planned(self, action) -> None:
        self._emit(
            PlannedChange, "info", f"{action.address}: plan to {action.kind} ({action.reason})", change=action.to_json()
        )

    def started(self, action) -> None:
        self._emit(
            ApplyStart, "info", f"{action.address}: starting", hook=Hook(address=action.address, kind=action.kind)
        )

    def progress(self, action, event: dict) -> None:
        if event.get("status") in _TICKS:
            return
        what = event.get("step") or event.get("status") or "progress"
        clean = json.loads(json.dumps(event, default=str))
        self._emit(
            ApplyProgress,
            "info",
            f"{action.address}: {what}",
            hook=ProgressHook(address=action.address, kind=action.kind, event=clean),
        )

    def finished(self, outcome) -> None:
        data = Outcome(**outcome.to_json())
        if outcome.status == "failed":
            self._emit(ApplyErrored, "error", f"{outcome.action.address}: {outcome.error}", hook=data)
        else:
            self._emit(ApplyComplete, "info", f"{outcome.action.address}: {outcome.message}", hook=data)

    def stopping(self, running: int) -> None:
        self.diagnostic("warning", f"interrupted: no new actions start; waiting for {running} running")

    def summary(self, counts: dict[str, int], remaining: list[str], result=None) -> None:
        """The last line; ``result`` (an ApplyResult) adds whether verify ran and why not."""
        interrupted = bool(result and result.interrupted)
        error = result.verify_error if result else None
        failed = counts["failed"] or remaining or interrupted or error
        word = "interrupted" if interrupted else "finished with errors" if failed else "complete"
        lifecycle = "".join(
            f"{counts[w]} {w}, " for w in ("pushed", "mirrored", "untagged", "removed") if counts.get(w)
        )
        message = (
            f"Apply {word}: {counts['pulled']} pulled, {counts['tagged']} tagged, "
            f"{counts['written']} written, {counts['built']} built, {lifecycle}{counts['failed']} failed"
        )
        self._emit(
            ChangeSummary,
            "error" if failed else "info",
            message,
            changes=Changes(**counts),
            verify=Verify(
                converged=not remaining and not interrupted and not error,
                remaining=remaining,
                checked=False if interrupted or error else None,
                error=error,
            ),
            interrupted=True if interrupted else None,
        )
