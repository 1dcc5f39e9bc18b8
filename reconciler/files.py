"""Rendered and synced files: what each ``[[templates]]`` / ``[[files]]`` entry must write.

Templates render in jinja2's sandbox with ``StrictUndefined``: an undefined
name or an unsafe attribute (``''.__class__``) is an error naming the template
line, never a silent empty string.  A template is bounded: it may run
``TEMPLATE_SECONDS``, produce ``TEMPLATE_TEXT`` characters and make no string,
list or number past the limits below.  Sources and included templates are read
only from the stack folder (and the ``[stack] allow_outside`` folders).
Everything here is computed before anything is written; :func:`write` is the one
writer, used by apply.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import re
import stat
import time
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from .atomic import FOLDER_FLAGS, replace_in
from .errors import InputError, ReconcileError, where
from .tree import leads_outside, readable_folders

if TYPE_CHECKING:
    from .network import NetworkDecision
    from .stack import Stack


@dataclass(frozen=True)
class FileSpec:
    """``dest`` must hold ``content`` with ``mode``."""

    kind: Literal["template", "file"]
    src: Path
    dest: Path  # absolute, inside the stack folder
    rel: str  # dest relative to the stack folder, as users see it
    content: bytes
    mode: int
    key: str  # the stack-file entry, for messages: templates[0]
    root: Path  # the stack folder the destination must stay in


@dataclass(frozen=True)
class PlannedFile:
    """A file a ``[[templates]]`` / ``[[files]]`` entry writes, before it is rendered."""

    kind: Literal["template", "file"]
    key: str  # templates[0]
    src: Path
    src_rel: str  # relative to the stack folder: the template's name for jinja2
    dest: Path
    rel: str
    item: Any  # the TemplateSection or FileSection


_GLOB = re.compile(r"[*?\[]")
_SPECIAL_MODE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


def planned_files(stack: Stack) -> list[PlannedFile]:
    """Every file the entries write: globs expanded, sources and destinations checked; nothing rendered yet."""
    cfg = stack.config
    readable = readable_folders(stack.root, cfg.stack.allow_outside)
    planned: list[PlannedFile] = []
    kind: Literal["template", "file"]
    for kind, entries in (("template", cfg.templates), ("file", cfg.files)):
        for index, item in enumerate(entries):
            key = f"{kind}s[{index}]"
            if item.mode is not None and int(item.mode, 8) & _SPECIAL_MODE_BITS:
                raise InputError(
                    f"mode {item.mode!r} sets the set-uid, set-gid or sticky bit",
                    where=_entry_where(stack, kind, index, "mode"),
                    hint='give permission bits only, like "0755" or "0644"',
                )
            for src in _sources(stack, item.src, _entry_where(stack, kind, index, "src"), readable):
                src_rel = Path(os.path.relpath(src, stack.root)).as_posix()
                folder = Path(os.path.relpath(src.parent, stack.root)).as_posix()
                dest_text = item.dest.replace("{dir}", folder).replace("{name}", Path(src.name).stem)
                dest = _inside(stack, dest_text, _entry_where(stack, kind, index, "dest"))
                planned.append(PlannedFile(kind, key, src, src_rel, dest, stack.rel(dest), item))
    seen: dict[Path, str] = {}
    protected = {stack.path.resolve(): "the stack file"}
    if stack.env_path is not None:
        protected[stack.env_path.resolve()] = "the env file the templates and builds read"
    for entry in planned:
        if entry.dest in protected:
            raise InputError(
                f"{entry.key} would write {entry.rel}, {protected[entry.dest]}",
                where=stack.rel(stack.path),
                hint="choose another destination",
            )
        if entry.dest in seen:
            raise InputError(
                f"{seen[entry.dest]} and {entry.key} both write {entry.rel}",
                where=stack.rel(stack.path),
                hint="give each destination one entry",
            )
        seen[entry.dest] = entry.key
    return planned


def _sources(stack: Stack, src: str, shown: str, readable: tuple[Path, ...]) -> list[Path]:
    """The entry's source file, or every file its glob matches (in name order), each readable."""
    if _GLOB.search(src):
        try:
            found = sorted(Path(os.path.normpath(p)) for p in stack.root.glob(src) if p.is_file())
        except (NotImplementedError, ValueError) as exc:
            raise InputError(f"{src!r} is not a usable glob: {exc}", where=shown, hint="give a relative glob") from None
        if not found:
            raise InputError(
                f"{src!r} matches no file", where=shown, hint="fix the glob (relative to the stack folder)"
            )
    else:
        found = [Path(os.path.normpath(stack.root / src))]
    for path in found:
        real = leads_outside(path, readable)
        if real is None:
            continue
        named = stack.rel(path) if _GLOB.search(src) else src
        if any(path.is_relative_to(folder) for folder in readable):  # inside by its name: a symlink leads out
            what = f"{named} leads outside the stack folder through a symlink (to {real})"
        else:
            what = f"{named} is outside the stack folder"
        raise InputError(
            what, where=shown, hint="keep sources inside the stack folder, or list their folder in stack.allow_outside"
        )
    if not found[0].is_file():
        raise InputError(f"{src} is not a file", where=shown, hint="fix the path (relative to the stack folder)")
    return found


