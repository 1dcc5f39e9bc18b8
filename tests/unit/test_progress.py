"""The live progress footer on a terminal (tests/integration/test_terminal.py runs whole
applies through a pty; this is the reporter alone, under load from several threads)."""

from __future__ import annotations

import os
import pty
import threading
import time

from reconciler.apply import Outcome
from reconciler.output import ProgressReporter
from reconciler.plan import WriteAction


def test_the_live_footer_and_lines_printed_from_several_threads_never_deadlock():
    """rich's refresh thread holds its lock while it asks for the footer (which takes ours);
    a line printed through rich while holding ours deadlocked the two (seen once in CI)."""
    master, slave = pty.openpty()

    def drain():
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()
    with os.fdopen(slave, "w") as terminal:
        reporter = ProgressReporter(stream=terminal, total=3000)
        assert reporter.live is not None
        reporter.live.refresh_per_second = 100

        def report(n: int) -> None:
            for i in range(1000):
                reporter.finished(Outcome(WriteAction(f"write[{n}-{i}]", "missing", ""), "succeeded", "ok"))

        threads = [threading.Thread(target=report, args=(n,), daemon=True) for n in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "deadlocked"
        reporter.close()
    os.close(master)
