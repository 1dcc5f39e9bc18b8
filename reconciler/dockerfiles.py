"""What a BuildKit build of a Dockerfile reads, declares and needs.

Tokenizing is BuildKit's own (the ``dockerfile`` package wraps its Go
parser), so heredocs, ``# escape=``, line continuations and JSON forms behave
exactly as in a build; only the instructions the analysis reads (or the parser
may reject) are handed to it, so a large Dockerfile costs what its FROM, ARG,
COPY, ... lines do (see :func:`_instructions`).  On top of the tokens this
module applies the build semantics BuildKit documents:

* only ARGs declared before the first FROM (meta args) expand in FROM lines,
  their defaults overridden by the service's build args, plus the automatic
  platform args (BUILDPLATFORM, TARGETARCH, ...);
* a FROM, ``COPY --from`` or ``RUN --mount=...,from=`` naming a stage (case
  insensitive) or a stage index is internal, ``scratch`` is nothing;
* only stages the target stage (default: the last) depends on are built, so
  only their images are needed and only their COPY/ADD/bind mounts read the
  build context;
* COPY/ADD sources and mount values expand with the stage's environment:
  its ARG and ENV values (inherited from a base stage), never the meta args it
  did not re-declare.  The base image's ENV is unknown here, so a source using
  a name the file does not set means "cannot tell" (``sources=None``).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import platform
import posixpath
import re
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import dockerfile

from .errors import InputError, where
from .interpolation import MAX_VALUE, ExpansionLimitError, SubstitutionError, shown, substitute
from .refs import ImageRef, InvalidReference, parse

_INDEX = re.compile(r"[0-9]+")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*")
# BuildKit's parser/directives.go: only these names, only at the very top, each once.
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVES = {"syntax", "escape", "check"}
_HEREDOC = re.compile(r"([0-9]*)<<(-?)([^<]+)")  # BuildKit's parser.ParseHeredoc
# ADD fetches these instead of reading the context (BuildKit: gitutil.ParseGitRef, isHTTPSource).
_REMOTE = re.compile(r"(?i:https?|git|ssh)://|[A-Za-z0-9_.-]+@[A-Za-z0-9.-]+:")

# Characters variable expansion may add to a whole Dockerfile's words, all instructions
# together: a thousand lines of `ARG Bn=$A$A` each stay under the per-value cap yet would
# hold gigabytes.  Real Dockerfiles add a few kilobytes.  A word's own characters do not
# count (the file's size bounds them): 100,000 COPY sources spend nothing.
EXPANSION_BUDGET = 1 << 22


@dataclass(frozen=True, order=True)
class ImageUse:
    """One place a Dockerfile (or compose file, or stack file) asks for an image."""

    ref: ImageRef
    file: Path
    line: int


class UnknownTarget(InputError):
    """The service's target names no stage: the stack (or compose) key is at fault, not the Dockerfile."""


class BuildArgError(InputError):
    """A FROM word is invalid because of a build arg's value: the stack key setting it is at fault."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None, arg: str):
        super().__init__(what, where=where, hint=hint)
        self.arg = arg


_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Source:
    """A build-context path or glob one instruction reads, as BuildKit resolves it:
    relative, cleaned, ``..`` clamped at the context root; ``.`` is the whole context."""

    pattern: str
    line: int
    instruction: str  # "COPY", "ADD" or "RUN --mount" (for messages)

    @property
    def wildcard(self) -> bool:
        """BuildKit copies nothing, without an error, for a wildcard that matches nothing."""
        return any(_has_wildcard(part) for part in self.pattern.split("/"))


@dataclass
class DockerfileInfo:
    uses: list[ImageUse]  # the images pulled from outside, in file order
    args: frozenset[str]  # ARG names declared: meta args, and those of the stages built for the target
    sources: list[Source] | None  # context paths the built stages read; None = cannot tell (read it all)
    heredocs: list[int]  # lines of instructions using a heredoc, in any stage
    syntax: str | None  # the `# syntax=` parser directive


@dataclass
class _Stage:
    index: int
    name: str | None
    line: int
    base: str  # the FROM word after substitution
    raw: str = ""  # the FROM word as written
    parent: _Stage | None = None  # the earlier stage `base` names
    # --from / mount from= words, with line and the earlier stage they name
    needs: list[tuple[str, int, _Stage | None]] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    # BuildKit's expansion environment as far as this file tells: ARG and ENV values,
    # starting from the base stage's.  A name not here may be set by the base image.
    env: dict[str, str] = field(default_factory=dict)
    env_names: set[str] = field(default_factory=set)  # names an ENV instruction set, here or in the parent
    shadowed: _Stage | None = None  # the earlier stage of the same name
    sources: list[Source] | None = field(default_factory=list)
    declared: set[str] = field(default_factory=set)  # ARG names this stage declares
    heredocs: list[int] = field(default_factory=list)
    onbuild: bool = False  # its ONBUILD triggers run in any stage built FROM it


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


def _directives(text: str, start: int = 0) -> dict[str, str]:
    # Directives sit at the top of a file that may be large: read only as far as they go,
    # a growing head at a time, its last line left for the next round (it may be cut).
    size = 4096
    while True:
        head = text[start : start + size]
        lines = head.removeprefix("\ufeff").splitlines()
        whole = start + size >= len(text)
        found: dict[str, str] = {}
        for line in lines if whole else lines[:-1]:
            m = _DIRECTIVE.match(line)
            if not m or m.group(1).lower() not in _DIRECTIVES:
                return found
            found.setdefault(m.group(1).lower(), m.group(2))
        if whole:
            return found
        size *= 4


def escape_char(text: str) -> str:
    """The escape character of ``text`` (its ``# escape=`` parser directive), as the parser
    reads it: expansion must use the character the words were split with."""
    nul = text.find("\x00")
    return _escape_token(text if nul < 0 else text[:nul]) or "\\"


def _syntax(text: str) -> str | None:
    # BuildKit's DetectSyntax skips a leading shebang line; the escape directive does not.
    start = 0
    if text.startswith("#!"):
        start = text.find("\n") + 1 or len(text)
    return _directives(text, start).get("syntax")


# --- the instructions, parsed by BuildKit, that the analysis needs ---------------------------
#
# BuildKit's parser costs about 35 µs per 100-character instruction and returns every
# one: a 33 MB Dockerfile took 10 s and 800 MB, in chunks or not.  Most instructions
# are of no use here (RUN without flags, CMD, WORKDIR, ...) and cannot make the parser
# fail, so a scan finds where each instruction starts and ends, by BuildKit's own line
# rules, and only the others go to the parser, in chunks, their line numbers put back.
# Each chunk's parse is checked against the scan (same instructions, same lines), and
# whatever the scan cannot place for certain is parsed as a whole: the result is always
# what BuildKit's parse of the whole text would give.  Hand-written because the
# `dockerfile` package offers no way to parse only part of a file.
#
# The parser (BuildKit v0.12) is also quadratic three ways: it joins a continued
# instruction a line at a time (`line += next`: 128,000 lines took 20 s), a heredoc body
# likewise, and a word a character at a time.  So each instruction is handed to it joined
# into as few lines as a line may hold (the joins and their cut points are BuildKit's own,
# so it joins them back to the same text), its heredoc bodies left out and put back after;
# a RUN (CMD, ...) longer than that goes as its first kilobytes, which hold its flags, the
# rest of its one-string value put back.  A word longer than a line may be, which only a
# continuation makes, is refused, and so is a whole-text parse that could take minutes.

# Go's unicode.IsSpace, which BuildKit's line handling uses (str.isspace differs).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_SPACE_IN_LINE = "".join(re.escape(c) for c in _GO_SPACE if c != "\n")  # for a regex class
# Kinds always needed: the reader uses them, or BuildKit may reject their arguments (ENV
# and LABEL pairs, HEALTHCHECK's JSON); "" is the empty instruction a final line
# continuation makes.  Any other kind is needed with a flag, a JSON form or a heredoc.
_NEEDED_KINDS = frozenset({"from", "arg", "env", "copy", "add", "onbuild", "label", "healthcheck", ""})
_AFTER_NAME = re.compile(r"[\t\v\f\r ]+")  # what ends an instruction's name, for BuildKit's splitCommand
# bufio.Scanner's limit, measured: BuildKit rejects a line of 64 KiB or more (UTF-8 bytes, newline aside).
_LONG_LINE = 1 << 16
_INSTRUCTION_LINE = re.compile(r"^[ \t\r]*[A-Za-z]", re.MULTILINE)  # in a run of plain lines
_CHUNK_LINES = 4096  # lines per parse: large enough that a call's overhead does not count
_PIECE = 60_000  # characters of a joined instruction per line the parser is handed (a quarter unless ASCII)
# Kinds whose value BuildKit takes as the rest of the line, one string (when not JSON): one
# longer than a piece is handed over as its first _SHORT characters, which must hold its
# flags, the rest of the value put back (the parser reads some 150 ns a character).
_SHORTENED = frozenset({"run", "cmd", "entrypoint", "shell"})
_SHORT = 15_000
# What a whole-text parse may cost, in characters BuildKit's parser copies (the lines of a
# continued instruction or heredoc body times its characters): about a second's worth.
_WHOLE_PARSE_WORK = 1 << 32
# A word as BuildKit's lexers may read it, quotes and escapes joining what spaces would
# split (both escape characters count: this bounds the word's length from above).
_WORD = re.compile(rf"""(?:'[^']*+'?|"(?:[^"\\`]|[\\`].)*+"?|[\\`].|[^{_SPACE_IN_LINE}\n'"\\`])++""", re.DOTALL)
_LONG_UNQUOTED = re.compile(rf"(?<![^{_SPACE_IN_LINE}\n])[^{_SPACE_IN_LINE}\n]{{{_LONG_LINE}}}")  # without quotes
_UNPLACED = "the line scan cannot place its instructions"