def desired_files(stack: Stack, network: NetworkDecision, planned: list[PlannedFile] | None = None) -> list[FileSpec]:
    """What each planned file must hold: templates rendered in memory, files read."""
    env = None
    specs: list[FileSpec] = []
    for entry in planned_files(stack) if planned is None else planned:
        if entry.kind == "template":
            if env is None:
                env = _environment(stack.root, readable_folders(stack.root, stack.config.stack.allow_outside))
            content = render(env, stack, entry.src_rel, entry.item.vars, network)
        else:
            content = _read(entry.src, stack.rel(entry.src))
        mode = _mode(entry.item.mode, entry.dest, entry.src)
        specs.append(
            FileSpec(entry.kind, entry.src, entry.dest, entry.rel, content, mode, entry.key, stack.root.resolve())
        )
    return specs


def _entry_where(stack: Stack, kind: str, index: int, key: str) -> str:
    """``stack.toml:LINE: templates[0].src``."""
    return where(stack.rel(stack.path), _entry_line(stack.text, f"{kind}s", index, key), f"{kind}s[{index}].{key}")


def _entry_line(text: str, table: str, index: int, key: str) -> int | None:
    """The line of ``key`` in the ``index``-th ``[[table]]`` (else its header): tomllib keeps no positions."""
    lines = text.splitlines()
    headers = [n for n, text in enumerate(lines) if text.strip().startswith(f"[[{table}]]")]
    if index >= len(headers):
        return None
    for n in range(headers[index] + 1, len(lines)):
        if lines[n].lstrip().startswith("["):
            break
        if lines[n].split("=")[0].strip() == key:
            return n + 1
    return headers[index] + 1


def _inside(stack: Stack, dest: str, shown: str) -> Path:
    """``dest`` resolved (following symlinks) and refused unless it stays in the stack folder."""
    root = stack.root.resolve()
    path = (root / dest).resolve()
    if path == root:
        raise InputError(f"destination {dest} is the stack folder itself", where=shown, hint="name a file in it")
    if not path.is_relative_to(root):
        raise InputError(
            f"destination {dest} is outside the stack folder{' (through a symlink)' if '..' not in Path(dest).parts and not Path(dest).is_absolute() else ''}",
            where=shown,
            hint="give a path inside the stack folder",
        )
    if path.is_dir():
        raise InputError(f"destination {dest} is a folder", where=shown, hint="name the file to write")
    return path


def _mode(explicit: str | None, dest: Path, src: Path) -> int:
    """An explicit ``mode``; else the destination's current mode (kept); else the source's.

    A kept mode loses its set-uid, set-gid and sticky bits: a file rendered from
    the stack never becomes set-uid because some file once was."""
    if explicit is not None:
        return int(explicit, 8)
    for path in (dest, src):
        try:
            return stat.S_IMODE(path.stat().st_mode) & ~_SPECIAL_MODE_BITS
        except OSError:
            continue
    return 0o644


