"""Compose files read the way ``docker compose -f a.yml -f b.yml`` reads them.

:func:`read_compose` returns, per service, what the stack needs: the
interpolated ``image:`` (a base image when the service has no ``build:``) and
the ``build:`` section (a service the stack builds), with the file and line
each came from.  PyYAML's node tree is walked instead of ``safe_load`` so every
value keeps its line number for messages and ``reconcile images``.  Compose's
loader (compose-go) has no Python port, so its rules for the keys we read are
written out here:

Files and paths
  - ``paths`` are merged in order.  The project directory is the first file's
    folder; relative paths in every one of them resolve against it.
  - Every file is read through ``read_text`` (it may hold a rendered template
    not yet on disk); nothing here stats or opens compose files otherwise.
  - A file may hold several YAML documents (``---``); each is merged like one
    more file.

Merging (later files, ``extends``)
  - ``image`` is replaced.  ``build: ./dir`` is ``build: {context: ./dir}``;
    ``build`` mappings merge key by key and ``args`` merge by name (list form
    and mapping form alike).  ``profiles`` are appended without duplicates, as
    compose-go does (``override/uncity.go``).  A null value overrides nothing.
  - ``!reset`` removes a value (or a whole service) set by earlier files,
    ``!override`` replaces it (or a whole service) instead of merging.

YAML
  - Merge keys are resolved: ``<<: *base`` and ``<<: [*a, *b]``; the mapping's
    own keys win, then the merged mappings in the order listed.
  - A key defined twice in one mapping is an error, as in compose.  An anchor
    defined again takes over from there on (YAML 1.2; PyYAML would refuse).

``extends``
  - ``extends: name`` takes a service of the same YAML document,
    ``extends: {service: x, file: other.yml}`` one of another file (relative to
    the declaring file's project directory).  Bases are resolved recursively,
    relative paths in another file's service resolve against that file's
    folder; a cycle is an error.

``include``
  - Top-level ``include`` entries are a path or ``{path: a | [a, b],
    project_directory: d}``; paths are relative to the including file's project
    directory.  An included project is read as a project of its own (its
    directory: ``project_directory`` or its first file's folder) and its
    services join the including file's.  A name defined by both, differently,
    is an error ("conflicts with imported resource"); an include cycle too.
    ``env_file`` of an entry is not read: every file is interpolated with
    ``env``.

Values
  - ``image``, build ``context``, ``dockerfile``, ``target``, ``args`` values,
    ``profiles``, ``extends`` and ``include`` paths are interpolated like
    compose (``$$`` is a literal ``$``) from ``env``.
  - ``args``: ``K=V`` and ``K: V``; a bare ``K`` (or ``K:`` with no value)
    takes ``env[K]`` and is left out when ``K`` is not set.
  - ``context`` defaults to the project directory; ``~`` is the home folder; a
    remote context (URL, ``git@``) and ``dockerfile_inline`` are refused where the
    build is used (``ComposeBuild.refused``): the stack builds from local folders,
    but reading base images needs no build section.

Profiles
  - ``profiles=None`` keeps every service (unlike compose, so base images of
    every profile are known); a list keeps services without ``profiles`` and
    those sharing one with it (``"*"`` keeps all).

Hostile input
  - Nesting deeper than :data:`MAX_DEPTH` (YAML levels while parsing; merge
    keys, ``extends`` and ``include`` while walking) and more than
    :data:`MAX_NODES` YAML nodes parsed plus visited per call are one-line
    errors.  Aliases share nodes and each merge, ``extends`` and ``include`` is
    resolved once, so an alias bomb costs its size in text, not its expansion.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, cast

import yaml

from .dockerfiles import ImageUse
from .envfile import interpolation_env, read_env_file  # noqa: F401 -- part of this module's API
from .errors import InputError, where
from .interpolation import LoneDollarError, SubstitutionError, substitute
from .refs import InvalidReference, parse
from .tree import read_regular

MAX_DEPTH = 100
MAX_NODES = 100_000  # at PyYAML's pure-Python speed, a few seconds at most

_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_REMOTE = ("https://", "http://", "git://", "ssh://", "github.com/", "git@")  # compose-go paths/context.go


@dataclass(frozen=True)
class ComposeBuild:
    context: Path  # absolute, resolved per the compose spec
    dockerfile: str | None  # as written, relative to context; None = "Dockerfile"
    target: str | None
    args: dict[str, str]
    file: Path  # where the service's `build:` key is (after merging: the last file that set it)
    line: int
    # "context" (remote) or "dockerfile" (dockerfile_inline) -> why the stack cannot build it as written:
    # raised by whoever builds it, so a compose file read only for its base images still reads.
    refused: dict[str, InputError] = field(default_factory=dict)


@dataclass(frozen=True)
class ComposeService:
    name: str
    image: ImageUse | None
    build: ComposeBuild | None
    profiles: tuple[str, ...]


def read_compose(
    paths: Sequence[Path],
    env: Mapping[str, str],
    *,
    profiles: list[str] | None = None,
    read_text: Callable[[Path], str] | None = None,
    shown_as: Callable[[Path], str] = str,
) -> dict[str, ComposeService]:
    """The services of ``paths`` merged like ``docker compose -f ... -f ...``, in order of first definition."""
    files = [_absolute(Path(p)) for p in paths]
    if not files:
        return {}
    reader = _Reader(env, read_text or _read_from_disk, shown_as)
    merged = reader.project(files, files[0].parent, including=(), at=None)
    services = {name: _service(name, d, env) for name, d in merged.items()}
    if profiles is None or "*" in profiles:
        return services
    return {n: s for n, s in services.items() if not s.profiles or set(s.profiles) & set(profiles)}


def images_without_build(services: Mapping[str, ComposeService]) -> list[ImageUse]:
    """The base images compose pulls: ``image:`` of services that have no ``build:``."""
    return [s.image for s in services.values() if s.image is not None and s.build is None]


def compose_images(
    paths: Path | Sequence[Path],
    env: Mapping[str, str],
    *,
    shown_as: str | Callable[[Path], str] = str,
    profiles: list[str] | None = None,
    read_text: Callable[[Path], str] | None = None,
) -> list[ImageUse]:
    """:func:`images_without_build` of :func:`read_compose`.  A string ``shown_as`` names the
    first file; other files are shown beside it."""
    files = [paths] if isinstance(paths, Path) else list(paths)
    show = _shown_beside(_absolute(files[0]), shown_as) if isinstance(shown_as, str) else shown_as
    return images_without_build(read_compose(files, env, profiles=profiles, read_text=read_text, shown_as=show))


def _read_from_disk(path: Path) -> str:
    return read_regular(path).decode("utf-8")


def _absolute(path: Path) -> Path:
    # Lexical, like compose-go's filepath.Join: no stat, no symlink resolution.
    return Path(os.path.abspath(path))


def _shown_beside(first: Path, label: str) -> Callable[[Path], str]:
    def show(path: Path) -> str:
        if path == first:
            return label
        try:
            return str(Path(label).parent / path.relative_to(first.parent))
        except ValueError:
            return str(path)

    return show


# -- Merging ---------------------------------------------------------------
#
# One service as one document states it (or several merged) is a dict with
# the keys we read: "image" (ImageUse), "build" (_Build), "profiles" (tuple).
# `!reset` and `!override` stay as markers through merges, so an override
# file's reset also removes what the files before it set; a project's
# result is stripped of them.

_RESET = object()


@dataclass(frozen=True)
class _Override:
    value: Any


@dataclass(frozen=True)
class _Refused:
    """A build value the stack cannot build from (remote context, dockerfile_inline)."""

    error: InputError


@dataclass(frozen=True)
class _Build:
    values: dict[str, Any]  # context (Path), dockerfile, target (str), args (dict[str, str | None])
    file: Path
    line: int


def _merge_service(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _combine(out.get(key), value, _JOIN.get(key))
    return out


def _merge_build(old: _Build, new: _Build) -> _Build:
    values = dict(old.values)
    for key, value in new.values.items():
        values[key] = _combine(values.get(key), value, _JOIN.get(key))
    return _Build(values, new.file, new.line)


def _combine(old: Any, new: Any, join: Callable[[Any, Any], Any] | None) -> Any:
    """``new`` over ``old``: replaced, or joined where compose merges (keeping old's ``!override``)."""
    if join is None or new is _RESET or isinstance(new, _Override):
        return new
    wrapped = isinstance(old, _Override)
    base = old.value if wrapped else old
    if base is None or base is _RESET:
        return new
    value = join(base, new)
    return _Override(value) if wrapped else value


_JOIN: dict[str, Callable[[Any, Any], Any]] = {
    "build": _merge_build,
    "args": lambda old, new: {**old, **new},
    "profiles": lambda old, new: tuple(dict.fromkeys(old + new)),
}


def _strip(value: Any) -> Any:
    """The value with `!reset`/`!override` markers applied for good (None = removed)."""
    if isinstance(value, _Override):
        value = value.value
    if value is _RESET:
        return None
    if isinstance(value, _Build):
        values = {k: _strip(v) for k, v in value.values.items()}
        if isinstance(values.get("args"), dict):
            values["args"] = {k: v for k, v in values["args"].items() if v is not _RESET}
        return _Build({k: v for k, v in values.items() if v is not None}, value.file, value.line)
    return value


def _stripped(service: dict) -> dict:
    return {k: v for k, v in ((k, _strip(v)) for k, v in service.items()) if v is not None}


def _comparable(service: dict) -> tuple:
    """What we read of a service, without where it was written: for include conflicts."""
    image, build = service.get("image"), service.get("build")
    return (
        image.ref if image else None,
        sorted((k, sorted(v.items()) if isinstance(v, dict) else str(v)) for k, v in build.values.items())
        if build
        else None,
        service.get("profiles", ()),
    )


def _service(name: str, service: dict, env: Mapping[str, str]) -> ComposeService:
    build = service.get("build")
    if build is not None:
        values = build.values
        args = {k: v if v is not None else env.get(k) for k, v in values.get("args", {}).items()}
        refused = {
            key: values[name].error
            for key, name in (("context", "context"), ("dockerfile", "dockerfile_inline"))
            if isinstance(values.get(name), _Refused)
        }
        build = ComposeBuild(
            # A refused context is never built from: whoever uses the build raises `refused` first.
            context=build.file.parent if "context" in refused else values["context"],
            dockerfile=values.get("dockerfile") or None,
            target=values.get("target") or None,
            args={k: v for k, v in args.items() if v is not None},
            file=build.file,
            line=build.line,
            refused=refused,
        )
    return ComposeService(name, service.get("image"), build, service.get("profiles", ()))


# -- Reading ---------------------------------------------------------------


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's composer recurses once per nesting level: bound it, and count nodes."""

    def __init__(self, text: str, on_node: Callable[[int], None], on_too_deep: Callable[[int], None]):
        super().__init__(text)
        self._depth = 0
        self._on_node = on_node
        self._on_too_deep = on_too_deep

    def compose_node(self, parent, index):
        event = self.peek_event()
        line = event.start_mark.line + 1
        self._on_node(line)
        if self._depth >= MAX_DEPTH:
            self._on_too_deep(line)
        if event.anchor is not None and not isinstance(event, yaml.AliasEvent):
            self.anchors.pop(event.anchor, None)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass
class _Document:
    """One YAML document of a compose file, read with a project directory for its relative paths."""

    file: Path
    base_dir: Path
    top: dict[str, tuple[yaml.Node, yaml.Node]]
    services: dict[str, tuple[yaml.Node, yaml.Node]]


@dataclass(frozen=True)
class _Extends:
    service: str
    file: Path | None
    line: int


class _Reader:
    def __init__(self, env: Mapping[str, str], read_text: Callable[[Path], str], shown_as: Callable[[Path], str]):
        self.env = env
        self.read_text = read_text
        self.shown_as = shown_as
        self.nodes = 0
        self.depth = 0
        self.parsed: dict[Path, list[yaml.Node]] = {}
        self.documents: dict[tuple[Path, Path], list[_Document]] = {}
        self.projects: dict[tuple[tuple[Path, ...], Path], dict[str, dict]] = {}
        self.resolved: dict[tuple[int, str], dict] = {}
        self.resolving: set[tuple[int, str]] = set()
        self.flat: dict[int, tuple[yaml.Node, dict]] = {}  # id(node) -> (node kept alive, its entries)
        self.flattening: set[int] = set()

    # Errors and limits

    def fail(
        self, what: str, file: Path, line: int | None, key: str | None = None, hint: str = "fix the compose file"
    ) -> NoReturn:
        raise InputError(what, where=where(self.shown_as(file), line, key), hint=hint)

    def spend(self, file: Path, line: int, count: int = 1) -> None:
        self.nodes += count
        if self.nodes > MAX_NODES:
            self.fail(
                f"more than {MAX_NODES:,} YAML nodes to read (an alias bomb?)",
                file,
                line,
                hint="compose files are never this large: check the file",
            )

    def nested(self, file: Path, line: int, what: str) -> _Nesting:
        return _Nesting(self, file, line, what)

    # Files

    def parse(self, file: Path, at: tuple[Path, int, str] | None) -> list[yaml.Node]:
        if file in self.parsed:
            return self.parsed[file]
        try:
            text = self.read_text(file)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if at is None:
                raise InputError(
                    f"cannot read compose file: {reason}", where=self.shown_as(file), hint="fix stack.compose"
                ) from None
            self.fail(f"cannot read {self.shown_as(file)}: {reason}", at[0], at[1], at[2], hint="fix the path")

        def too_deep(line: int) -> None:
            self.fail(f"YAML nested more than {MAX_DEPTH} levels deep", file, line)

        loader = None
        try:
            loader = _BoundedLoader(text, lambda line: self.spend(file, line), too_deep)  # checks characters
            docs: list[yaml.Node] = []
            while loader.check_node():
                docs.append(cast(yaml.Node, loader.get_node()))  # check_node(): there is one
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]  # ReaderError has no mark
            self.fail(
                f"not valid YAML: {problem}",
                file,
                mark.line + 1 if mark else None,
                hint="fix the syntax",
            )
        finally:
            if loader is not None:
                loader.dispose()
        self.parsed[file] = docs
        return docs

    def read_documents(self, file: Path, base_dir: Path, at: tuple[Path, int, str] | None) -> list[_Document]:
        key = (file, base_dir)
        if key in self.documents:
            return self.documents[key]
        documents = []
        for root in self.parse(file, at):
            if isinstance(root, yaml.ScalarNode) and root.tag == _NULL:
                continue
            if not isinstance(root, yaml.MappingNode):
                self.fail("the top level must be a mapping", file, _line(root))
            top = self.entries(root, file)
            services: dict[str, tuple[yaml.Node, yaml.Node]] = {}
            if "services" in top:
                node = top["services"][1]
                if isinstance(node, yaml.MappingNode):
                    services = self.entries(node, file)
                elif node.tag != _NULL:
                    self.fail("`services` must be a mapping", file, _line(node))
            documents.append(_Document(file, base_dir, top, services))
        self.documents[key] = documents
        return documents

    # Projects

    def project(
        self, files: list[Path], project_dir: Path, including: tuple[Path, ...], at: tuple[Path, int, str] | None
    ) -> dict[str, dict]:
        key = (tuple(files), project_dir)
        if key in self.projects:
            return self.projects[key]
        merged: dict[str, dict] = {}
        for file in files:
            for doc in self.read_documents(file, project_dir, at):
                reset = {name for name, (_, node) in doc.services.items() if node.tag == "!reset"}
                # compose-go honours `!override` at any path: on a service, the earlier files' definition goes.
                replaced = {name for name, (_, node) in doc.services.items() if node.tag == "!override"}
                for name in reset:
                    merged.pop(name, None)
                own = {name: self.resolve(doc, name) for name in doc.services if name not in reset}
                for paths, directory, line in self.includes(doc):
                    for path in paths:
                        if path in including or path == file:
                            chain = " -> ".join(self.shown_as(p) for p in (*including, file, path))
                            self.fail(f"include cycle: {chain}", file, line, "include", hint="remove one include")
                    with self.nested(file, line, "include"):
                        imported = self.project(paths, directory, (*including, file), (file, line, "include"))
                    for name, service in imported.items():
                        if name in own and _comparable(_stripped(own[name])) != _comparable(service):
                            self.fail(
                                f"services.{name} conflicts with imported resource (also defined in "
                                f"{self.shown_as(paths[0])})",
                                file,
                                line,
                                "include",
                                hint="rename one of the services or remove the include",
                            )
                        own.setdefault(name, service)
                for name, service in own.items():
                    merged[name] = service if name in replaced else _merge_service(merged.get(name, {}), service)
        result = {}
        for name, service in merged.items():
            service = _stripped(service)
            build = service.get("build")
            if build is not None and "context" not in build.values:
                service["build"] = _Build({**build.values, "context": project_dir}, build.file, build.line)
            result[name] = service
        self.projects[key] = result
        return result

    def includes(self, doc: _Document) -> list[tuple[list[Path], Path, int]]:
        if "include" not in doc.top:
            return []
        node = doc.top["include"][1]
        if node.tag == _NULL:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail("`include` must be a list", doc.file, _line(node), "include")
        found = []
        for item in node.value:
            self.spend(doc.file, _line(item))
            directory = None
            if isinstance(item, yaml.MappingNode):
                entry = self.entries(item, doc.file)
                if "path" not in entry:
                    self.fail("an include entry needs `path`", doc.file, _line(item), "include")
                path_node = entry["path"][1]
                items = path_node.value if isinstance(path_node, yaml.SequenceNode) else [path_node]
                paths = [self.text(p, doc.file, "include.path") for p in items]
                if "project_directory" in entry:
                    directory = self.text(entry["project_directory"][1], doc.file, "include.project_directory")
            else:
                paths = [self.text(item, doc.file, "include")]
            if not paths or any(not p for p in paths):
                self.fail("an include path is empty", doc.file, _line(item), "include")
            absolute = [_join(doc.base_dir, cast(str, p)) for p in paths]  # none is empty, checked above
            found.append((absolute, _join(doc.base_dir, directory) if directory else absolute[0].parent, _line(item)))
        return found

    # Services

    def resolve(self, doc: _Document, name: str) -> dict:
        """The service as ``doc`` states it, on top of what it extends."""
        key = (id(doc), name)
        if key in self.resolved:
            return self.resolved[key]
        key_node, node = doc.services[name]
        if key in self.resolving:
            self.fail(f"services.{name} extends itself through a cycle", doc.file, _line(key_node), "extends")
        self.resolving.add(key)
        try:
            own, extends = self.read_service(doc, name, node)
            service = own
            if extends is not None:
                with self.nested(doc.file, extends.line, "extends"):
                    base = self.extended(doc, name, extends)
                service = _merge_service(base, own)
        finally:
            self.resolving.discard(key)
        self.resolved[key] = service
        return service

    def extended(self, doc: _Document, name: str, extends: _Extends) -> dict:
        key = f"services.{name}.extends"
        if extends.file is None:
            if extends.service not in doc.services:
                self.fail(f"service {_short(extends.service)} to extend is not defined", doc.file, extends.line, key)
            return self.resolve(doc, extends.service)
        # compose-go resolves another file's relative paths against that file's folder.
        docs = self.read_documents(extends.file, extends.file.parent, (doc.file, extends.line, key))
        found = [d for d in docs if extends.service in d.services]
        if not found:
            shown = self.shown_as(extends.file)
            self.fail(
                f"service {_short(extends.service)} to extend is not defined in {shown}", doc.file, extends.line, key
            )
        base: dict = {}
        for other in found:
            base = _merge_service(base, self.resolve(other, extends.service))
        return base

    def read_service(self, doc: _Document, name: str, node: yaml.Node) -> tuple[dict, _Extends | None]:
        file, prefix = doc.file, f"services.{name}"
        if not isinstance(node, yaml.MappingNode):
            self.fail(f"{prefix} must be a mapping", file, _line(node), hint="fix the compose file")
        entries = self.entries(node, file)
        service: dict = {}
        for key, read in (("image", self.image), ("build", self.build), ("profiles", self.profiles)):
            if key not in entries:
                continue
            key_node, value_node = entries[key]
            if value_node.tag == "!reset":
                service[key] = _RESET
                continue
            value = read(doc, f"{prefix}.{key}", key_node, value_node)
            if value is not None:
                service[key] = _Override(value) if value_node.tag == "!override" else value
        extends = self.extends(doc, f"{prefix}.extends", entries["extends"][1]) if "extends" in entries else None
        return service, extends

    def image(self, doc: _Document, key: str, key_node: yaml.Node, node: yaml.Node) -> ImageUse | None:
        result = self.substitution(node, doc.file, key, what="a string")
        if result is None:
            return None
        try:
            return ImageUse(parse(result.value), doc.file, _line(node))
        except InvalidReference as exc:
            hint = "fix the image"
            if result.undefined:
                hint = f"{', '.join(result.undefined)} is not set: set it in the environment or the env file, or give a default"
            self.fail(str(exc), doc.file, _line(node), key, hint=hint)

    def build(self, doc: _Document, key: str, key_node: yaml.Node, node: yaml.Node) -> _Build | None:
        file, line = doc.file, _line(key_node)
        if isinstance(node, yaml.ScalarNode):
            context = self.text(node, file, key)
            return None if context is None else _Build({"context": self.context(doc, context, node, key)}, file, line)
        if not isinstance(node, yaml.MappingNode):
            self.fail(f"{key} must be a path or a mapping", file, _line(node))
        entries = self.entries(node, file)
        values: dict[str, Any] = {}
        if "dockerfile_inline" in entries:
            inline_key, inline = entries["dockerfile_inline"]
            if inline.tag == "!reset":
                values["dockerfile_inline"] = _RESET
            else:
                values["dockerfile_inline"] = _Refused(
                    InputError(
                        "dockerfile_inline is not supported",
                        where=where(self.shown_as(file), _line(inline_key), key),
                        hint="write the Dockerfile to a file and set `dockerfile`",
                    )
                )
        value: dict[str, str | None] | str | Path | _Refused | None
        for name in ("context", "dockerfile", "target", "args"):
            if name not in entries:
                continue
            value_node = entries[name][1]
            if value_node.tag == "!reset":
                values[name] = _RESET
                continue
            if name == "args":
                value = self.args(doc, f"{key}.args", value_node)
            else:
                value = self.text(value_node, file, f"{key}.{name}")
                if name == "context" and value is not None:
                    value = self.context(doc, value, value_node, f"{key}.context")
            if value is not None:
                values[name] = _Override(value) if value_node.tag == "!override" else value
        return _Build(values, file, line)

    def context(self, doc: _Document, value: str, node: yaml.Node, key: str) -> Path | _Refused:
        if value.startswith(_REMOTE) or "://" in value:
            return _Refused(
                InputError(
                    f"remote build context {_short(value)} is not supported",
                    where=where(self.shown_as(doc.file), _line(node), key),
                    hint="use a local folder as context",
                )
            )
        return _join(doc.base_dir, value or ".")

    def args(self, doc: _Document, key: str, node: yaml.Node) -> dict[str, str | None] | None:
        file = doc.file
        if node.tag == _NULL:
            return None
        args: dict[str, str | None] = {}
        if isinstance(node, yaml.MappingNode):
            for name, (_, value_node) in self.entries(node, file).items():
                if value_node.tag == "!reset":
                    args[name] = _RESET  # type: ignore[assignment]
                else:
                    args[name] = self.text(value_node, file, f"{key}.{name}")
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                self.spend(file, _line(item))
                text = self.text(item, file, key)
                if text is None:
                    continue
                name, sep, value = text.partition("=")
                if not name:
                    self.fail(f"build arg {_short(text)} has no name", file, _line(item), key)
                args[name] = value if sep else None
        else:
            self.fail(f"{key} must be a mapping or a list", file, _line(node))
        return args

    def profiles(self, doc: _Document, key: str, key_node: yaml.Node, node: yaml.Node) -> tuple[str, ...] | None:
        if node.tag == _NULL:
            return None
        if not isinstance(node, yaml.SequenceNode):
            self.fail(f"{key} must be a list", doc.file, _line(node))
        names = []
        for item in node.value:
            self.spend(doc.file, _line(item))
            name = self.text(item, doc.file, key)
            if name:
                names.append(name)
        return tuple(dict.fromkeys(names))

    def extends(self, doc: _Document, key: str, node: yaml.Node) -> _Extends | None:
        file = None
        if isinstance(node, yaml.MappingNode):
            entries = self.entries(node, doc.file)
            if "service" not in entries:
                self.fail(f"{key} needs `service`", doc.file, _line(node))
            service = self.text(entries["service"][1], doc.file, f"{key}.service")
            if "file" in entries:
                path = self.text(entries["file"][1], doc.file, f"{key}.file")
                file = _join(doc.base_dir, path) if path else None
        else:
            service = self.text(node, doc.file, key)
        if not service:
            self.fail(f"{key} names no service", doc.file, _line(node))
        return _Extends(service, file, _line(node))

    # Nodes

    def entries(self, node: yaml.MappingNode, file: Path) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's keys with merge keys applied: its own keys win, then merged mappings in order."""
        cached = self.flat.get(id(node))
        if cached is not None:
            return cached[1]
        if id(node) in self.flattening:
            self.fail("a merge key (<<) includes its own mapping", file, _line(node))
        self.flattening.add(id(node))
        try:
            own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
            merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
            seen_merge: int | None = None
            for key_node, value_node in node.value:
                self.spend(file, _line(key_node))
                if key_node.tag == _MERGE:
                    if seen_merge is not None:
                        self.fail(f'mapping key "<<" already defined at line {seen_merge}', file, _line(key_node))
                    seen_merge = _line(key_node)
                    merged = self.merged(value_node, file)
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self.fail("mapping keys must be strings", file, _line(key_node))
                name = key_node.value
                if name in own:
                    self.fail(
                        f"mapping key {name!r} already defined at line {_line(own[name][0])}", file, _line(key_node)
                    )
                own[name] = (key_node, value_node)
        finally:
            self.flattening.discard(id(node))
        result = {**merged, **own}
        self.flat[id(node)] = (node, result)
        return result

    def merged(self, node: yaml.Node, file: Path) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for source in reversed(sources):  # the first listed wins
            if not isinstance(source, yaml.MappingNode):
                self.fail("a merge key (<<) takes a mapping or a list of mappings", file, _line(source))
            with self.nested(file, _line(source), "merge keys"):
                entries = self.entries(source, file)
            self.spend(file, _line(source), len(entries))
            merged.update(entries)
        return merged

    def substitution(self, node: yaml.Node, file: Path, key: str, what: str = "a string"):
        if not isinstance(node, yaml.ScalarNode):
            self.fail(f"{key} must be {what}", file, _line(node))
        if node.tag == _NULL:
            return None
        try:
            return substitute(node.value, self.env, escape="$")
        except LoneDollarError as exc:
            self.fail(str(exc), file, _line(node), key, hint="write $$ for a literal $, as compose requires")
        except SubstitutionError as exc:
            self.fail(str(exc), file, _line(node), key, hint="set the variable in the environment or the env file")

    def text(self, node: yaml.Node, file: Path, key: str) -> str | None:
        result = self.substitution(node, file, key)
        return None if result is None else result.value


class _Nesting:
    """Counts levels of merge keys, ``extends`` and ``include`` followed, so none recurses without bound."""

    def __init__(self, reader: _Reader, file: Path, line: int, what: str):
        self.reader, self.file, self.line, self.what = reader, file, line, what

    def __enter__(self) -> None:
        self.reader.depth += 1
        if self.reader.depth > MAX_DEPTH:
            self.reader.fail(f"{self.what} nested more than {MAX_DEPTH} levels deep", self.file, self.line)

    def __exit__(self, *exc) -> None:
        self.reader.depth -= 1


def _short(value: str) -> str:
    return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _join(base: Path, path: str) -> Path:
    if path == "~" or path.startswith("~/"):
        return Path(os.path.normpath(str(Path.home()) + path[1:]))
    return Path(os.path.normpath(os.path.join(base, path)))