class _SplitCharacter(Exception):
    """The ``dockerfile`` package could not decode what BuildKit's parser handed back: the
    parser cut a UTF-8 character in two (seen with a heredoc continued into a line that
    starts with a no-break space, in the whole text as in a piece of it)."""


def _parse(text: str) -> tuple[dockerfile.Command, ...]:
    """BuildKit's parse of ``text``: its GoParseError, or ``_SplitCharacter`` for an answer
    the package cannot decode (a UnicodeDecodeError from inside it)."""
    try:
        return dockerfile.parse_string(text)
    except UnicodeDecodeError:
        raise _SplitCharacter from None


class _Unbounded(Exception):
    """BuildKit's parser would take minutes on the text: ``line`` is where, ``what`` and
    ``hint`` the message (the caller knows the file)."""

    def __init__(self, line: int, what: str, hint: str):
        super().__init__(what)
        self.line, self.what, self.hint = line, what, hint

    @classmethod
    def long_word(cls, line: int, name: str, word: str) -> _Unbounded:
        return cls(
            line,
            f"{name} has a word of {_LONG_LINE} characters or more joined over continued lines"
            f" ({shown(word[:40])}...): BuildKit's parser takes time growing with the square of a word's length",
            f"split the word: one may be as long as a line ({_LONG_LINE - 1} bytes)",
        )


def _needed(token: str | None, line: str | None) -> bool:
    """Whether the analysis needs BuildKit's parse of one instruction: ``token`` is its name
    and ``line`` its text, continuations joined.  Not needed: RUN, CMD, ENTRYPOINT, SHELL,
    VOLUME, WORKDIR, USER, EXPOSE, ... with no flag, JSON form or heredoc, which BuildKit's
    parser takes whatever follows and the reader ignores."""
    if token is None or line is None or not token.isascii() or token.lower() in _NEEDED_KINDS:
        return True
    rest = line.strip(_GO_SPACE)[len(token) :].lstrip(_GO_SPACE)
    return rest[:1] in ("-", "[") or "<<" in line


def _read(cmd: dockerfile.Command) -> bool:
    """Whether ``_Reader`` acts on a parsed instruction; the others were parsed only for the
    errors BuildKit may raise, and are not kept."""
    if cmd.cmd is None:
        return True
    kind = cmd.cmd.upper()
    return kind in ("ARG", "FROM", "ENV", "COPY", "ADD", "ONBUILD") or (
        kind == "RUN" and bool(cmd.flags or cmd.heredocs)
    )


def _instructions(text: str, chunk_lines: int | None = None) -> list[dockerfile.Command]:
    """BuildKit's parse of ``text``, only the instructions the analysis reads, in order;
    raises BuildKit's own error, or ``_Unbounded``."""
    nul = text.find("\x00")
    if nul >= 0:
        text = text[:nul]  # the parser is handed a C string: it reads up to the first NUL
    long = _first_long_line(text)
    if long is not None:
        # BuildKit stops reading at that line: its error is the one for the text before, if
        # any, else the line's own.
        _instructions(text[:long], chunk_lines)
        _parse("A\n" + text[long : long + _LONG_LINE + 1])
    try:
        found = _chunked(text, chunk_lines or _CHUNK_LINES, _read)
    except _SplitCharacter:
        found = None  # a piece the package cannot hand back: the whole text decides
    if found is None:  # also the way BuildKit's own error for the text is raised
        _check_whole_parse(text)
        found = [cmd for cmd in _parse(text) if _read(cmd)]
    return found


@dataclass(frozen=True)
class _Span:
    """An instruction the analysis needs: where the scan places it, and what the parser is handed."""

    start: int  # offsets in the text: the instruction's first line, and past its last (heredoc bodies too)
    end: int
    first_line: int
    last_line: int
    head: str  # for the parser: the instruction in few lines, then each heredoc's terminator line
    head_lines: int
    instruction_chars: int  # of `head`, the instruction's (the rest are terminator lines)
    names: tuple[str, ...] = ()  # the heredoc terminators the scan looked for
    bodies: tuple[str, ...] = ()  # the heredoc bodies as written, left out of `head`
    joined: str | None = None  # the whole instruction, when `head` holds only its start
    unterminated: bool = False  # its last heredoc runs to the end of the text: BuildKit's error
    offsets: tuple[int, int, int] = (0, 0, 0)  # past its first line, the lines continuing it, its last


