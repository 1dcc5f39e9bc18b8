"""How long the Dockerfile analysis takes on one very long continued instruction (no engine).

    .venv/bin/python benchmarks/long_instructions.py [--only NAME ...] [--scale F]

BuildKit's parser joins a continued instruction one line at a time (``line += next``), so
handing it a long one whole is quadratic in its lines; ``reconciler.dockerfiles`` hands it
the instruction joined into few lines instead.  Each case is one Dockerfile, analysed
in-process with ``reconciler.dockerfiles.analyze`` (the work `reconcile images` and `plan`
do per Dockerfile), timed once, and printed beside the goal.  ``--scale`` shrinks every
case (0.25: a quarter of the lines), to compare with code that is too slow for the full
sizes.

The 60 MB COPY has no goal: its 1.3 million words all go through BuildKit's parser, which
reads about 150 ns a character however it is handed them (10 s for 60 MB in separate
lines); it shows the time stays near that, not what it was (hours).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from reconciler.dockerfiles import analyze  # noqa: E402

GOAL = 2.0  # seconds, per case
LINES = 128_000
BIG = 60_000_000  # characters of the 60 MB instruction


def _copy(lines: int) -> str:
    return "FROM busybox:1.36\nCOPY \\\n" + "  fI \\\n" * lines + "  /dst/\n"


def _run(lines: int) -> str:
    # A flag makes the analysis need the instruction (a RUN without one is skipped unread).
    return "FROM busybox:1.36\nRUN --mount=type=cache,target=/root/.cache \\\n" + "  fI \\\n" * lines + "  true\n"


def _env(lines: int) -> str:
    pairs = "".join(f"  V{i}=x \\\n" for i in range(lines))
    return "FROM busybox:1.36\nENV \\\n" + pairs + "  LAST=1\nCOPY $V7 /dst/\n"


def _big_run(size: int) -> str:
    line = "  && echo step-0000000 >> /var/log/build.log \\\n"  # a generated script, 48 characters a line
    return (
        "FROM busybox:1.36\nRUN --mount=type=cache,target=/root/.cache true \\\n"
        + line * (size // len(line))
        + "  && true\n"
    )


def _big_copy(size: int) -> str:
    line = "  src/generated/module_0000000/__init__.py \\\n"
    return "FROM busybox:1.36\nCOPY \\\n" + line * (size // len(line)) + "  /dst/\n"


def _heredocs(count: int) -> str:
    return "FROM busybox:1.36\n" + "RUN <<EOF\necho step\nEOF\n" * count


def _short_continued(count: int) -> str:
    return "FROM busybox:1.36\n" + "RUN --network=none echo one \\\n  two\n" * count


CASES = {  # name: (Dockerfile of the scale given, goal in seconds)
    "copy": (lambda scale: _copy(int(LINES * scale)), GOAL),
    "run": (lambda scale: _run(int(LINES * scale)), GOAL),
    "env": (lambda scale: _env(int(LINES * scale)), GOAL),
    "run-60MB": (lambda scale: _big_run(int(BIG * scale)), GOAL),
    "copy-60MB": (lambda scale: _big_copy(int(BIG * scale)), None),
    # Many small instructions: heredocs (the scan was quadratic in them: 16,000 took 99 s)
    # and short continuations.
    "heredocs": (lambda scale: _heredocs(int(16_000 * scale)), GOAL),
    "short-cont": (lambda scale: _short_continued(int(30_000 * scale)), GOAL),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(CASES), help="run only these cases")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each case's size")
    options = parser.parse_args()
    print(f"{'case':<10} {'size':>10} {'lines':>10} {'seconds':>8}  goal")
    for name, (make, goal) in CASES.items():
        if options.only and name not in options.only:
            continue
        text = make(options.scale)
        started = time.perf_counter()
        info = analyze(text, None, None, path=Path("Dockerfile"), shown_as="Dockerfile")
        took = time.perf_counter() - started
        assert info.uses, name  # the analysis ran to the end
        verdict = "none (see above)" if goal is None else f"<= {goal:.0f} s {'ok' if took <= goal else 'OVER'}"
        size = f"{len(text) / 1e6:.1f} MB"
        print(f"{name:<10} {size:>10} {text.count(chr(10)):>10} {took:>8.2f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
