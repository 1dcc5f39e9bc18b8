"""One family of expected errors.

Every failure a user can cause or fix (bad stack file, unreadable Dockerfile,
unreachable daemon, failed pull) is a ``ReconcileError``.  The CLI prints it as
one line -- what, where, what to do -- and exits 1.  Anything else escaping to
the top is a bug in reconcile and keeps its traceback.
"""

from __future__ import annotations


class ReconcileError(Exception):
    """An expected failure, printed as one line: ``where: what; hint``."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(what)
        self.what = what
        self.where = where
        self.hint = hint
        self.more: list[str] = []  # further problems found with this one, each its own line

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f"; {self.hint}"
        return printable(text, MESSAGE_LIMIT)


class InputError(ReconcileError):
    """The stack file, a Dockerfile, a compose file or an option is wrong."""


class EngineError(ReconcileError):
    """The Docker daemon could not be reached or refused an operation."""


class NotFoundError(EngineError):
    """A registry answered that the image does not exist (retrying will not help)."""


class BuildError(EngineError):
    """A build failed; ``log`` holds its last output lines."""

    def __init__(self, what: str, log: list[str]):
        super().__init__(what)
        self.log = log


MESSAGE_LIMIT = 2000  # one short line: a value echoed from hostile input is cut, not printed whole


def printable(text: str, limit: int | None = None) -> str:
    """``text`` safe for a terminal: control characters (ESC, CR, LF, ...) escaped as ``\\x1b``,
    so no input can move the cursor or forge a line; cut at ``limit`` characters."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def where(path: object, line: int | None = None, key: str | None = None) -> str:
    """Format a location as ``file:line: key`` with the parts that are known."""
    text = str(path)
    if line:
        text += f":{line}"
    if key:
        text += f": {key}"
    return text
