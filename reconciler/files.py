"""Rendered and synced files: what each ``[[templates]]`` / ``[[files]]`` entry must write.

Templates render in jinja2's sandbox with ``StrictUndefined``: an undefined
name or an unsafe attribute (``''.__class__``) is an error naming the template
line, never a silent empty string.  Everything here is computed before
anything is written; :func:`write` is the one writer, used by apply.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .atomic import FOLDER_FLAGS, replace_in
from .errors import InputError, ReconcileError, where

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


def planned_files(stack: Stack) -> list[PlannedFile]:
    """Every file the entries write: globs expanded, destinations checked; nothing rendered yet."""
    cfg = stack.config
    planned: list[PlannedFile] = []
    for kind, entries in (("template", cfg.templates), ("file", cfg.files)):
        for index, item in enumerate(entries):
            key = f"{kind}s[{index}]"
            src_where = where(stack.rel(stack.path), _entry_line(stack.text, f"{kind}s", index, "src"), f"{key}.src")
            dest_where = where(stack.rel(stack.path), _entry_line(stack.text, f"{kind}s", index, "dest"), f"{key}.dest")
            for src in _sources(stack, item.src, src_where):
                src_rel = src.relative_to(stack.root).as_posix()
                folder = src.parent.relative_to(stack.root).as_posix()
                dest_text = item.dest.replace("{dir}", folder).replace("{name}", Path(src.name).stem)
                dest = _inside(stack, dest_text, dest_where)
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


def _sources(stack: Stack, src: str, shown: str) -> list[Path]:
    """The entry's source file, or every file its glob matches (in name order)."""
    if _GLOB.search(src):
        try:
            found = sorted(p for p in stack.root.glob(src) if p.is_file())
        except (NotImplementedError, ValueError) as exc:
            raise InputError(f"{src!r} is not a usable glob: {exc}", where=shown, hint="give a relative glob") from None
        if not found:
            raise InputError(
                f"{src!r} matches no file", where=shown, hint="fix the glob (relative to the stack folder)"
            )
        return found
    path = stack.root / src
    if not path.resolve().is_relative_to(stack.root):
        raise InputError(f"{src} is outside the stack folder", where=shown, hint="keep sources inside the stack folder")
    if not path.is_file():
        raise InputError(f"{src} is not a file", where=shown, hint="fix the path (relative to the stack folder)")
    return [Path(os.path.normpath(path))]


def desired_files(stack: Stack, network: NetworkDecision, planned: list[PlannedFile] | None = None) -> list[FileSpec]:
    """What each planned file must hold: templates rendered in memory, files read."""
    env = None
    specs: list[FileSpec] = []
    for entry in planned_files(stack) if planned is None else planned:
        if entry.kind == "template":
            if env is None:
                env = _environment(stack.root)
            content = render(env, stack, entry.src_rel, entry.item.vars, network)
        else:
            content = _read(entry.src, stack.rel(entry.src))
        mode = _mode(entry.item.mode, entry.dest, entry.src)
        specs.append(
            FileSpec(entry.kind, entry.src, entry.dest, entry.rel, content, mode, entry.key, stack.root.resolve())
        )
    return specs


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
    if not path.is_relative_to(root) or path == root:
        raise InputError(
            f"destination {dest} is outside the stack folder{' (through a symlink)' if '..' not in Path(dest).parts and not Path(dest).is_absolute() else ''}",
            where=shown,
            hint="give a path inside the stack folder",
        )
    if path.is_dir():
        raise InputError(f"destination {dest} is a folder", where=shown, hint="name the file to write")
    return path


def _mode(explicit: str | None, dest: Path, src: Path) -> int:
    """An explicit ``mode``; else the destination's current mode (kept); else the source's."""
    if explicit is not None:
        return int(explicit, 8)
    for path in (dest, src):
        try:
            return stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
    return 0o644


def _read(path: Path, shown: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {shown}: {exc}", hint="check the file") from None


def _environment(root: Path):
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(root)),
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
    try:
        return env.get_template(src).render(context).encode("utf-8")
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


def _template_line(exc: BaseException, env, src: str) -> int | None:
    """jinja2 rewrites tracebacks so template frames carry the template's file and line."""
    filename = str(Path(env.loader.searchpath[0]) / src)
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