def _parsed_in_chunks(
    text: str, chunk_lines: int, keep: Callable[[dockerfile.Command], bool]
) -> list[dockerfile.Command] | None:
    """The needed instructions, parsed a chunk at a time, those ``keep`` accepts; None when the
    whole text must be parsed.  Raises BuildKit's error where the chunks make it certain."""
    if "\x00" in text or _first_long_line(text) is not None:  # the parser stops at a NUL or a long line
        return None
    return _chunked(text, chunk_lines, keep)


def _chunked(text: str, chunk_lines: int, keep: Callable[[dockerfile.Command], bool]) -> list | None:
    """`_parsed_in_chunks` of a text without a NUL or a line too long."""
    escape = _escape_token(text)
    if escape is None:
        return None
    spans = _needed_spans(text, escape)
    if spans is None:
        return None
    # Each chunk states the escape character, which also keeps its first line from being
    # read as a directive or losing a byte order mark.
    prefix = f"# escape={escape}\n"
    found: list[dockerfile.Command] = []
    for group in _chunks(spans, chunk_lines):
        # A line after the last instruction: one the scan ended too early takes it in.
        trailer = "#\n" if group[-1].end < len(text) else ""
        parsed = _parsed_group(text, escape, prefix, group, trailer)
        if parsed is None:
            return None
        found += (cmd for cmd in parsed if keep(cmd))
    if spans and spans[-1].unterminated:
        # The scan found no terminator for a heredoc it read, which BuildKit may not read as
        # one (`sh -c "cat <<EOF" <<-EOF`: quoted): the whole text decides.
        return None
    return found


def _parsed_group(text: str, escape: str, prefix: str, group: list[_Span], trailer: str) -> list | None:
    """One chunk's instructions, placed and put back whole; None when the scan misplaced one."""
    try:
        parsed = _parse(prefix + "".join(span.head for span in group) + trailer)
    except dockerfile.GoParseError:
        _raise_first_error(text, escape, prefix, group)
        return None
    restored = _restored(parsed, group)
    if restored is None and any(span.joined is not None for span in group):
        # A shortened RUN whose flags run past its start: hand it over whole.
        return _parsed_group(text, escape, prefix, [_unshortened(text, escape, s) for s in group], trailer)
    return restored


def _restored(parsed, group: list[_Span]) -> list | None:
    """``parsed`` with the lines, heredoc bodies and shortened values of the text, if it
    parsed as the scan placed each instruction; else None."""
    if len(parsed) != len(group):
        return None
    found = []
    at = 2
    for cmd, span in zip(parsed, group, strict=True):
        if (cmd.start_line, cmd.end_line) != (at, at + span.head_lines - 1):
            return None
        at += span.head_lines
        whole = _put_back(cmd, span)
        if whole is None:
            return None
        found.append(whole._replace(start_line=span.first_line, end_line=span.last_line))
    return found


def _put_back(cmd, span: _Span):
    if span.joined is not None:
        # BuildKit's value for a RUN (CMD, ...) not in JSON form is the rest of the line after
        # the flags, spaces trimmed; the shortened line was cut after a character that is
        # not a space, so the value seen ends there and starts where the whole one does.
        cut = span.instruction_chars - 1
        value = cmd.value[0] if len(cmd.value) == 1 else ""
        if cmd.json or cmd.heredocs or not value or value[0] in "[-" or cut - len(value) <= 0:
            return None  # a value starting with '-': the cut fell inside a flag
        if not span.joined.startswith(value, cut - len(value)):
            return None
        return cmd._replace(original=span.joined, value=(span.joined[cut - len(value) :].rstrip(_GO_SPACE),))
    if not cmd.heredocs:
        # Heredocs the scan read and BuildKit did not (or ONBUILD's, which the package does
        # not show): the whole text decides where the instruction ends.
        return cmd if not span.names else None
    names = tuple(doc.name for doc in cmd.heredocs)
    line, _, terminators = cmd.original.partition("\n")
    if names != span.names or terminators != "".join(name + "\n" for name in names):
        return None
    # BuildKit's original text of an instruction with heredocs: its line, then each body
    # and terminator.
    original = line + "\n" + "".join(body + name + "\n" for body, name in zip(span.bodies, names, strict=True))
    heredocs = tuple(doc._replace(content=body) for doc, body in zip(cmd.heredocs, span.bodies, strict=True))
    return cmd._replace(original=original, heredocs=heredocs)


def _raise_first_error(text: str, escape: str, prefix: str, group: list[_Span]) -> None:
    """A chunk failed to parse.  BuildKit's error for the whole text is that of the first of
    its instructions to fail, each before it placed as the scan says, when it fails on its
    own line (before its heredocs are read, which the scan may misplace): raise it."""
    for span in group:
        tries = (span, _unshortened(text, escape, span)) if span.joined is not None else (span,)
        for handed in tries:
            try:
                parsed = _parse(prefix + handed.head)
            except dockerfile.GoParseError:
                if handed is tries[-1]:
                    _raise_own_error(prefix, handed)
                    return
                continue
            if _restored(parsed, [handed]) is not None:
                break
        else:
            return  # placed otherwise than the scan says: the whole text tells


def _raise_own_error(prefix: str, span: _Span) -> None:
    """Raise BuildKit's error for the instruction alone, unless it is that its heredoc never ends."""
    try:
        _parse(prefix + span.head[: span.instruction_chars])
    except dockerfile.GoParseError as exc:
        if str(exc) != _error_of("RUN <<EOF\n"):  # "unterminated heredoc": the scan's terminators were wrong
            raise


@cache
def _error_of(text: str) -> str:
    """BuildKit's message for a small text it rejects."""
    try:
        _parse(text)
    except dockerfile.GoParseError as exc:
        return str(exc)
    return ""


def _chunks(spans: list[_Span], lines: int) -> Iterable[list[_Span]]:
    """The spans in groups of at most ``lines`` lines handed to the parser (a longer instruction on its own)."""
    group: list[_Span] = []
    size = 0
    for span in spans:
        if group and size + span.head_lines > lines:
            yield group
            group, size = [], 0
        group.append(span)
        size += span.head_lines
    if group:
        yield group


def _first_long_line(text: str) -> int | None:
    """Where the first line BuildKit rejects for its length starts, or None."""
    # A UTF-8 character is at most 4 bytes: only lines of a quarter of the limit are measured.
    # Each is looked for after a newline (found by a fast scan), the first line on its own.
    shortest = _LONG_LINE // 4
    first = re.match(rf"[^\n]{{{shortest},}}", text)
    others = re.finditer(rf"\n([^\n]{{{shortest},}})", text)
    for m in itertools.chain([first] if first else [], others):
        group = m.lastindex or 0
        if len(m.group(group).encode()) >= _LONG_LINE:
            return m.start(group)
    return None


def _escape_token(text: str) -> str | None:
    """The escape character BuildKit's parser uses for ``text``, asked of the parser itself on
    the leading comments that may be directives; None when it rejects them."""
    end = 0
    while end < len(text):
        stop = text.find("\n", end) + 1 or len(text)
        line = text[end:stop].rstrip("\r\n")
        line = (line.removeprefix("\ufeff") if end == 0 else line).lstrip(_GO_SPACE)
        if not (line.startswith("#") and "=" in line):  # not a directive: the parser stops looking here
            break
        end = stop
    if end == 0:
        return "\\"
    head = text[:end] if text[:end].endswith("\n") else text[:end] + "\n"
    try:
        probe = _parse(head + "A `\nB\n")  # one instruction if ` continues a line
    except (dockerfile.GoParseError, _SplitCharacter):
        return None
    return {1: "`", 2: "\\"}.get(len(probe))


