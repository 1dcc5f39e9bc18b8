"""How results look: plans, apply progress and summaries, image lists.

stdout carries results (the plan, summaries, JSON); stderr carries progress
and warnings.  Colors only when the stream is a terminal.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from .desired import BaseImage
from .errors import printable
from .network import NetworkDecision
from .plan import (
    Action,
    BuildAction,
    MirrorAction,
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
    from .apply import ApplyResult, Outcome

_COLORS = {"+": "green", "~": "yellow", "-": "red", "!": "red", "=": "bright_black"}


def colors(stream: TextIO) -> bool:
    """Colors only on a terminal, and not when NO_COLOR is set (no-color.org), TERM=dumb or --no-color."""
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _style(text: str, color: str | None, stream: TextIO, bold: bool = False) -> str:
    if not color or not colors(stream):
        return text
    import typer

    return typer.style(text, fg=color, bold=bold)


def emit(text: str = "", stream: TextIO | None = None) -> None:
    print(text, file=stream or sys.stdout)


def emit_json(document: dict) -> None:
    print(json.dumps(document, indent=2, sort_keys=False))


def network_line(network: NetworkDecision) -> str:
    text = f"Network: {network.mode} (from {network.source}); internal registry {network.registry}"
    if network.note:
        text += f"; {network.note}"
    return text


def action_line(action: Action) -> str:
    if isinstance(action, PullAction):
        return f"pull {action.image}"
    if isinstance(action, TagAction):
        if action.before:
            want = short_id(action.after) if action.after else "known after pull"
            return f"tag {action.image} (now {short_id(action.before)}, want {want})"
        return f"tag {action.source} → {action.image}"
    if isinstance(action, WriteAction):
        return f"write {action.spec.rel} ({action.spec.mode:04o}, from {action.spec.kind} {action.spec.src.name})"
    if isinstance(action, BuildAction):
        return f"build {action.spec.service} → {action.spec.image}" + (" (no cache)" if action.nocache else "")
    if isinstance(action, PushAction):
        return f"{'mirror' if isinstance(action, MirrorAction) else 'push'} {action.image} → {action.target}"
    if isinstance(action, UntagAction):
        return f"untag {action.image} ({short_id(action.before)})"
    if isinstance(action, RemoveAction):
        return f"remove {', '.join(t.familiar for t in action.tags)} ({short_id(action.before)})"
    return action.address


def scope_text(plan: Plan) -> str:
    """``--target a, b --only pull``: the options that made the plan partial."""
    parts = [f"--target {', '.join(plan.targets)}"] if plan.targets else []
    return " ".join(parts + ([f"--only {', '.join(plan.only)}"] if plan.only else []))


def summary_line(plan: Plan) -> str:
    scope = f" for {scope_text(plan)}" if plan.partial else ""
    if plan.empty:
        return f"No changes{scope}. Images and files are up to date."
    counts = plan.summary()
    parts = [f"{counts[kind]} to {kind}" for kind in counts if kind != "total" and counts[kind]]
    return f"Plan{scope}: {', '.join(parts)}."


def _diff_lines(diff: str, stream: TextIO):
    colors = {"+": "green", "-": "red", "@": "cyan"}
    for line in diff.rstrip("\n").splitlines():
        color = None if line.startswith(("+++", "---")) else colors.get(line[:1])
        yield _style(f"      {printable(line)}", color, stream)  # file content: no escape sequence reaches the terminal


def grouped(actions: list[Action], *, compact: bool = False) -> list[tuple[Action, list[str]]]:
    """The plan as people read it: each base image's pull with the tags that follow it (one
    reason for the block: the tags point at whatever the pull brings), the other actions
    one each, in plan order.  ``compact``: one line per resource, no reasons.  The order of execution is
    the plan's, whatever this shows."""
    pulls = {a.address: a for a in actions if isinstance(a, PullAction)}
    following: dict[str, list[TagAction]] = {}
    for action in actions:
        if isinstance(action, TagAction) and (pull := next((d for d in action.depends_on if d in pulls), None)):
            following.setdefault(pull, []).append(action)
    nested = {tag.address for tags in following.values() for tag in tags}
    blocks: list[tuple[Action, list[str]]] = []
    for action in actions:
        if action.address in nested:
            continue
        if compact:
            blocks.append((action, []))
            if isinstance(action, PullAction):
                blocks += [(tag, []) for tag in following.get(action.address, [])]
            continue
        details = [f"{action.reason}: {action.detail}"]
        tags = following.get(action.address, [])
        if tags:
            details += [
                f"{tag.symbol} tag {tag.image}" + (f" (now {short_id(tag.before)})" if tag.before else "")
                for tag in tags
            ]
        blocks.append((action, details))
    return blocks