def _read(path: Path, shown: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {shown}: {exc}", hint="check the file") from None


# --- Templates: bounded in time, output and memory ---------------------------------------------
#
# jinja2's sandbox keeps templates away from Python internals but not from
# exhausting the machine: nested loops run for hours and ``'x' * 10**9`` takes a
# gigabyte.  The bounds below are checked where a template spends: each operator
# that repeats or joins (``*``, ``**``, ``+``, ``%``, ``~``) and each padding,
# joining or formatting filter or string method is checked *before* it runs,
# every call and filter result after; every loop, call and output looks at the
# clock; every piece of output (captured ``{% set %}`` blocks and macros included,
# each time they are produced) counts against the output bound.

TEMPLATE_SECONDS = 10.0
TEMPLATE_TEXT = 16 * 1024 * 1024  # characters of output, and of any one string or template file
TEMPLATE_ITEMS = 1024 * 1024  # items of any one list, tuple, dict or set
TEMPLATE_INT_BITS = 1 << 16  # about 20,000 digits (str() refuses past 4,300 anyway)
_LOOK_AT_THE_CLOCK = 1024  # loop iterations between two looks
_LOOP, _OUTPUT, _CONCAT = "reconcile loop", "reconcile output", "reconcile concat"  # not spellable in a template

# Filters that do not turn their input into text: their input's size is not checked.
_STRUCTURAL_FILTERS = frozenset(
    "abs attr batch count d default dictsort first float groupby int items last length list map max min "  # noqa: SIM905 -- a word list reads better than 29 quoted names
    "random reject rejectattr reverse round select selectattr slice sort sum unique".split()
)


class TemplateLimit(Exception):
    """A template passed one of the bounds: refused before it could take the time or memory."""


class _LeadsOutside(Exception):
    def __init__(self, name: str, real: Path):
        super().__init__(name)
        self.name, self.real = name, real


class _Budget:
    """What one template's rendering (its includes with it) has left."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + TEMPLATE_SECONDS
        self.produced = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"it ran longer than {TEMPLATE_SECONDS:g} s")

    def produce(self, value: Any) -> None:
        self.tick()
        self.produced += len(value) if type(value) is str else _text_size(value, TEMPLATE_TEXT - self.produced)
        if self.produced > TEMPLATE_TEXT:
            raise TemplateLimit(f"its output passes {_mib(TEMPLATE_TEXT)}")


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def _text_size(value: Any, limit: int = TEMPLATE_TEXT) -> int:
    """About how many characters ``str(value)`` makes; counting stops once past ``limit``."""
    if isinstance(value, str | bytes):
        return len(value)
    total, pending = 0, [value]
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            pending += item
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        else:
            total += 8
    return total


def _refuse_text(what: str, size: int) -> None:
    if size > TEMPLATE_TEXT:
        raise TemplateLimit(f"{what} would make {size:,} characters (at most {_mib(TEMPLATE_TEXT)})")


def _refuse_input(what: str, value: Any) -> None:
    """A value about to be turned into text (a list of long strings can make far more than it holds)."""
    if _text_size(value) > TEMPLATE_TEXT:  # counted only until past the bound
        raise TemplateLimit(f"{what}'s input passes {_mib(TEMPLATE_TEXT)} as text")


def _refuse_items(what: str, count: int) -> None:
    if count > TEMPLATE_ITEMS:
        raise TemplateLimit(f"{what} would make {count:,} items (at most {TEMPLATE_ITEMS:,})")


def _check_made(value: Any, what: str) -> None:
    """A value already made: a string or collection past its bound goes no further."""
    if isinstance(value, str | bytes):
        _refuse_text(what, len(value))
    elif isinstance(value, list | tuple | dict | set | frozenset):
        _refuse_items(what, len(value))


def _check_binop(operator: str, left: Any, right: Any) -> None:
    what = f"{operator!r}"
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                _check_made_size(seq, len(seq) * max(times, 0), what)
        if isinstance(left, int) and isinstance(right, int):
            _refuse_bits(what, left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
            _refuse_bits(what, abs(left).bit_length() * right)
    elif operator == "+":
        if isinstance(left, str | bytes | list | tuple) and isinstance(right, str | bytes | list | tuple):
            _check_made_size(left, len(left) + len(right), what)
    elif operator == "%" and isinstance(left, str):
        _refuse_text(what, _percent_size(left, right))


def _check_made_size(kind: Any, size: int, what: str) -> None:
    if isinstance(kind, str | bytes):
        _refuse_text(what, size)
    else:
        _refuse_items(what, size)


def _refuse_bits(what: str, bits: int) -> None:
    if bits > TEMPLATE_INT_BITS:
        raise TemplateLimit(f"{what} would make a number of about {bits:,} bits (at most {TEMPLATE_INT_BITS:,})")


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")
_NESTED_BRACE = re.compile(r"\{[^{}]*\{")


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else 10**18  # past any bound; int() of a huge digit run is slow


def _percent_size(fmt: str, values: Any) -> int:
    """Most characters ``fmt % values`` can make: each conversion as wide as the widest width and value."""
    args = tuple(values.values()) if isinstance(values, dict) else values if isinstance(values, tuple) else (values,)
    specs = _PERCENT_SPEC.findall(fmt)
    widths = [_number(n) for spec in specs for n in spec if n.isdigit()]
    if any("*" in spec for spec in specs):
        widths += [a for a in args if isinstance(a, int)]
    return len(fmt) + len(specs) * (max(widths, default=0) + max(map(_text_size, args), default=0))


def _brace_size(fmt: str, args: tuple, kwargs: dict) -> int:
    """Most characters ``fmt.format(...)`` can make, as :func:`_percent_size`."""
    values = [*args, *kwargs.values()]
    widths = [_number(n) for spec in _BRACE_SPEC.findall(fmt) for n in re.findall(r"\d+", spec)]
    if _NESTED_BRACE.search(fmt):  # a width taken from the arguments: {:>{w}}
        widths += [v for v in values if isinstance(v, int)]
    return len(fmt) + fmt.count("{") * (max(widths, default=0) + max(map(_text_size, values), default=0))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _padded(value, width=80, *_, **__) -> int:
    return max(_text_size(value), width if isinstance(width, int) else 0)


def _indented(value, width=4, *_, **__) -> int:
    text = _text(value)
    return len(text) + (text.count("\n") + 1) * (len(width) if isinstance(width, str) else max(int(width), 0))


def _replaced(value, old="", new="", *_, **__) -> int:
    text = _text(value)
    grows = max(len(_text(new)) - len(_text(old)), 0)
    return len(text) + grows * (text.count(_text(old)) if old else len(text) + 1)


def _tabs_expanded(value, tabsize=8, *_, **__) -> int:
    return len(value) + value.count("\t" if isinstance(value, str) else b"\t") * max(int(tabsize), 0)


def _wrapped(value, width=79, break_long_words=True, wrapstring=None, *_, **__) -> int:
    text = _text(value)
    return len(text) + (len(text) + 1) * len(wrapstring or "\n")


def _joined_filter(value, d="", *_, **__) -> int:
    return sum(map(_text_size, value)) + len(_text(d)) * len(value)


def _joined_method(sep, iterable=(), *_, **__) -> int:
    return sum(map(_text_size, iterable)) + len(sep) * len(iterable)


def _split(value, sep=None, maxsplit=-1, *_, **__) -> int:
    pieces = value.count(sep) + 1 if sep else sum(value.count(c) for c in " \t\n\r\x0b\x0c") + 1
    _refuse_items("split()", pieces if maxsplit < 0 else min(pieces, maxsplit + 1))
    return len(value)


def _split_lines(value, *_, **__) -> int:
    _refuse_items("splitlines()", value.count("\n") + value.count("\r") + 1)
    return len(value)


def _translated(value, table=None, *_, **__) -> int:
    longest = max((len(v) for v in (table or {}).values() if isinstance(v, str | bytes)), default=1)
    return len(value) * max(longest, 1)


def _as_json(value, indent=None, *_, **__) -> int:
    if isinstance(indent, int) and indent > 16:
        raise TemplateLimit(f"tojson indent {indent:,} is above 16")
    return _text_size(value) * (2 + (indent if isinstance(indent, int) else 0))


# Characters an operation would make, computed before it runs; the arguments mirror the real ones.
_FILTER_GROWTH = {
    "center": _padded,
    "format": lambda value, *args, **kwargs: _percent_size(_text(value), kwargs or args),
    "indent": _indented,
    "join": _joined_filter,
    "replace": _replaced,
    "tojson": _as_json,
    "wordwrap": _wrapped,
}
_METHOD_GROWTH = {
    "center": _padded,
    "ljust": _padded,
    "rjust": _padded,
    "zfill": _padded,
    "expandtabs": _tabs_expanded,
    "replace": _replaced,
    "join": _joined_method,
    "format": lambda value, *args, **kwargs: _brace_size(value, args, kwargs),
    "format_map": lambda value, mapping=None, *_, **__: _brace_size(value, (), dict(mapping or {})),
    "translate": _translated,
    "split": _split,
    "rsplit": _split,
    "splitlines": _split_lines,
}
# Filters that make a list of their input: it must fit in one first.
_LISTING_FILTERS = frozenset({"batch", "dictsort", "groupby", "list", "slice", "sort", "unique"})


def _check_growth(table: dict, name: str, value: Any, args: tuple, kwargs: dict) -> None:
    estimate = table.get(name)
    if estimate is None:
        return
    try:
        size = estimate(value, *args, **kwargs)
    except (TypeError, ValueError, AttributeError):
        return  # arguments the operation itself will refuse
    _refuse_text(f"{name}()", size)


def _materialized(value: Any) -> Any:
    """An iterable that is not a collection (a generator) as a list, so its size can be known first."""
    if isinstance(value, Sized):
        return value
    items = list(islice(value, TEMPLATE_ITEMS + 1))
    _refuse_items("join()", len(items))
    return items


def _sum_checked(value: Any, rest: tuple, kwargs: dict) -> None:
    """Summing lists copies the total so far at each step: refuse what would take quadratic time."""
    start = kwargs.get("start", rest[1] if len(rest) > 1 else 0)
    if isinstance(start, list | tuple) and isinstance(value, Sized):
        parts = [v for v in cast(Iterable[Any], value) if isinstance(v, Sized)]
        copies = sum(map(len, parts)) * len(parts)
        if copies > 64 * TEMPLATE_ITEMS:
            raise TemplateLimit(f"sum() of {len(parts):,} lists would copy {copies:,} items")


def _filter_guard(budget_of, name: str, func):
    """``func`` checked: the clock, its input's size, what it would make, what it made."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context/environment first

    @functools.wraps(func)
    def guarded(*args, **kwargs):
        budget_of().tick()
        if len(args) > skip:
            value = args[skip]
            if name not in _STRUCTURAL_FILTERS:
                _refuse_input(f"the {name} filter", value)
            if name == "join":
                value = _materialized(value)
                args = (*args[:skip], value, *args[skip + 1 :])
            if name == "sum":
                _sum_checked(value, args[skip + 1 :], kwargs)
            if name in _LISTING_FILTERS and isinstance(value, Sized):
                _refuse_items(f"the {name} filter", len(value))
            if name in ("batch", "slice") and len(args) > skip + 1 and isinstance(args[skip + 1], int):
                _refuse_items(f"the {name} filter", args[skip + 1])
            _check_growth(_FILTER_GROWTH, name, value, args[skip + 1 :], kwargs)
        result = func(*args, **kwargs)
        _check_made(result, f"the {name} filter")
        return result

    return guarded


@functools.lru_cache(maxsize=1)
def _sandbox_classes() -> tuple[type, type]:
    """The bounded sandbox and the confined loader, built on first use: only commands that
    render import jinja2."""
    import jinja2
    from jinja2 import nodes
    from jinja2.sandbox import SandboxedEnvironment
    from jinja2.utils import generate_lorem_ipsum
    from jinja2.visitor import NodeTransformer

    def wrapped(name: str, node):
        return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)

    class Bounding(NodeTransformer):
        """Each loop, each piece of output and each ``~`` goes through a checking filter."""

        def visit_For(self, node):
            self.generic_visit(node)
            node.iter = wrapped(_LOOP, node.iter)
            return node

        def visit_Output(self, node):
            self.generic_visit(node)
            node.nodes = [
                wrapped(_OUTPUT, nodes.Const(c.data, lineno=c.lineno) if isinstance(c, nodes.TemplateData) else c)
                for c in node.nodes
            ]
            return node

        def visit_Concat(self, node):
            self.generic_visit(node)
            return wrapped(_CONCAT, nodes.List(node.nodes, lineno=node.lineno))

    @jinja2.pass_context
    def loop(context, iterable):
        budget = context.environment.budget
        for count, item in enumerate(iterable):
            if count % _LOOK_AT_THE_CLOCK == 0:
                budget.tick()
            yield item

    @jinja2.pass_context
    def output(context, value):
        context.environment.budget.produce(value)
        return value

    @jinja2.pass_context
    def concat(context, parts):
        context.environment.budget.tick()
        _refuse_text("'~'", sum(_text_size(part) for part in parts))
        return "".join(map(str, parts))

    class BoundedSandbox(SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.budget = _Budget()
            self.filters = {name: _filter_guard(lambda: self.budget, name, f) for name, f in self.filters.items()}
            self.filters.update({_LOOP: loop, _OUTPUT: output, _CONCAT: concat})

        def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
            if isinstance(source, str):
                source = self.parse(source, name, filename)
            source = Bounding().visit(source)
            source.set_environment(self)
            return super().compile(source, name, filename, raw, defer_init)

        def call_binop(self, context, operator, left, right):
            self.budget.tick()
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context, __obj, *args, **kwargs):  # jinja2's own signature
            __self.budget.tick()
            target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
            owner = getattr(target, "__self__", None)
            name = getattr(target, "__name__", "")
            if isinstance(owner, str | bytes):
                if name == "join" and args:
                    args = (_materialized(args[0]), *args[1:])
                _check_growth(_METHOD_GROWTH, name, owner, args, kwargs)
            elif target is generate_lorem_ipsum:
                try:
                    given = inspect.signature(target).bind(*args, **kwargs)
                except TypeError:
                    pass  # the call itself says what is wrong
                else:
                    given.apply_defaults()
                    n, longest = given.arguments["n"], given.arguments["max"]
                    if isinstance(n, int) and isinstance(longest, int):
                        _refuse_text("lipsum()", 16 * n * longest)  # words of up to about 15 letters
            result = super().call(__context, __obj, *args, **kwargs)
            _check_made(result, f"{name or 'the call'}()")
            if isinstance(owner, list | dict | set):  # append, extend, update...: the collection grew
                _check_made(owner, f"{name}()")
            return result

    class ConfinedLoader(jinja2.BaseLoader):
        """Template names relative to the stack folder; a file whose real path is outside
        every readable folder is refused (``..``, absolute names and symlinks alike)."""

        def __init__(self, root: Path, readable: tuple[Path, ...]):
            self.root, self.readable = root, readable

        def filename(self, name: str) -> str:
            return os.path.normpath(self.root / name)

        def get_source(self, environment, template):
            path = Path(self.filename(template))
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError, ValueError):
                raise jinja2.TemplateNotFound(template) from None
            if leads_outside(real, self.readable) is not None:
                raise _LeadsOutside(template, real)
            try:
                size, mtime = real.stat().st_size, real.stat().st_mtime_ns
                if not real.is_file():
                    raise jinja2.TemplateNotFound(template)
                if size > TEMPLATE_TEXT:
                    raise TemplateLimit(f"{template} is {size:,} bytes (at most {_mib(TEMPLATE_TEXT)})")
                text = real.read_bytes().decode("utf-8")
            except OSError:
                raise jinja2.TemplateNotFound(template) from None

            def uptodate() -> bool:
                try:
                    return real.stat().st_mtime_ns == mtime
                except OSError:
                    return False

            return text, str(path), uptodate

    return BoundedSandbox, ConfinedLoader