def _needed_spans(text: str, escape: str) -> list[_Span] | None:
    """Where each instruction the analysis needs starts and ends, by BuildKit's line rules:
    a comment or blank line inside a line continuation does not end it, a heredoc's body
    is no instruction.  None for a file without instructions (a syntax error).  A heredoc
    that never ends ends the list, marked."""
    plain = _plain_lines(escape)
    continued = _continued_lines(escape)
    piece = _piece(text)
    spans: list[_Span] = []
    any_instruction = False  # BuildKit fails on a file without one
    size = len(text)
    pos, line = 0, 1  # the offset and number of the next line
    marker = marker_line = -1  # the next "<<" at or after pos, and where its line starts
    while pos < size:
        if marker < pos:
            marker = text.find("<<", pos) % (size + 1)  # none: size, never looked for again
            marker_line = text.rfind("\n", 0, marker) + 1 if marker < size else size
        # Plain lines up to the one holding the next "<<", which is read line by line.
        m = plain.match(text, pos, max(marker_line, pos))
        if m:
            end = m.end()
            line += text.count("\n", pos, end)
            any_instruction = any_instruction or bool(_INSTRUCTION_LINE.search(text, pos, end))
            pos = end
            if pos >= size:
                break
        start, first_line = pos, line
        stop = text.find("\n", pos) + 1 or size
        first = text[pos:stop].rstrip("\r\n")
        if pos == 0:
            first = first.removeprefix("\ufeff")
        first = first.lstrip(_GO_SPACE)
        pos, line = stop, line + 1
        joined, more = _joined(escape, "" if first.startswith("#") else first)
        if not more and not joined:
            continue  # a blank line or a comment
        first_end = run_end = pos
        pieces: list[str] = []
        last = ""
        if more:
            # The lines that go on with it (or are blank, or comments), at regex speed; then
            # the one that ends it, unless the text ends first.
            run_end = _continued_to(text, pos, escape, continued)
            pieces = _continuation_pieces(text, pos, run_end, escape, piece)
            line += text.count("\n", pos, run_end)
            pos = run_end
            if pos < size:
                stop = text.find("\n", pos) + 1 or size
                raw = text[pos:stop]
                pos, line = stop, line + 1
                content = raw.lstrip(_GO_SPACE)
                if content and content[0] != "#":
                    last = _joined(escape, raw.rstrip("\r\n"))[0]
        instruction = joined + "".join(pieces) + last
        any_instruction = True
        token = _AFTER_NAME.split(instruction.strip(_GO_SPACE), maxsplit=1)[0]
        if not _needed(token, instruction):
            continue
        offsets = (first_end, run_end, pos)
        short = None
        if token.lower() in _SHORTENED and len(instruction) > piece and "<<" not in instruction:
            short = _short_head(instruction, escape)
        head = short or _instruction_head(text, start, offsets, escape, pieces)
        word = _long_word(instruction) if short is None and len(instruction) >= _LONG_LINE else None
        if word is not None:
            raise _Unbounded.long_word(first_line, token[:20], word)
        names: list[str] = []
        bodies: list[str] = []
        terminators: list[str] = []
        unterminated = False
        for name, chomp in _heredoc_ends(token, instruction):
            names.append(name)
            found = _terminator(name, chomp).search(text, pos)
            if found is None:
                bodies.append(text[pos:])
                terminators.append(name + "\n")
                line += _lines_in(text, pos, size)
                pos, unterminated = size, True
                break
            bodies.append(text[pos : found.start()])
            terminator = found.group()
            terminators.append(terminator if terminator.endswith("\n") else terminator + "\n")
            line += _lines_in(text, pos, found.end())
            pos = found.end()
        spans.append(
            _Span(
                start,
                pos,
                first_line,
                line - 1,
                head + "".join(terminators),
                head.count("\n") + len(terminators),
                len(head),
                tuple(names),
                tuple(bodies),
                instruction if short is not None else None,
                unterminated,
                offsets,
            )
        )
        if unterminated:
            break
    return spans if any_instruction else None


def _joined(escape: str, line: str) -> tuple[str, bool]:
    """BuildKit's trimContinuationCharacter: the line without its continuation, and whether it
    has one.  Its lineContinuationRegex, ``([^E])E[ \\t]*$|^E[ \\t]*$`` for the escape E,
    can only match at the last character that is not a space or tab."""
    kept = line.rstrip(" \t")
    if not kept.endswith(escape):
        return line, False
    if len(kept) == 1:
        return "", True
    if kept[-2] == escape:  # an escaped escape character
        return line, False
    return kept[:-1], True


