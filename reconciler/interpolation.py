"""Variable substitution for Dockerfile FROM lines and compose files.

Hand-written: the ``dockerfile`` package exposes BuildKit's parser but not its
shell lexer, and compose's interpolation has no maintained Python package.  It
covers the forms both tools document: ``$V``, ``${V}``, ``${V:-d}``,
``${V-d}``, ``${V:+x}``, ``${V+x}``, ``${V:?msg}``, ``${V?msg}``, with nested
substitution inside the word.  Escapes differ: BuildKit uses ``\\$``,
compose uses ``$$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SubstitutionError(ValueError):
    """``${V:?msg}`` fired, or the text has a malformed ``${``."""


@dataclass
class Substitution:
    value: str
    undefined: list[str] = field(default_factory=list)


def substitute(text: str, variables: Mapping[str, str], *, escape: str) -> Substitution:
    """Expand variables in ``text``.  ``escape`` is the Dockerfile's escape character
    (``\\`` or the ``# escape=`` directive's) or ``"$"`` for compose's ``$$``.

    Names that are referenced but not set are collected in ``undefined`` (a
    reference with a default or alternative value does not count); they
    expand to the empty string, as in both tools.
    """
    undefined: list[str] = []
    value, _ = _expand(text, 0, variables, escape, undefined, closing=None)
    return Substitution(value, undefined)


def _expand(text, pos, variables, escape, undefined, closing):
    out = []
    while pos < len(text):
        c = text[pos]
        if closing is not None and c == closing:
            return "".join(out), pos
        if escape != "$" and c == escape and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if c != "$":
            out.append(c)
            pos += 1
            continue
        nxt = text[pos + 1] if pos + 1 < len(text) else ""
        if escape == "$" and nxt == "$":
            out.append("$")
            pos += 2
        elif nxt == "{":
            expanded, pos = _braced(text, pos + 2, variables, escape, undefined)
            out.append(expanded)
        elif m := _NAME.match(text, pos + 1):
            name = m.group()
            if name not in variables:
                undefined.append(name)
            out.append(variables.get(name, ""))
            pos = m.end()
        else:
            out.append("$")
            pos += 1
    if closing is not None:
        raise SubstitutionError(f"missing '{closing}' in {text!r}")
    return "".join(out), pos


def _braced(text, pos, variables, escape, undefined):
    m = _NAME.match(text, pos)
    if not m:
        raise SubstitutionError(f"bad substitution in {text!r}")
    name = m.group()
    pos = m.end()
    is_set = name in variables
    value = variables.get(name, "")
    if pos < len(text) and text[pos] == "}":
        if not is_set:
            undefined.append(name)
        return value, pos + 1
    for op in (":-", ":+", ":?", "-", "+", "?"):
        if text.startswith(op, pos):
            break
    else:
        raise SubstitutionError(f"bad substitution in {text!r}: unsupported operator after ${{{name}")
    # The word is expanded lazily in the shells, but expanding it eagerly only
    # matters for undefined-name reporting, so do it into a scratch list.
    scratch: list[str] = []
    word, pos = _expand(text, pos + len(op), variables, escape, scratch, closing="}")
    pos += 1
    empty_counts = op.startswith(":")
    usable = is_set and (value != "" or not empty_counts)
    if op.endswith("-"):
        if not usable:
            undefined.extend(scratch)
        return (value if usable else word), pos
    if op.endswith("+"):
        if usable:
            undefined.extend(scratch)
        return (word if usable else ""), pos
    if not usable:  # '?': the author asked for an error
        raise SubstitutionError(f"{name}: {word or 'parameter not set'}")
    return value, pos