def _environment(root: Path, readable: tuple[Path, ...] | None = None):
    import jinja2

    sandbox, loader = _sandbox_classes()
    return sandbox(
        loader=loader(root, readable or readable_folders(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(env, stack: Stack, src: str, variables: dict, network: NetworkDecision) -> bytes:
    import jinja2

    context = {
        # Every env_file key and every var is a top-level name too ({{ GITEA_VERSION }}), vars winning.
        **stack.env,
        **variables,
        "vars": variables,
        "stack": {
            "name": stack.config.stack.name,
            "tag": stack.config.stack.tag,
            "network": network.mode,
            "registry": network.registry,
            "services": [{"name": s.name, "image": s.image} for s in stack.services],
        },
        "env": dict(os.environ),
    }
    env.budget = _Budget()  # each template (with its includes) has its own time and output
    try:
        content = env.get_template(src).render(context).encode("utf-8")
    except TemplateLimit as exc:
        raise InputError(
            f"template stopped: {exc}",
            where=where(src, _template_line(exc, env, src)),
            hint=f"a template may run {TEMPLATE_SECONDS:g} s and make {_mib(TEMPLATE_TEXT)} of text; make it do less",
        ) from None
    except _LeadsOutside as exc:
        included = "" if exc.name == src else f" (included from {src})"
        raise InputError(
            f"template {exc.name} leads outside the stack folder (to {exc.real}){included}",
            where=where(src, _template_line(exc, env, src)),
            hint="keep templates inside the stack folder, or list their folder in stack.allow_outside",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(
            f"template syntax error: {exc.message}", where=where(src, exc.lineno), hint="fix the template"
        ) from None
    except jinja2.TemplateNotFound as exc:
        if exc.name == src:
            raise InputError(
                f"template {src} not found", hint="fix templates.src (relative to the stack folder)"
            ) from None
        raise InputError(
            f"template {exc.name} not found (included from {src})",
            where=src,
            hint="fix the include (paths are relative to the stack folder)",
        ) from None
    except (jinja2.UndefinedError, jinja2.exceptions.SecurityError) as exc:
        kind = (
            "unsafe access in template"
            if isinstance(exc, jinja2.exceptions.SecurityError) or "unsafe" in str(exc)
            else "undefined variable"
        )
        raise InputError(
            f"{kind}: {exc}",
            where=where(src, _template_line(exc, env, src)),
            hint="templates see vars, stack, env, and each vars and env_file key as a name; "
            "define the name under vars or use a default filter",
        ) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"template is not UTF-8: {exc}", where=src, hint="save it as UTF-8") from None
    except Exception as exc:  # a filter or test raising inside the user's template
        raise InputError(
            f"template failed: {type(exc).__name__}: {exc}",
            where=where(src, _template_line(exc, env, src)),
            hint="fix the template",
        ) from None
    if len(content) > TEMPLATE_TEXT:
        raise InputError(
            f"template stopped: its output is {len(content):,} bytes (at most {_mib(TEMPLATE_TEXT)})",
            where=src,
            hint="make the output smaller",
        )
    return content


def _template_line(exc: BaseException, env, src: str) -> int | None:
    """jinja2 rewrites tracebacks so template frames carry the template's file and line."""
    filename = env.loader.filename(src)
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def unified_diff(spec: FileSpec, before: bytes | None) -> str:
    import difflib

    old = (before or b"").decode("utf-8", "replace").splitlines(keepends=True)
    new = spec.content.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, f"a/{spec.rel}" if before is not None else "/dev/null", f"b/{spec.rel}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def write(spec: FileSpec) -> None:
    """Atomically replace ``spec.dest``, reached from the stack folder one folder at a time.

    Each folder is opened relative to the one above it with ``O_NOFOLLOW`` (missing
    ones are created), and the temp file and the rename are relative to the last one:
    a folder swapped for a symlink since the plan, even in the middle of this write,
    fails the write instead of sending it elsewhere.  The destination itself may not
    be a symlink either.  Every failure is one ``ReconcileError`` line."""
    *folders, name = spec.dest.relative_to(spec.root).parts
    try:
        fd = os.open(spec.root, FOLDER_FLAGS | os.O_NOFOLLOW)
    except OSError as exc:
        raise ReconcileError(f"cannot write {spec.rel}: stack folder {spec.root}: {exc.strerror}") from None
    try:
        for depth, folder in enumerate(folders):
            child = _open_folder(fd, folder, spec.rel, "/".join(folders[: depth + 1]))
            os.close(fd)
            fd = child
        _opened(spec)
        try:
            if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise ReconcileError(
                    f"cannot write {spec.rel}: it is a symlink now", hint="remove the symlink, then plan again"
                )
        except FileNotFoundError:
            pass
        replace_in(fd, name, spec.content, spec.mode)
    except FileNotFoundError:  # relative to an open folder, only the folder itself can have gone
        raise ReconcileError(
            f"cannot write {spec.rel}: its folder was removed or replaced during the write", hint="plan again"
        ) from None
    except OSError as exc:
        raise ReconcileError(
            f"cannot write {spec.rel}: {exc.strerror or exc}", hint="check the folder, then plan again"
        ) from None
    finally:
        os.close(fd)


def _open_folder(parent: int, name: str, rel: str, shown: str) -> int:
    """``name`` in the open ``parent``, created if missing, never through a symlink."""
    try:
        os.mkdir(name, 0o777, dir_fd=parent)
    except FileExistsError:
        pass
    try:
        return os.open(name, FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    raise ReconcileError(
        f"cannot write {rel}: {shown} is {'a symlink' if link else 'not a folder'} now",
        hint="put the folder back, then plan again",
    )


def _opened(spec: FileSpec) -> None:
    """Called once the destination's folder is open, before the file is written: the window
    a write by path had between its check and its write.  Tests swap folders here."""