@cache
def _plain_lines(escape: str) -> re.Pattern[str]:
    """A run of lines the scan can pass over at once (between instructions): blank lines,
    comments, and single-line instructions not needed whose name is plain letters.  A
    line holding ``<<`` may still be one: the caller stops the run before it."""
    e = re.escape(escape)
    needed = "|".join(sorted(k for k in _NEEDED_KINDS if k))
    not_space = r"[^-\[\s\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    blank_or_comment = r"[ \t\r]*(?:\#[^\n]*)?\n"
    # A name of letters, not a needed kind; then no argument, or arguments not starting
    # with a flag or JSON, whose last character before trailing blanks is not the escape.
    instruction = (
        rf"[ \t\r]*(?!(?i:{needed})(?![A-Za-z]))[A-Za-z]+"
        rf"(?:[ \t]+(?={not_space})[^\n]*[^{e} \t\r\n])?[ \t\r]*\n"
    )
    return re.compile(rf"(?:{blank_or_comment}|{instruction})++")  # possessive: no backtracking state per line


def _heredoc_ends(token: str, line: str) -> list[tuple[str, bool]]:
    """The heredoc terminators BuildKit looks for after an instruction (and whether leading
    tabs are trimmed), as a plain reading of its words tells: quoting beyond that shows as
    a mismatch with BuildKit's parse, and the whole text is parsed instead."""
    if "<<" not in line:
        return []
    words = line.split()
    kind, args = token.lower(), words[1:]
    if kind == "onbuild" and args:
        kind, args = args[0].lower(), args[1:]
    if kind not in ("run", "copy", "add"):
        return []
    while args and args[0].startswith("--"):
        args = args[1:]
    form = None
    if args and args[0].startswith("["):
        try:  # BuildKit reads the JSON form's first value and ignores what follows it
            form = json.JSONDecoder().raw_decode(line[line.index(args[0]) :])[0]
        except ValueError:
            pass
    if isinstance(form, list) and all(isinstance(word, str) for word in form):
        return []  # the JSON form has no heredocs
    ends = []
    for word in words:
        m = _HEREDOC.fullmatch(word)
        if m:
            name = re.sub(r"\\(.)", r"\1", m.group(3).replace('"', "").replace("'", ""))
            ends.append((name, m.group(2) == "-"))
    return ends


def _instruction_head(text: str, start: int, offsets: tuple[int, int, int], escape: str, pieces: list[str]) -> str:
    """An instruction as the parser is handed it: its first line as written, then the lines
    that continue it joined into ``pieces`` (each ending where a line did: no piece is then
    a comment or blank, and each joins on after the escape character as the lines did),
    then its last line as written."""
    first_end, run_end, end = offsets
    first = text[start:first_end]
    if start == 0:
        first = first.removeprefix("\ufeff")
    head = first + "".join(piece + escape + "\n" for piece in pieces) + text[run_end:end]
    return head if head.endswith("\n") else head + "\n"


def _piece(text: str) -> int:
    """Characters per line a joined instruction is handed in: ``_PIECE``, a quarter of it
    unless the text is ASCII (the parser's line limit is in UTF-8 bytes)."""
    return _PIECE if text.isascii() else _PIECE // 4


def _unshortened(text: str, escape: str, span: _Span) -> _Span:
    """``span`` with its instruction handed over whole."""
    if span.joined is None:
        return span
    first_end, run_end, _ = span.offsets
    piece = _piece(text)
    head = _instruction_head(
        text, span.start, span.offsets, escape, _continuation_pieces(text, first_end, run_end, escape, piece)
    )
    return dataclasses.replace(span, head=head, head_lines=head.count("\n"), instruction_chars=len(head), joined=None)


def _short_head(instruction: str, escape: str) -> str | None:
    """The start of a long RUN (CMD, ...) for the parser, which holds its flags: cut after a
    character that is neither a space (the parser would trim it) nor the escape (it would
    continue the line); None if there is none near the cut."""
    m = _cut_after(escape).search(instruction, _SHORT - 1, _SHORT + 999)
    return instruction[: m.end()] + "\n" if m else None


@cache
def _cut_after(escape: str) -> re.Pattern[str]:
    return re.compile(rf"[^{_SPACE_IN_LINE}{re.escape(escape)}]")


def _continuation_pieces(text: str, start: int, end: int, escape: str, limit: int) -> list[str]:
    """The lines from ``start`` to ``end`` of a continued instruction (each goes on with it,
    or is blank, or a comment), joined as BuildKit joins them, in pieces of at most
    ``limit`` characters that each end where a line did (a longer line is a piece)."""
    part = _line_part(escape)
    ends = escape + "\n"
    pieces = []
    while start < end:
        stop = text.rfind("\n", start, min(start + limit, end)) + 1
        if stop <= start:  # a line longer than the limit, or the last one
            stop = text.find("\n", start, end) + 1 or end
        block = text[start:stop]
        if "#" not in block and block.count("\n") == block.count(ends):
            pieces.append(block.replace(ends, ""))  # each line ends in the escape alone: the usual case
        else:
            pieces.append("".join(part.findall(block)))
        start = stop
    return pieces


def _continued_to(text: str, pos: int, escape: str, continued: re.Pattern[str]) -> int:
    """Where the lines that go on with a continued instruction from ``pos`` end (see
    `_continued_lines`): blocks of lines that each end in the escape character alone are
    passed over at string-count speed, the rest matched line by line."""
    ends, doubled = escape + "\n", escape + escape + "\n"
    window = 256  # doubled up to 64 KiB: a short continuation costs a short count
    while True:
        stop = text.rfind("\n", pos, pos + window) + 1 or text.find("\n", pos) + 1
        window = min(2 * window, 1 << 16)
        if stop <= pos:
            return pos  # the last line, without a newline: it ends the instruction, or the text does
        lines = text.count("\n", pos, stop)
        if lines != text.count(ends, pos, stop) or text.count(doubled, pos, stop):
            matched = continued.match(text, pos)
            return matched.end() if matched else pos
        pos = stop


@cache
def _continued_lines(escape: str) -> re.Pattern[str]:
    """A run of lines that go on with a continued instruction: each is blank, a comment
    (skipped, whatever it ends with), or ends in the escape character (see `_joined`)."""
    e = re.escape(escape)
    return re.compile(rf"(?:[{_SPACE_IN_LINE}]*(?:\#[^\n]*)?\n|(?:[^\n]*[^{e}\n])?{e}[ \t]*\r*\n)*+")


@cache
def _line_part(escape: str) -> re.Pattern[str]:
    """One line of such a run, its part of the joined instruction in group 1 (none for a
    blank line or a comment)."""
    e = re.escape(escape)
    return re.compile(rf"[{_SPACE_IN_LINE}]*(?:\#[^\n]*)?\n|([^\n]*?){e}[ \t]*\r*\n")


def _terminator(name: str, chomp: bool) -> re.Pattern[str]:
    """The line that ends a heredoc, as BuildKit compares it: line ends and, for ``<<-``,
    leading tabs aside."""
    tabs = r"\t*" if chomp else ""
    return re.compile(rf"^{tabs}{re.escape(name)}\r*(?:\n|\Z)", re.MULTILINE)


def _lines_in(text: str, start: int, end: int) -> int:
    """Lines from ``start`` to ``end``, which ends a line (or the text)."""
    return text.count("\n", start, end) + (end > start and text[end - 1] != "\n")


def _long_word(line: str) -> str | None:
    """A word of ``_LONG_LINE`` characters or more BuildKit's lexers may make of ``line``, if any."""
    if not any(c in line for c in "'\"\\`"):  # words are what spaces split
        m = _LONG_UNQUOTED.search(line)
        return m.group() if m else None
    return next((m.group() for m in _WORD.finditer(line) if m.end() - m.start() >= _LONG_LINE), None)


def _continued_runs(escape: str) -> re.Pattern[str]:
    """A continued instruction as BuildKit may read it, from its first line to its last (or
    more: a heredoc body or comment ending in the escape character starts one too)."""
    e = re.escape(escape)
    first = rf"(?:[^\n]*[^{e}\n])?{e}[ \t]*\r*\n"
    return re.compile(rf"^{first}{_continued_lines(escape).pattern}[^\n]*\n?", re.MULTILINE)


def _check_whole_parse(text: str) -> None:
    """Raise ``_Unbounded`` where BuildKit's parse of the whole text could take minutes: in
    joining continued instructions (lines x characters each, and a word as long as one),
    and heredoc bodies (everything after the first heredoc may be one)."""
    escape = _escape_token(text)
    if escape is None:
        return  # the parser rejects the directives at the top, at once
    piece = _piece(text)
    work = 0
    for m in _continued_runs(escape).finditer(text):
        lines, chars = _lines_in(text, m.start(), m.end()), m.end() - m.start()
        work += lines * chars
        name = _AFTER_NAME.split(m.group().lstrip(_GO_SPACE)[:40], maxsplit=1)[0][:20]
        if work > _WHOLE_PARSE_WORK:
            raise _Unbounded(
                text.count("\n", 0, m.start()) + 1,
                f"{name} continued over {lines} lines ({chars} characters) is more than BuildKit's parser"
                f" reads in bounded time, and this file must be parsed whole ({_UNPLACED})",
                "split it into shorter instructions",
            )
        word = (
            _long_word("".join(_continuation_pieces(text, *m.span(), escape, piece))) if chars >= _LONG_LINE else None
        )
        if word is not None:
            raise _Unbounded.long_word(text.count("\n", 0, m.start()) + 1, name, word)
    # A heredoc's `<<` may be split by a line continuation (and blank lines or comments).
    e = re.escape(escape)
    heredoc = re.search(rf"<(?:{e}[ \t]*\r*\n|[{_SPACE_IN_LINE}]*(?:\#[^\n]*)?\n)*<", text)
    if heredoc:
        start = text.rfind("\n", 0, heredoc.start()) + 1
        lines, chars = _lines_in(text, start, len(text)), len(text) - start
        if work + lines * chars > _WHOLE_PARSE_WORK:
            raise _Unbounded(
                text.count("\n", 0, start) + 1,
                f"heredoc followed by {lines} lines ({chars} characters) is more than BuildKit's parser reads"
                f" in bounded time, and this file must be parsed whole ({_UNPLACED})",
                "write heredocs plainly (<<EOF, <<-EOF, <<'EOF') and keep `<<` out of quoted words,"
                " so that the line scan can place them",
            )


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
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read Dockerfile: {exc}", where=label, hint="check the service's context and dockerfile"
        ) from None
    return analyze(text, build_args, target, path=path, shown_as=label).uses