def render_plan(plan: Plan, *, verbose: bool = False, compact: bool = False, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    emit(network_line(plan.network), out)
    for warning in plan.warnings:
        emit(_style(f"Warning: {printable(warning)}", "yellow", sys.stderr), sys.stderr)
    for kept in plan.kept:
        emit(_style(f"  ! {printable(kept.text)}", "yellow", out), out)
    if verbose and plan.unchanged:
        emit("", out)
        for line in plan.unchanged:
            emit(_style(f"  = {line}", "bright_black", out), out)
    if not plan.empty:
        emit("\nreconcile will perform the following actions:\n", out)
        for head, details in grouped(plan.actions, compact=compact):
            emit(_style(f"  {head.symbol} {printable(action_line(head))}", _COLORS.get(head.symbol), out), out)
            for line in details:
                emit(f"      {printable(line)}", out)
            if not compact and isinstance(head, WriteAction) and head.diff:
                for line in _diff_lines(head.diff, out):
                    emit(line, out)
    if plan.partial:
        emit(
            _style(
                f"\nNote: this plan is partial ({scope_text(plan)}): other changes may be pending.",
                "yellow",
                out,
            ),
            out,
        )
    emit("", out)
    emit(_style(summary_line(plan), None, out, bold=True), out)
    if any(action.reason == "remote-changed" for action in plan.actions):
        # A plain apply asks no registry, so it would find nothing to do: say what acts on this plan.
        emit(
            "Upstream changed: `reconcile apply --refresh-remote` (or `plan --refresh-remote --out F`, then `apply F`).",
            out,
        )


def plan_text(plan: Plan) -> str:
    """The plan as `plan` prints it, without colors (kept in a saved plan for `show`)."""
    import io

    buffer = io.StringIO()
    render_plan(plan, stream=buffer)
    return buffer.getvalue()


def render_apply(result: ApplyResult, stream: TextIO | None = None, *, already: int = 0) -> None:
    """``already``: resources the plan found right (not actions), counted in ``ok=`` as Ansible does."""
    out = stream or sys.stdout
    failed = [o for o in result.outcomes if o.status == "failed"]
    if failed:
        emit("", out)
        for outcome in failed:
            emit(_style(f"  ✗ {outcome.action.address}: {outcome.error}", "red", out), out)
            if outcome.hint:
                emit(f"      hint: {outcome.hint}", out)
            if outcome.log:
                emit("      last output:", out)
                for line in outcome.log:
                    emit(f"      | {line}", out)
    s = result.summary()
    head = (
        "Apply interrupted."
        if result.interrupted
        else "Apply complete!"
        if not failed
        else "Apply finished with errors."
    )
    emit(
        f"\n{head} {s['pulled']} pulled, {s['tagged']} tagged, {s['written']} written, {s['built']} built, "
        + lifecycle_counts(s)
        + f"{s['failed']} failed, {s['skipped']} skipped, {s['unchanged']} unchanged, {s['total']} total; "
        + f"ok={s['unchanged'] + already} ({already} already right before apply).",
        out,
    )
    if result.interrupted:
        emit("Verify: not run (interrupted); the next apply finishes what is left.", out)
    elif result.verify_error:
        emit("Verify: not run: the daemon could not be read again (below).", out)
    elif result.remaining:
        emit(f"Verify: {len(result.remaining)} action(s) still planned after apply:", out)
        for action in result.remaining:
            emit(f"  {action.symbol} {action_line(action)}", out)
    else:
        emit("Verify: converged; a fresh read of the daemon plans no changes.", out)


def lifecycle_counts(summary: dict[str, int]) -> str:
    """``3 pushed, 1 removed, ``: the registry and prune counts, said only when there are some,
    so a plain apply's line stays as it was."""
    words = ("pushed", "mirrored", "untagged", "removed")
    return "".join(f"{summary[w]} {w}, " for w in words if summary.get(w))


def apply_json(plan: Plan, result: ApplyResult) -> dict:
    return {
        "format_version": "1.0",
        "plan": plan.to_json(),
        "outcomes": [o.to_json() for o in result.outcomes],
        "summary": result.summary(),
        "verify": {"converged": not result.remaining, "remaining": [a.to_json() for a in result.remaining]},
    }


def render_offline(report, verb: str, as_json: bool) -> None:
    """``export`` / ``import``: a line per image, then the counts (or one JSON document)."""
    if as_json:
        emit_json(report.to_json())
        return
    marks = {"written": "+", "loaded": "+", "tagged": "~", "unchanged": "=", "failed": "✗"}
    for warning in report.warnings:
        emit(f"Warning: {printable(warning)}", sys.stderr)
    for moved in report.moved:
        emit(f"  {marks[moved.status]} {printable(moved.message)}")
        if moved.error:
            emit(f"      error: {printable(moved.error)}")
    counts = ", ".join(f"{n} {status}" for status, n in report.summary().items() if n and status != "total")
    head = f"{verb} complete!" if report.ok else f"{verb} finished with errors."
    emit(f"\n{head} {counts or 'nothing to do'}; {report.summary()['total']} image(s) in {report.folder}.")


def render_images(bases: list[BaseImage], rel) -> None:
    for base in bases:
        emit(str(base.ref))
        for use in base.used_by:
            emit(f"    {rel(use.file)}:{use.line}")


def images_json(bases: list[BaseImage], rel) -> dict:
    return {
        "images": [
            {"ref": str(b.ref), "used_by": [{"file": rel(u.file), "line": u.line} for u in b.used_by]} for b in bases
        ]
    }


def render_env(network: NetworkDecision) -> None:
    emit(f"mode:     {network.mode}")
    emit(f"source:   {network.source}" + (f" ({network.note})" if network.note else ""))
    emit(f"registry: {network.registry} (from {network.registry_source})")
    emit(f"aliases:  {network.alias_prefix}/…")
    if network.probes:
        emit("probes:")
        for p in network.probes:
            emit(f"  {p.kind:8} {p.url}  {'answered' if p.answered else 'no answer'}: {p.detail}")
    elif network.source.startswith("probe"):
        emit("probes:   none configured")
    else:
        emit("probes:   not run (mode is set explicitly)")


class ProgressReporter:
    """Apply progress on stderr.

    Without a terminal (CI, cron, pipes): plain lines, one when an action starts and one
    when it ends (and a retry's reason), nothing else.  On a terminal: the same finished
    lines, under a live footer redrawn a few times a second: ``[done/total]``, the time
    so far, and each running action with its own time and latest step (a BuildKit step, a
    layer count), so parallel builds never interleave their output and a long pull or
    build visibly lives (rich, which typer brings)."""

    def __init__(self, stream: TextIO | None = None, total: int = 0):
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()
        self.total = total
        self.done = 0
        self.began = time.monotonic()
        self.running: dict[str, tuple[float, str]] = {}  # address -> (started, latest step)
        self.layers: dict[str, set[str]] = {}
        self.live = None
        if self.stream.isatty() and os.environ.get("TERM") != "dumb":
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, no_color=not colors(self.stream), highlight=False)
            self.live = Live(get_renderable=self._footer, console=console, refresh_per_second=4, transient=True)
            self.live.start()

    def _footer(self):
        from rich.text import Text

        with self.lock:
            now = time.monotonic()
            lines = [f"[{self.done}/{self.total}] {now - self.began:.0f}s"]
            lines += [f"  {a}  {now - since:.0f}s  {step}" for a, (since, step) in list(self.running.items())[:12]]
            if len(self.running) > 12:
                lines.append(f"  … and {len(self.running) - 12} more")
        return Text("\n".join(lines))

    def _say(self, text: str, color: str | None = None) -> None:
        if self.live is not None:
            # Not under self.lock: rich's refresh thread holds its own lock while it asks
            # _footer for ours, so printing through rich under ours would deadlock the two.
            # rich serialises its console's output with the footer's itself.
            self.live.console.print(text, style=color if colors(self.stream) else None, markup=False)
            return
        with self.lock:
            print(_style(text, color, self.stream), file=self.stream, flush=True)

    def _step(self, action: Action, step: str) -> None:
        with self.lock:
            since, _ = self.running.get(action.address, (time.monotonic(), ""))
            self.running[action.address] = (since, step)

    def started(self, action: Action) -> None:
        verb = {PullAction: "pulling…", BuildAction: "building…", PushAction: "pushing…"}.get(type(action))
        self._step(action, verb or "")
        if verb is None:
            return
        what = action.spec.image if isinstance(action, BuildAction) else None
        self._say(f"{action.address}: " + (f"building {what}…" if what else verb))

    def progress(self, action: Action, event: dict) -> None:
        if "error" in event:  # a retry: worth a line wherever the output goes
            self._say(f"{action.address}: {event.get('status')}: {event['error']}", "yellow")
        elif "step" in event:  # a BuildKit step started
            self._step(action, event["step"] + (" (cached)" if event.get("cached") else ""))
        elif (layer := event.get("id")) and event.get("status") in ("Pull complete", "Already exists"):
            self.layers.setdefault(action.address, set()).add(layer)
            self._step(action, f"{len(self.layers[action.address])} layer(s) done")

    def stopping(self, running: int) -> None:
        self._say(f"interrupted: no new actions start; waiting for {running} running", "yellow")

    def finished(self, outcome: Outcome) -> None:
        mark = {"succeeded": "✓", "failed": "✗", "skipped": "-", "unchanged": "="}[outcome.status]
        color = {"succeeded": "green", "failed": "red", "skipped": "yellow"}.get(outcome.status)
        timing = f" ({outcome.seconds:.1f}s)" if outcome.seconds >= 0.05 else ""
        with self.lock:
            self.running.pop(outcome.action.address, None)
            self.done += 1
        self._say(f"{outcome.action.address}: {mark} {outcome.message}{timing}", color)

    def close(self) -> None:
        """Take the live footer down (before the summary is printed)."""
        if self.live is not None:
            self.live.stop()
            self.live = None
