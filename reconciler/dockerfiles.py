"""Which images a BuildKit build of a Dockerfile needs from outside.

Tokenizing is BuildKit's own (the ``dockerfile`` package wraps its Go
parser), so heredocs, ``# escape=``, line continuations and JSON forms behave
exactly as in a build.  On top of the tokens this module applies the build
semantics BuildKit documents:

* only ARGs declared before the first FROM (meta args) expand in FROM lines,
  their defaults overridden by the service's build args, plus the automatic
  platform args (BUILDPLATFORM, TARGETARCH, ...);
* a FROM, ``COPY --from`` or ``RUN --mount=...,from=`` naming a stage (case
  insensitive) or a stage index is internal, ``scratch`` is nothing;
* only stages the target stage (default: the last) depends on are built, so
  only their images are needed.
"""

from __future__ import annotations

import csv
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile

from .errors import InputError, where
from .interpolation import SubstitutionError, substitute
from .refs import ImageRef, InvalidReference, parse

_INDEX = re.compile(r"[0-9]+")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*")
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9_]*)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True, order=True)
class ImageUse:
    """One place a Dockerfile (or compose file, or stack file) asks for an image."""

    ref: ImageRef
    file: Path
    line: int


@dataclass
class _Stage:
    index: int
    name: str | None
    line: int
    base: str  # the FROM word after substitution
    needs: list[tuple[str, int]] = field(default_factory=list)  # --from / mount from=, with line
    args: dict[str, str] = field(default_factory=dict)


def platform_args() -> dict[str, str]:
    """The args BuildKit defines for every build, for the machine we run on."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}.get(
        platform.machine(), platform.machine()
    )
    plat = f"linux/{arch}"
    return {
        "BUILDPLATFORM": plat,
        "BUILDOS": "linux",
        "BUILDARCH": arch,
        "BUILDVARIANT": "",
        "TARGETPLATFORM": plat,
        "TARGETOS": "linux",
        "TARGETARCH": arch,
        "TARGETVARIANT": "",
    }


def escape_char(text: str) -> str:
    """The ``# escape=`` parser directive (BuildKit reads directives only at the very top)."""
    for line in text.splitlines():
        m = _DIRECTIVE.match(line)
        if not m:
            break
        if m.group(1).lower() == "escape":
            return m.group(2) or "\\"
    return "\\"


def external_images(
    path: Path,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    *,
    shown_as: str | None = None,
) -> list[ImageUse]:
    """The images a build of ``path`` (for ``target``) pulls from outside, in file order."""
    label = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
        commands = dockerfile.parse_string(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read Dockerfile: {exc}", where=label, hint="check the service's context and dockerfile"
        ) from None
    except dockerfile.GoParseError as exc:
        raise InputError(f"Dockerfile syntax error: {exc}", where=label, hint="fix the Dockerfile") from None
    escape = escape_char(text)
    build_args = dict(build_args or {})
    stages = _stages(commands, build_args, escape, label)
    if not stages:
        raise InputError("Dockerfile has no FROM instruction", where=label, hint="add a FROM line")
    names: dict[str, _Stage] = {}
    for stage in stages:  # a later stage of the same name shadows an earlier one
        if stage.name:
            names[stage.name] = stage

    def stage_of(word: str, before: int) -> _Stage | None:
        # Docker documents FROM and --from as naming an *earlier* stage.
        if _INDEX.fullmatch(word):
            found = stages[int(word)] if int(word) < len(stages) else None
        else:
            found = next((s for s in reversed(stages[:before]) if s.name == word.lower()), None)
        return found if found is not None and found.index < before else None

    if target is None:
        wanted = stages[-1]
    elif target.lower() in names:
        wanted = names[target.lower()]
    else:
        raise InputError(
            f"build target {target!r} is not a stage of this Dockerfile",
            where=label,
            hint=f"use one of: {', '.join(sorted(names)) or '(no named stages)'}",
        )

    uses: list[ImageUse] = []
    seen: set[int] = set()
    todo = [wanted]
    while todo:
        stage = todo.pop()
        if stage.index in seen:
            continue
        seen.add(stage.index)
        for word, line in [(stage.base, stage.line), *stage.needs]:
            internal = stage_of(word, stage.index)
            if internal is not None:
                todo.append(internal)
            elif _INDEX.fullmatch(word):
                raise InputError(
                    f"stage index {word} does not name an earlier stage",
                    where=where(label, line),
                    hint="fix the --from value",
                )
            elif word != "scratch":
                uses.append(ImageUse(_ref(word, label, line), path, line))
    # Stages were walked target-first: put uses back in file order, each once.
    return sorted(dict.fromkeys(uses), key=lambda u: u.line)