def analyze(
    text: str, build_args: Mapping[str, str] | None, target: str | None, *, path: Path, shown_as: str
) -> DockerfileInfo:
    """Everything a build of ``text`` for ``target`` uses, in one pass.  ``text`` may be a
    rendered template not on disk yet; ``path`` is what ImageUse records, ``shown_as``
    what messages name."""
    label = shown_as
    try:
        commands = _instructions(text)
    except dockerfile.GoParseError as exc:
        raise InputError(
            f"Dockerfile syntax error: {_one_line(str(exc))}", where=label, hint="fix the Dockerfile"
        ) from None
    except _Unbounded as exc:
        raise InputError(exc.what, where=where(label, exc.line), hint=exc.hint) from None
    except _SplitCharacter:
        raise InputError(
            "BuildKit's parser cannot read this Dockerfile: it cuts a UTF-8 character in two",
            where=label,
            hint="look for a no-break or other non-ASCII space at the start of a continued line",
        ) from None
    reader = _Reader(label, escape_char(text), dict(build_args or {}))
    for cmd in commands:
        reader.read(cmd)
    stages = reader.stages
    if not stages:
        raise InputError("Dockerfile has no FROM instruction", where=label, hint="add a FROM line")
    names = reader.by_name  # a later stage of the same name shadows an earlier one
    if target is None:
        wanted = stages[-1]
    elif target.lower() in names:
        wanted = names[target.lower()]
    else:
        raise UnknownTarget(
            f"build target {shown(target)} is not a stage of this Dockerfile",
            where=label,
            hint=f"use one of: {_listed(sorted(names)) or '(no named stages)'}",
        )

    uses: list[ImageUse] = []
    seen: set[int] = set()
    runs_onbuild = False
    todo = [wanted]
    while todo:
        stage = todo.pop()
        if stage.index in seen:
            continue
        seen.add(stage.index)
        runs_onbuild |= stage.parent is not None and stage.parent.onbuild
        for word, line, internal in [(stage.base, stage.line, stage.parent), *stage.needs]:
            if internal is not None:
                todo.append(internal)
            elif _INDEX.fullmatch(word):
                raise InputError(
                    f"stage index {word if len(word) <= 20 else word[:20] + '...'} does not name an earlier stage",
                    where=where(label, line),
                    hint="fix the --from value",
                )
            elif word != "scratch":
                try:
                    uses.append(ImageUse(_ref(word, label, line), path, line))
                except InputError as exc:
                    given = [n for n in _VARIABLE.findall(stage.raw) if n in (build_args or {})]
                    if word != stage.base or not given:
                        raise
                    raise BuildArgError(exc.what, where=exc.where, hint=exc.hint, arg=given[0]) from None

    built = [s for s in stages if s.index in seen]
    sources: list[Source] | None = None
    # A base stage's ONBUILD COPY would read context paths we do not track.
    if not runs_onbuild and all(s.sources is not None for s in built):
        sources = sorted(dict.fromkeys(src for s in built for src in s.sources or ()), key=lambda s: s.line)
    return DockerfileInfo(
        # Stages were walked target-first: put uses back in file order, each once.
        uses=sorted(dict.fromkeys(uses), key=lambda u: u.line),
        # Meta args, and the ARGs of the stages built: an ARG of a stage never built changes nothing.
        args=frozenset(reader.arg_names.union(*(s.declared for s in built))),
        sources=sources,
        # Every stage: a frontend that cannot parse heredocs fails on the whole file, built stage or not.
        heredocs=sorted(line for s in stages for line in s.heredocs),
        syntax=_syntax(text),
    )


def _listed(names: list[str]) -> str:
    return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")


def _ref(word: str, label: str, line: int) -> ImageRef:
    try:
        return parse(word)
    except InvalidReference as exc:
        message = _one_line(str(exc).replace(repr(word), shown(word)))
        raise InputError(
            message, where=where(label, line), hint="fix the image reference or the ARG it is built from"
        ) from None


def _one_line(message: str, limit: int = 400) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[:limit] + "..."


def _arg_pairs(tokens) -> list[tuple[str, str | None]]:
    # Quotes in a default stay: the lexer removes them, as BuildKit's does.
    pairs = []
    for token in tokens:
        name, eq, value = token.partition("=")
        pairs.append((name, value if eq else None))
    return pairs


def _context_path(word: str) -> str:
    """BuildKit's ``path.Join("/", src)``: cleaned, and ``..`` cannot leave the context."""
    return posixpath.normpath("/" + word.lstrip("/")).lstrip("/") or "."


