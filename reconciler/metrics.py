"""Drift as Prometheus metrics, for ``reconcile plan --metrics-file`` run from cron.

node_exporter's textfile collector reads every ``*.prom`` file in its directory
on each scrape, so the file is written under a temporary name in the same
directory and renamed into place: a scrape sees the old file or the new one,
never half of one.  Every action kind is present (0 when none), so an alert is
a plain ``> 0`` without ``absent()`` guards.  When the check failed the drift is
unknown, not zero, so only the check's own metrics are written then.

The exposition format is written by hand: it is a few lines, and it avoids a
dependency on prometheus_client for one file.
"""

from __future__ import annotations

import time
from pathlib import Path

from .atomic import write_atomically
from .errors import ReconcileError

KINDS = ("pull", "tag", "build", "write")


def render_metrics(
    *,
    drift: dict[str, int],
    success: bool,
    duration_seconds: float,
    network_mode: str | None,
    stack: str,
    timestamp: float,
) -> str:
    """The file's text; pure, so tests can read it without touching disk."""
    s = f'stack="{escape(stack)}"'
    out: list[str] = []

    def family(name: str, doc: str, samples: list[tuple[str, float]]) -> None:
        out.extend([f"# HELP {name} {doc}", f"# TYPE {name} gauge"])
        out.extend(f"{name}{{{labels}}} {_number(value)}" for labels, value in samples)

    if success:
        kinds = list(KINDS) + sorted(set(drift) - set(KINDS))
        family(
            "reconcile_drift_actions",
            "Actions reconcile apply would take, by kind.",
            [(f'{s},kind="{escape(k)}"', drift.get(k, 0)) for k in kinds],
        )
        family("reconcile_drift_total", "All actions reconcile apply would take.", [(s, sum(drift.values()))])
    family("reconcile_last_check_timestamp_seconds", "When the last check ran (Unix time).", [(s, timestamp)])
    family("reconcile_check_duration_seconds", "How long the last check took.", [(s, duration_seconds)])
    family("reconcile_check_success", "1 if the last check completed, 0 if it failed.", [(s, int(success))])
    mode = escape(network_mode or "unknown")
    family("reconcile_network_mode_info", "The network mode the last check used.", [(f'{s},mode="{mode}"', 1)])
    return "\n".join(out) + "\n"


def write_metrics(
    path: Path,
    *,
    drift: dict[str, int],
    success: bool,
    duration_seconds: float,
    network_mode: str | None,
    stack: str,
    timestamp: float | None = None,
) -> None:
    """Replace ``path`` atomically with the metrics (mode 0644, so node_exporter can read it)."""
    text = render_metrics(
        drift=drift,
        success=success,
        duration_seconds=duration_seconds,
        network_mode=network_mode,
        stack=stack,
        timestamp=time.time() if timestamp is None else timestamp,
    )
    path = Path(path)
    try:
        write_atomically(path, text.encode(), 0o644)  # the temp name never ends in .prom: the collector skips it
    except OSError as exc:
        raise ReconcileError(
            f"cannot write the metrics file: {exc.strerror}",
            where=str(path),
            hint="point --metrics-file into an existing, writable directory (node_exporter's textfile directory)",
        ) from None


def escape(value: str) -> str:
    """Escape a label value as the text exposition format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