def _ref(word: str, label: str, line: int) -> ImageRef:
    try:
        return parse(word)
    except InvalidReference as exc:
        raise InputError(
            str(exc), where=where(label, line), hint="fix the image reference or the ARG it is built from"
        ) from None


def _expand(
    word: str, variables: Mapping[str, str], escape: str, label: str, line: int, what: str, *, strict: bool = True
) -> str:
    """Expand ``word``.  ``strict``: an undefined name is an error, for the words that
    name images; elsewhere (ARG defaults) it is empty, as in BuildKit."""
    try:
        result = substitute(word, variables, escape=escape)
    except SubstitutionError as exc:
        raise InputError(
            f"{what}: {exc}", where=where(label, line), hint="declare the ARG or pass it in build_args"
        ) from None
    if strict and result.undefined:
        names = ", ".join(sorted(set(result.undefined)))
        raise InputError(
            f"{what} {word!r} uses undefined variable {names}",
            where=where(label, line),
            hint=f"declare ARG {names.split(', ')[0]} before the first FROM or set it in the service's build_args",
        )
    return result.value


def _arg_pairs(tokens) -> list[tuple[str, str | None]]:
    pairs = []
    for token in tokens:
        name, eq, value = token.partition("=")
        if eq and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        pairs.append((name, value if eq else None))
    return pairs


def _stages(commands, build_args: dict[str, str], escape: str, label: str) -> list[_Stage]:
    meta = platform_args()
    stages: list[_Stage] = []
    for cmd in commands:
        kind = cmd.cmd.upper()
        if kind == "ARG":
            for name, default in _arg_pairs(cmd.value):
                if name in build_args:
                    value = build_args[name]
                elif default is not None:
                    scope = meta if not stages else {**meta, **stages[-1].args}
                    value = _expand(default, scope, escape, label, cmd.start_line, f"ARG {name}", strict=False)
                elif not stages:
                    value = meta.get(name, "")
                else:
                    # A stage re-declaring a meta arg without default inherits it.
                    value = meta.get(name)
                    if value is None:
                        continue
                if stages:
                    stages[-1].args[name] = value
                else:
                    meta[name] = value
        elif kind == "FROM":
            stages.append(_from(cmd, meta, len(stages), escape, label))
        elif stages and kind == "COPY":
            for flag in cmd.flags:
                if flag.startswith("--from="):
                    word = _expand(flag[7:], {**meta, **stages[-1].args}, escape, label, cmd.start_line, "COPY --from")
                    stages[-1].needs.append((word, cmd.start_line))
        elif stages and kind == "RUN":
            for flag in cmd.flags:
                if flag.startswith("--mount="):
                    source = _mount_from(flag[8:])
                    if source:
                        word = _expand(
                            source, {**meta, **stages[-1].args}, escape, label, cmd.start_line, "RUN --mount from"
                        )
                        stages[-1].needs.append((word, cmd.start_line))
    return stages


def _from(cmd, meta: dict[str, str], index: int, escape: str, label: str) -> _Stage:
    words = list(cmd.value)
    # `--platform=x` lands in flags; the tokenizer leaves `--platform x`'s value in the words.
    if any(flag == "--platform" for flag in cmd.flags) and words:
        words.pop(0)
    if len(words) == 1:
        image, name = words[0], None
    elif len(words) == 3 and words[1].upper() == "AS":
        image, name = words[0], words[2].lower()
        if not _STAGE_NAME.fullmatch(name):
            raise InputError(
                f"invalid stage name {words[2]!r}",
                where=where(label, cmd.start_line),
                hint="use letters, digits, - _ . starting with a letter",
            )
    else:
        raise InputError(
            "FROM requires either one or three arguments (IMAGE [AS NAME])",
            where=where(label, cmd.start_line),
            hint="fix the FROM line",
        )
    base = _expand(image, meta, escape, label, cmd.start_line, "FROM")
    if not base:
        raise InputError(
            f"FROM {image!r} expands to an empty name", where=where(label, cmd.start_line), hint="set the ARG it uses"
        )
    return _Stage(index=index, name=name, line=cmd.start_line, base=base)


def _mount_from(spec: str) -> str | None:
    """The ``from=`` of a ``--mount`` spec (a CSV line of key=value, as BuildKit reads it)."""
    for field_ in next(csv.reader([spec])):
        key, _, value = field_.partition("=")
        if key.strip().lower() == "from":
            return value.strip()
    return None