class _Reader:
    """One read of the instructions, in order, keeping what each stage declares."""

    def __init__(self, label: str, escape: str, build_args: dict[str, str]):
        self.label = label
        self.escape = escape
        self.build_args = build_args
        self.meta = platform_args()  # what FROM lines expand with
        self.global_args = platform_args()  # BuildKit's global scope: only args that got a value
        self.stages: list[_Stage] = []
        self.by_name: dict[str, _Stage] = {}
        self.arg_names: set[str] = set()  # meta args (before the first FROM)
        self.budget = EXPANSION_BUDGET
        self.special = re.compile(f"[$'\"{re.escape(escape)}]")  # what makes a word more than itself

    def read(self, cmd) -> None:
        if cmd.cmd is None:
            # BuildKit's parser turns a final `\` into an empty instruction, then fails on it.
            raise InputError(
                "Dockerfile syntax error: the file ends in a line continuation with no instruction after it",
                where=where(self.label, cmd.start_line),
                hint="remove the trailing line continuation",
            )
        kind = cmd.cmd.upper()
        if kind == "ARG":
            for name, default in _arg_pairs(cmd.value):
                (self.stages[-1].declared if self.stages else self.arg_names).add(name)
                if self.stages:
                    self._stage_arg(self.stages[-1], name, default, cmd.start_line)
                else:
                    self._meta_arg(name, default, cmd.start_line)
        elif kind == "FROM":
            stage = _from(cmd, len(self.stages), self)
            stage.parent = self.earlier(stage.base, None)
            if stage.parent is not None:
                stage.env = dict(stage.parent.env)
                stage.env_names = set(stage.parent.env_names)
            if stage.name:
                stage.shadowed = self.by_name.get(stage.name)
                self.by_name[stage.name] = stage
            self.stages.append(stage)
        elif not self.stages:
            return
        elif kind == "ENV":
            self._env(self.stages[-1], cmd)
        elif kind in ("COPY", "ADD"):
            self._copy(self.stages[-1], cmd, kind)
        elif kind == "RUN":
            self._run(self.stages[-1], cmd)
        elif kind == "ONBUILD":
            self.stages[-1].onbuild = True

    def earlier(self, word: str, current: _Stage | None) -> _Stage | None:
        """The stage before ``current`` that ``word`` names (Docker documents FROM and
        --from as naming an *earlier* stage); resolved while reading, so lookups stay
        constant-time however many stages share a name."""
        if _INDEX.fullmatch(word):
            index = int(word) if len(word) < 10 else len(self.stages)  # int() of 4,300 digits raises
            found = self.stages[index] if index < len(self.stages) else None
        else:
            found = self.by_name.get(word.lower())
            if found is not None and found is current:
                found = found.shadowed
        return None if found is current else found

    def expand(self, word: str, variables: Mapping[str, str], line: int, what: str, *, strict: bool = True) -> str:
        """Expand ``word``.  ``strict``: an undefined name is an error, for the words that
        name images; elsewhere (ARG defaults) it is empty, as in BuildKit."""
        try:
            result = substitute(word, variables, escape=self.escape, quotes=True)
        except ExpansionLimitError as exc:
            raise InputError(f"{what}: {exc}", where=where(self.label, line), hint="shorten the value") from None
        except SubstitutionError as exc:
            raise InputError(
                f"{what}: {exc}", where=where(self.label, line), hint="declare the ARG or pass it in build_args"
            ) from None
        self._spend(len(result.value) - len(word), line)
        if strict and result.undefined:
            names = sorted(set(result.undefined))
            listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise InputError(
                f"{what} {shown(word)} uses undefined variable {listed}",
                where=where(self.label, line),
                hint=f"declare ARG {names[0]} before the first FROM or set it in the service's build_args",
            )
        return result.value

    def known(self, word: str, env: Mapping[str, str], line: int) -> str | None:
        """``word`` expanded in a stage's environment, or None when it depends on a value
        this file does not set (an ENV of the base image, say), BuildKit would reject it, or
        it outgrows the cap: a 200 kB certificate passed through ENV is legitimate, and
        once unknown, an ENV doubling itself stops growing."""
        if len(word) <= MAX_VALUE and not self.special.search(word):
            return word  # nothing to expand or unquote: what substitute returns, without its lexer
        try:
            result = substitute(word, env, escape=self.escape, quotes=True)
        except SubstitutionError:
            return None  # the build reports what is wrong; we just cannot say what it reads
        self._spend(len(result.value) - len(word), line)
        return None if result.unset else result.value

    def _spend(self, added: int, line: int) -> None:
        self.budget -= max(added, 0)
        if self.budget < 0:
            raise InputError(
                f"variables expand to more than {EXPANSION_BUDGET} characters in total",
                where=where(self.label, line),
                hint="shorten the ARG and ENV values",
            )

    def _meta_arg(self, name: str, default: str | None, line: int) -> None:
        if name in self.build_args:
            value = self.build_args[name]
        elif default is not None:
            value = self.expand(default, self.meta, line, f"ARG {name}", strict=False)
        else:
            value = self.meta.get(name, "")
        self.meta[name] = value
        if name in self.build_args or default is not None:
            self.global_args[name] = value

    def _stage_arg(self, stage: _Stage, name: str, default: str | None, line: int) -> None:
        # What FROM-side code (COPY --from, mount from=) expands with, as before.
        if name in self.build_args:
            value: str | None = self.build_args[name]
        elif default is not None:
            value = self.expand(default, ChainMap(stage.args, self.meta), line, f"ARG {name}", strict=False)
        else:
            value = self.meta.get(name)  # a stage re-declaring a meta arg without default inherits it
        if value is not None:
            stage.args[name] = value
        # BuildKit's dispatchArg: a value sets the name in the stage's environment.
        if name in self.build_args:
            env_value: str | None = self.build_args[name]
        elif default is not None:
            env_value = self.known(default, stage.env, line)
        elif name in self.global_args:
            env_value = self.global_args[name]
        else:
            return
        if name in stage.env_names:
            # Docker documents ENV as always winning over an ARG of the same name; BuildKit
            # lets the later one win.  Either may run the build: cannot tell.
            env_value = None
        self._set(stage.env, name, env_value)

    @staticmethod
    def _set(env: dict[str, str], name: str, value: str | None) -> None:
        if value is None:
            env.pop(name, None)  # unknown now, whatever it was
        else:
            env[name] = value

    def _env(self, stage: _Stage, cmd) -> None:
        pairs = list(zip(cmd.value[::2], cmd.value[1::2], strict=False))
        if any("$" in name or self.escape in name for name, _ in pairs):
            stage.env.clear()  # a computed name may overwrite any known one
            return
        # The whole instruction expands before any of its values is set.
        values = {name: self.known(raw, stage.env, cmd.start_line) for name, raw in pairs}
        for name, value in values.items():
            self._set(stage.env, name, value)
        stage.env_names.update(values)

    def _copy(self, stage: _Stage, cmd, kind: str) -> None:
        if cmd.heredocs:
            stage.heredocs.append(cmd.start_line)
        froms = [flag[7:] for flag in cmd.flags if flag.startswith("--from=")]
        if kind == "COPY":
            for word in froms:
                word = self.expand(word, ChainMap(stage.args, self.meta), cmd.start_line, "COPY --from")
                stage.needs.append((word, cmd.start_line, self.earlier(word, stage)))
        if froms:
            return
        for token in cmd.value[:-1]:  # the last is the destination
            if cmd.heredocs and _HEREDOC.fullmatch(token):
                continue
            self._source(stage, token, cmd.start_line, kind)

    def _run(self, stage: _Stage, cmd) -> None:
        if cmd.heredocs:
            stage.heredocs.append(cmd.start_line)
        for flag in cmd.flags:
            if not flag.startswith("--mount="):
                continue
            fields = self._mount_fields(flag[8:], cmd.start_line)
            source = fields.get("from")
            if source:
                word = self.expand(source, ChainMap(stage.args, self.meta), cmd.start_line, "RUN --mount from")
                stage.needs.append((word, cmd.start_line, self.earlier(word, stage)))
                continue
            mount_type = self.known(fields.get("type", "bind"), stage.env, cmd.start_line)
            if mount_type is None:
                stage.sources = None
            elif mount_type.lower() == "bind":  # cache mounts start empty, secret/ssh/tmpfs are not the context
                self._source(stage, fields.get("source", ""), cmd.start_line, "RUN --mount")

    def _source(self, stage: _Stage, token: str, line: int, instruction: str) -> None:
        if stage.sources is None:
            return
        word = self.known(token, stage.env, line)
        if word is None:
            stage.sources = None
        elif not (instruction == "ADD" and _REMOTE.match(word)):
            stage.sources.append(Source(_context_path(word), line, instruction))

    def _mount_fields(self, spec: str, line: int) -> dict[str, str]:
        """A ``--mount`` spec: one CSV line of key=value (as BuildKit reads it), later keys winning."""
        try:
            row = next(csv.reader([spec]), [])
        except csv.Error as exc:
            raise InputError(
                f"RUN --mount {shown(spec)}: {exc}", where=where(self.label, line), hint="fix the mount"
            ) from None
        fields = {}
        for field_ in row:
            key, _, value = field_.partition("=")
            key = key.strip().lower()
            fields[{"src": "source"}.get(key, key)] = value.strip() if key == "from" else value
        return fields


