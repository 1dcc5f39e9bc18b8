"""Variable substitution for Dockerfile words and compose files.

Hand-written: the ``dockerfile`` package exposes BuildKit's parser but not its
shell lexer, and compose's interpolation has no maintained Python package.  It
covers the forms both tools document: ``$V``, ``${V}``, ``${V:-d}``,
``${V-d}``, ``${V:+x}``, ``${V+x}``, ``${V:?msg}``, ``${V?msg}``, with nested
substitution inside the word.  Escapes differ: BuildKit uses ``\\$``,
compose uses ``$$``.  With ``quotes=True`` it also removes quotes the way
BuildKit's lexer does (``'...'`` literal, ``"..."`` still expanding).

Every result is bounded: a value longer than ``limit`` characters or words
nested deeper than ``MAX_DEPTH`` raise ``ExpansionLimitError`` instead of
eating memory (an ARG doubling itself 30 times is 2**30 characters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

MAX_VALUE = 65_536  # characters in one expanded value
MAX_DEPTH = 64  # ${A:-${B:-...}} nesting; Python's own recursion limit must never be the one that stops us
SHOWN = 200  # characters of a value echoed in a message


class SubstitutionError(ValueError):
    """``${V:?msg}`` fired, or the text has a malformed ``${`` or quote."""


class LoneDollarError(SubstitutionError):
    """Compose only: a ``$`` followed by neither ``$``, ``{`` nor a name."""


class ExpansionLimitError(SubstitutionError):
    """The expansion grew past ``limit`` characters or ``MAX_DEPTH`` nested words."""


@dataclass
class Substitution:
    value: str
    # referenced, not set, and no default or alternative word covers it
    undefined: list[str] = field(default_factory=list)
    # every name the result depends on that has no value in ``variables``, covered or not:
    # the caller that knows only part of the real environment cannot trust the value then
    unset: list[str] = field(default_factory=list)


def shown(text: str) -> str:
    """``text`` as echoed in a one-line message: quoted, control characters escaped, long values cut."""
    if len(text) <= SHOWN:
        return repr(text)
    return f"{text[:SHOWN]!r}... ({len(text)} characters)"


def substitute(
    text: str, variables: Mapping[str, str], *, escape: str, quotes: bool = False, limit: int = MAX_VALUE
) -> Substitution:
    """Expand variables in ``text``.  ``escape`` is the Dockerfile's escape character
    (``\\`` or the ``# escape=`` directive's) or ``"$"`` for compose's ``$$``.

    Names that are referenced but not set are collected in ``undefined`` (a
    reference with a default or alternative value does not count); they
    expand to the empty string, as in both tools.
    """
    lexer = _Lexer(text, variables, escape, quotes, limit)
    value, _ = lexer.word(0, closing=None, depth=0)
    return Substitution(value, lexer.undefined, lexer.unset)


@cache
def _special(escape: str, quotes: bool, closing: str | None) -> re.Pattern[str]:
    """The characters that end a run of plain text (the rest is copied in one slice)."""
    chars = {"$", escape}
    if quotes:
        chars |= {"'", '"'}
    if closing:
        chars.add(closing)
    return re.compile("[" + "".join(re.escape(c) for c in sorted(chars)) + "]")


class _Lexer:
    def __init__(self, text: str, variables: Mapping[str, str], escape: str, quotes: bool, limit: int):
        self.text = text
        self.variables = variables
        self.escape = escape
        self.quotes = quotes
        self.limit = limit
        self.undefined: list[str] = []
        self.unset: list[str] = []

    def _grow(self, size: int) -> None:
        if size > self.limit:
            raise ExpansionLimitError(f"value longer than {self.limit} characters after expansion")

    def word(self, pos: int, closing: str | None, depth: int) -> tuple[str, int]:
        if depth > MAX_DEPTH:
            raise ExpansionLimitError(f"substitutions nested deeper than {MAX_DEPTH} levels")
        text, escape = self.text, self.escape
        special = _special(escape, self.quotes, closing)
        out: list[str] = []
        size = 0
        while pos < len(text):
            m = special.search(text, pos)
            end = m.start() if m else len(text)
            if end > pos:
                out.append(text[pos:end])
                size += end - pos
                pos = end
                self._grow(size)
                continue
            c = text[pos]
            piece: str
            if closing is not None and c == closing:
                return "".join(out), pos
            if escape != "$" and c == escape:
                if pos + 1 < len(text):
                    piece, pos = text[pos + 1], pos + 2
                elif self.quotes:  # BuildKit drops an escape at the very end
                    piece, pos = "", pos + 1
                else:
                    piece, pos = c, pos + 1
            elif c == "'":
                piece, pos = self._single_quoted(pos + 1)
            elif c == '"':
                piece, pos = self._double_quoted(pos + 1, depth)
            else:
                piece, pos = self._dollar(pos, depth)
            out.append(piece)
            size += len(piece)
            self._grow(size)
        if closing is not None:
            raise SubstitutionError(f"missing '{closing}' in {shown(text)}")
        return "".join(out), pos

    def _single_quoted(self, pos: int) -> tuple[str, int]:
        end = self.text.find("'", pos)
        if end < 0:
            raise SubstitutionError(f"missing closing single quote in {shown(self.text)}")
        return self.text[pos:end], end + 1

    def _double_quoted(self, pos: int, depth: int) -> tuple[str, int]:
        # Inside "...", the escape only escapes '"', '$' and itself; elsewhere it stays.
        text, escape = self.text, self.escape
        out: list[str] = []
        size = 0
        while pos < len(text):
            c = text[pos]
            if c == '"':
                return "".join(out), pos + 1
            if c == "$":
                piece, pos = self._dollar(pos, depth)
            elif c == escape and pos + 1 < len(text) and text[pos + 1] in ('"', "$", escape):
                piece, pos = text[pos + 1], pos + 2
            elif c == escape and pos + 1 == len(text):
                piece, pos = "", pos + 1
            else:
                piece, pos = c, pos + 1
            out.append(piece)
            size += len(piece)
            self._grow(size)
        raise SubstitutionError(f"missing closing double quote in {shown(text)}")

    def _dollar(self, pos: int, depth: int) -> tuple[str, int]:
        text = self.text
        nxt = text[pos + 1] if pos + 1 < len(text) else ""
        if self.escape == "$" and nxt == "$":
            return "$", pos + 2
        if nxt == "{":
            return self._braced(pos + 2, depth)
        if m := _NAME.match(text, pos + 1):
            return self._lookup(m.group(), undefined=True), m.end()
        if self.escape == "$":  # compose refuses it ("invalid template"); a shell keeps it
            raise LoneDollarError(f"invalid interpolation in {shown(text)}: a '$' that starts no variable")
        return "$", pos + 1

    def _lookup(self, name: str, *, undefined: bool) -> str:
        if name in self.variables:
            return self.variables[name]
        self.unset.append(name)
        if undefined:
            self.undefined.append(name)
        return ""

    def _braced(self, pos: int, depth: int) -> tuple[str, int]:
        text = self.text
        m = _NAME.match(text, pos)
        if not m:
            raise SubstitutionError(f"bad substitution in {shown(text)}")
        name = m.group()
        pos = m.end()
        if pos < len(text) and text[pos] == "}":
            return self._lookup(name, undefined=True), pos + 1
        for op in (":-", ":+", ":?", "-", "+", "?"):
            if text.startswith(op, pos):
                break
        else:
            raise SubstitutionError(f"bad substitution in {shown(text)}: unsupported operator after ${{{name}")
        is_set = name in self.variables
        value = self._lookup(name, undefined=False)
        # The word is expanded lazily in the shells, but expanding it eagerly only
        # matters for name reporting, so collect its names apart and keep them
        # only when the word is what the substitution yields.
        outer = self.undefined, self.unset
        self.undefined, self.unset = [], []
        try:
            word, pos = self.word(pos + len(op), closing="}", depth=depth + 1)
        finally:
            inner = self.undefined, self.unset
            self.undefined, self.unset = outer
        pos += 1
        empty_counts = op.startswith(":")
        usable = is_set and (value != "" or not empty_counts)
        word_used = (op.endswith("-") and not usable) or (op.endswith("+") and usable)
        if word_used:
            self.undefined.extend(inner[0])
            self.unset.extend(inner[1])
        if op.endswith("-"):
            return (value if usable else word), pos
        if op.endswith("+"):
            return (word if usable else ""), pos
        if not usable:  # '?': the author asked for an error
            message = word if len(word) <= SHOWN and word.isprintable() else shown(word)
            raise SubstitutionError(f"{name}: {message or 'parameter not set'}")
        return value, pos