def _from(cmd, index: int, reader: _Reader) -> _Stage:
    label = reader.label
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
                f"invalid stage name {shown(words[2])}",
                where=where(label, cmd.start_line),
                hint="use letters, digits, - _ . starting with a letter",
            )
    else:
        raise InputError(
            "FROM requires either one or three arguments (IMAGE [AS NAME])",
            where=where(label, cmd.start_line),
            hint="fix the FROM line",
        )
    base = reader.expand(image, reader.meta, cmd.start_line, "FROM")
    if not base:
        raise InputError(
            f"FROM {shown(image)} expands to an empty name",
            where=where(label, cmd.start_line),
            hint="set the ARG it uses",
        )
    return _Stage(index=index, name=name, line=cmd.start_line, base=base, raw=image)


# --- which context files the sources name --------------------------------------------------

_ANY = r"[^/\x00]"  # one character of one path component


def select(paths: Iterable[str], sources: list[Source]) -> tuple[set[str], list[Source]]:
    """The ``paths`` a build reads (matched by some source) and the sources that matched nothing.

    ``paths``: every file and symlink in the build context after .dockerignore,
    relative, '/'-separated.  Matching is BuildKit's COPY: Go's filepath.Match per
    component (``*``, ``?``, ``[...]``; ``*`` never crosses '/'), a match on a folder
    takes everything below it, ``.`` is everything.  Hand-written because no Python
    library has Go's semantics (fnmatch's ``*`` crosses '/', ``[!...]`` differs).
    A symlink is matched as itself: what it points to is the caller's to add.
    """
    paths = list(paths)
    bodies = {source: _glob_body(source.pattern) for source in sources}
    everything = any(source.pattern == "." for source in sources)
    usable = [f"(?:{body})" for body in dict.fromkeys(bodies.values()) if body]
    if everything:
        read = set(paths)
    elif usable:
        one = re.compile(f"(?:{'|'.join(usable)})(?:/.*)?", re.DOTALL).fullmatch
        read = {p for p in paths if one(p)}
    else:
        read = set()
    # Which sources match anything: one scan per source over all paths at once, in C.
    joined = "\x00" + "\x00".join(read) + "\x00"
    unmatched = []
    for source in sources:
        body = bodies[source]
        if source.pattern == ".":
            continue
        if not body or not re.search(f"\x00(?:{body})(?:/[^\x00]*)?\x00", joined):
            unmatched.append(source)
    return read, unmatched


def _has_wildcard(component: str) -> bool:
    # fsutil's containsWildcards: an escaped character is not a wildcard.
    i = 0
    while i < len(component):
        if component[i] == "\\":
            i += 2
            continue
        if component[i] in "*?[":
            return True
        i += 1
    return False


def _glob_body(pattern: str) -> str | None:
    """A regex for the paths ``pattern`` names itself (a folder's contents come from the
    caller's suffix); None for a malformed pattern, which matches nothing, as in BuildKit."""
    if pattern == ".":
        return None
    pieces: list[str | None] = []  # None: a `**` component
    wild = False
    for component in pattern.split("/"):
        # fsutil's splitWildcards: the part before the first wildcard is a plain path,
        # the rest goes through filepath.Match (escapes and all).
        wild = wild or _has_wildcard(component)
        if not wild:
            pieces.append(re.escape(component))
        elif component == "**":
            # Go's `**` is just `*`; matching any depth is a superset, so a COPY --parents
            # glob that BuildKit expands across folders never misses a file.
            if not pieces or pieces[-1] is not None:
                pieces.append(None)
        else:
            regex = _component_regex(component)
            if regex is None:
                return None
            pieces.append(regex)
    if pieces[-1] is None:  # `a/**` names what `a/*` does: everything below a
        pieces[-1] = _ANY + "*"
    segments: list[list[str]] = [[]]  # runs of components, each after the first preceded by `**`
    for piece in pieces:
        if piece is None:
            segments.append([])
        else:
            segments[-1].append(piece)
    body = "/".join(segments[0])
    for k, segment in enumerate(segments[1:], start=2):
        if body:
            body += "/"
        run = "/".join(segment)
        # The earliest place a run matches is always the best one, so commit to it
        # (atomic group): `**/a/**/a/**/b` then costs depth x runs, not depth ** runs.
        body += f"(?>(?:{_ANY}*/)*?{run})" if k < len(segments) else f"(?:{_ANY}*/)*{run}"
    return body


def _component_regex(component: str) -> str | None:
    """Go's filepath.Match syntax for one component, as a regex; None if malformed.

    Between two stars the earliest match of the fixed-length chunk is always the
    best, so each is an atomic group: `*a*a*a*b` stays linear in the name's length
    instead of backtracking through every split (Go's own matcher is linear too)."""
    chunks: list[list[str]] = [[]]
    i, n = 0, len(component)
    while i < n:
        c = component[i]
        if c == "*":
            chunks.append([])
            i += 1
        elif c == "?":
            chunks[-1].append(_ANY)
            i += 1
        elif c == "\\":
            if i + 1 >= n:
                return None
            chunks[-1].append(re.escape(component[i + 1]))
            i += 2
        elif c == "[":
            i += 1
            negated = i < n and component[i] == "^"
            if negated:
                i += 1
            ranges: list[tuple[str, str]] = []
            while True:
                if i < n and component[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = _class_char(component, i)
                if lo is None:
                    return None
                hi = lo
                if component[i] == "-":
                    end, i = _class_char(component, i + 1)
                    if end is None:
                        return None
                    hi = end
                ranges.append((lo, hi))
            spans = "".join(f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges if lo <= hi)
            if negated:
                chunks[-1].append(f"[^{spans}/\\x00]")
            else:
                chunks[-1].append(f"(?![/\\x00])[{spans}]" if spans else "(?!)")
        else:
            chunks[-1].append(re.escape(c))
            i += 1
    texts = ["".join(chunk) for chunk in chunks]
    if len(texts) == 1:
        return texts[0]
    head, *middle, tail = texts
    return head + "".join(f"(?>{_ANY}*?{chunk})" for chunk in middle) + f"{_ANY}*{tail}"


def _class_char(component: str, i: int) -> tuple[str | None, int]:
    """Go's getEsc: one character of a class, escaped or not; None where Go says ErrBadPattern."""
    n = len(component)
    if i >= n or component[i] in "-]":
        return None, i
    if component[i] == "\\":
        i += 1
        if i >= n:
            return None, i
    if i + 1 >= n:  # the class never closes
        return None, i
    return component[i], i + 1
