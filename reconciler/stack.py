"""The stack file: ``stack.toml`` read, validated and resolved.

Pydantic does the validation (and gives ``reconcile schema`` its JSON Schema);
this module turns its errors into one line naming the file, line and key, and
resolves the relative paths and the service glob against the stack folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import json
import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .errors import InputError, where
from .refs import PATH_RE, InvalidReference, parse, parse_prefix
from .tree import leads_outside, readable_folders

STACK_FILE = "stack.toml"
STACK_TAG_ARG = "STACK_TAG"  # the build arg every service build receives: the tag being built
DEFAULT_EXTERNAL_PROBES = ["https://registry-1.docker.io/v2/"]
_SERVICE_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StackSection(_Strict):
    name: str = Field(description="Stack name; labels built images.")
    tag: str = Field("latest", description="Tag of the service images.")
    image_prefix: str = Field("", description="Service image = image_prefix + service name.")
    services: str | None = Field(
        None, description="Glob of Dockerfiles; each match is a service named after its folder."
    )
    context: str | None = Field(
        None,
        description="Build context of discovered services, relative to the stack folder (`.`: the stack folder); "
        "their Dockerfile path is then taken relative to it [default: each Dockerfile's folder].",
    )
    exclude: list[str] = Field(default_factory=list, description="Discovered services not to build, by name.")
    build_args: dict[str, str] = Field(
        default_factory=dict, description="Build args of every service, under each service's own build_args."
    )
    env_build_args: bool = Field(
        False, description="Pass every env_file key as a build arg (lowest precedence; only declared ARGs are used)."
    )
    secret_build_args: list[str] = Field(
        default_factory=list,
        description="Build args whose values are secret, besides names matching *PASSWORD*, *SECRET*, *TOKEN*, "
        "*_KEY: redacted in every output and the cache, hashed with a per-host key in labels.",
    )
    compose: list[str] = Field(
        default_factory=list, description="Compose files whose `image:` entries are base images."
    )
    compose_builds: bool = Field(False, description="Compose services with a `build:` section are services to build.")
    compose_profiles: list[str] | None = Field(
        None, description="Compose profiles to read [default: every service, whatever its profiles]."
    )
    env_file: str | list[str] | None = Field(
        None,
        description="Env file for compose interpolation, template variables and env_build_args; "
        "a list: the first that exists.",
    )
    images: list[str] = Field(default_factory=list, description="Extra base images.")
    build_network: str | None = Field(
        None, description="Network of RUN steps (`none`, `host`, or a network name) [default: the daemon's]."
    )
    allow_outside: list[str] = Field(
        default_factory=list,
        description="Folders outside the stack folder (relative to it) that sources, included templates, "
        "Dockerfiles, build contexts and compose files (with what they include or extend) may be read from; "
        "anything else leading out is an error.",
    )
    platform: str | None = Field(
        None,
        description="Platform of every pull and build (`linux/amd64`, `linux/arm64`), under each service's own; "
        "part of the inputs hash; a local image of another platform is drift [default: the daemon's].",
    )
    role: Literal["builder", "node"] = Field(
        "builder",
        description="`builder` builds the service images; `node` builds nothing and pulls each one from the "
        "internal registry as <registry>/<image>:<tag>, tagged <image>:<tag> and aliased like a base image.",
    )
    push: bool = Field(
        False,
        description="Builders: every service image must also be in the internal registry as "
        "<registry>/<image>:<tag>, the same manifest (pushed when missing or different).",
    )
    prune: bool = Field(
        False,
        description="Untag or remove what this stack made and no longer declares: its service images (by the "
        "io.reconcile.stack label) under other tags, and the alias tags it created for base images it no longer "
        "uses. An image a container uses is kept.",
    )

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str | None) -> str | None:
        return _platform(value)


def _platform(value: str | None) -> str | None:
    from .platforms import normalize

    if value is None:
        return None
    found = normalize(value)
    if found is None:
        raise ValueError(f"{value[:60]!r} is not a platform: use OS/ARCH[/VARIANT], like linux/amd64")
    return found


class NetworkSection(_Strict):
    mode: Literal["auto", "internal", "external"] = "auto"
    internal_registry: str = Field(
        "aiharbor.msxf.local/aihpc", description="Harbor registry and project that mirrors Docker Hub."
    )
    alias_prefix: str = Field("localhost", description="Prefix of the alias every base image also gets.")
    probe_timeout: float = Field(2.0, gt=0, le=60, description="Seconds per probe.")
    stall_timeout: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds a pull may go without progress (and a --refresh-remote digest check without an "
        "answer) before it fails; a stalled pull is retried like any failed one.",
    )
    external_probes: list[str] | None = Field(
        None, description="URLs; any HTTP answer means Docker Hub is reachable. Absent: Docker Hub's /v2/."
    )
    internal_probes: list[str] | None = Field(
        None, description="URLs; absent: the internal registry's /v2/ over https, then http."
    )
    mirror: bool = Field(
        False,
        description="External networks: every base image must also be in the internal registry at the name an "
        "internal network pulls (harbor_paths included), the same manifest (pulled, tagged and pushed when missing "
        "or different). No effect on an internal network.",
    )
    harbor_paths: dict[str, str] = Field(
        default_factory=dict,
        description="Base image repository -> its path under internal_registry, for an existing Harbor layout "
        '(`"quay.io/argoproj/argocd" = "argocd"`); unmapped images use the path without the registry host. '
        "Internal mode only.",
    )

    @field_validator("internal_registry", "alias_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            return parse_prefix(value)
        except InvalidReference as exc:
            raise ValueError(str(exc)) from None

    @field_validator("external_probes", "internal_probes")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        for url in value or []:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"probe {url!r} must be an http:// or https:// URL")
        return value

    @field_validator("harbor_paths", mode="before")
    @classmethod
    def _harbor_paths(cls, value: Any) -> Any:
        """Keys normalized to the canonical repository (``redis`` is ``docker.io/library/redis``),
        so two spellings of one image are one key."""
        if not isinstance(value, dict):
            return value  # pydantic's own type error says what is wrong
        paths: dict[str, str] = {}
        spelled: dict[str, str] = {}
        problems: list[InitErrorDetails] = []

        def problem(key: str, path: Any, text: str) -> None:
            # Raised as a ValidationError so the location names the key (network.harbor_paths."quay.io/x"):
            # a ValueError's location stops at the field. Its text goes in as context, braces and all.
            error = PydanticCustomError("harbor_path", "{problem}", {"problem": text})
            toml_key = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)  # as a dotted key spells it
            problems.append(InitErrorDetails(type=error, loc=(toml_key,), input=path))

        for key, path in value.items():
            try:
                repository = parse(key, default_tag=False)
            except InvalidReference as exc:
                problem(key, path, f"the key is not an image repository: {exc}")
                continue
            if repository.tag or repository.digest:
                problem(key, path, "the key must be a repository without tag or digest: its path serves every tag")
            elif repository.name in spelled:
                problem(key, path, f"the same repository as {spelled[repository.name]!r}; keep one of them")
            elif not isinstance(path, str) or not PATH_RE.fullmatch(path):
                shown = repr(path) if len(repr(path)) <= 80 else repr(path)[:77] + "..."
                problem(
                    key,
                    path,
                    f"{shown} is not a repository path under the internal registry: "
                    "use lower-case components joined by /, like library/redis",
                )
            else:
                spelled[repository.name] = key
                paths[repository.name] = path
        if problems:
            raise ValidationError.from_exception_data("harbor_paths", problems)
        return paths


class ServiceSection(_Strict):
    context: str | None = Field(None, description="Build context, relative to the stack folder.")
    dockerfile: str = Field("Dockerfile", description="Relative to the context.")
    target: str | None = Field(None, description="Build stage.")
    build_args: dict[str, str] = Field(default_factory=dict)
    image: str | None = Field(None, description="Image name instead of image_prefix + service name.")
    platform: str | None = Field(None, description="Platform of its build (and of its pull on a node).")

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str | None) -> str | None:
        return _platform(value)


class _FileEntry(_Strict):
    src: str = Field(description="Relative to the stack folder; may be a glob (each match is one file).")
    dest: str = Field(
        description="Relative to the stack folder; must stay inside it. `{dir}`: the matched source's folder "
        "(relative to the stack folder), `{name}`: its file name without the last suffix."
    )
    mode: str | None = Field(
        None, pattern=r"^0?[0-7]{3,4}$", description="Octal file mode [default: the destination's, else the source's]."
    )


class TemplateSection(_FileEntry):
    """A jinja2 template rendered to a file (sandboxed, undefined names are errors)."""

    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="Available to the template as `vars`, and each key as a top-level name (over env_file keys).",
    )


class FileSection(_FileEntry):
    """A file copied as is."""


class StackFile(_Strict):
    """The whole ``stack.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="reconcile stack file")
    stack: StackSection
    network: NetworkSection = NetworkSection()
    services: dict[str, ServiceSection] = Field(default_factory=dict)
    templates: list[TemplateSection] = Field(default_factory=list)
    files: list[FileSection] = Field(default_factory=list)


class Service(BaseModel):
    """A service resolved against the stack folder."""

    model_config = ConfigDict(frozen=True)
    name: str
    context: Path
    dockerfile: Path
    target: str | None = None
    build_args: dict[str, str] = {}
    image: str
    platform: str | None = None  # its own, else the stack's; None: the daemon's
    also: tuple[str, ...] = ()  # compose services building the same image with the same definition
    origin: str = ""  # where it is defined, for messages


class Stack(BaseModel):
    """A loaded stack: the validated file plus everything resolved from it."""

    model_config = ConfigDict(frozen=True)
    path: Path
    root: Path
    config: StackFile
    services: list[Service] = []
    text: str = ""  # the stack file, for the line numbers of messages
    env: dict[str, str] = {}  # the env file's values
    env_path: Path | None = None  # the env file read (the first of env_file that exists)
    cli_tag: str | None = None  # --tag: replaces every service image's tag, compose's included

    def rel(self, path: Path) -> str:
        """A path as users see it in messages: relative to the stack folder when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def where(self, *loc: str) -> str:
        """``stack.toml:LINE: key`` for a key of the stack file."""
        return where(self.rel(self.path), locate(self.text, list(loc)), ".".join(loc))


def find_stack_file(path: str | os.PathLike | None) -> Path:
    """``--stack`` / ``RECONCILE_STACK`` / ``./stack.toml``: a file, or a folder holding one."""
    chosen = Path(path or os.environ.get("RECONCILE_STACK") or STACK_FILE)
    if chosen.is_dir():
        chosen = chosen / STACK_FILE
    if not chosen.is_file():
        raise InputError(
            f"stack file {chosen} not found",
            hint="pass --stack PATH (a stack.toml or the folder holding it) or set RECONCILE_STACK",
        )
    return chosen.resolve()


_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def load(path: str | os.PathLike | None = None, *, tag: str | None = None) -> Stack:
    """Read the stack file and resolve its services against the files on disk.

    The pipeline resolves against the stack folder as apply will leave it
    (:func:`read`, then templates, then :func:`resolve`); this is the plain case."""
    from .tree import StackTree

    stack = read(path, tag=tag)
    compose = None
    if stack.config.stack.compose_builds and stack.config.stack.compose:
        compose = read_compose(stack, StackTree(stack.root))
    return resolve(stack, StackTree(stack.root), compose)


def read(path: str | os.PathLike | None = None, *, tag: str | None = None) -> Stack:
    """Read and validate the stack file and its env file; ``tag`` (``--tag``) replaces ``stack.tag``."""
    if tag is not None and not _TAG.fullmatch(tag):
        raise InputError(
            f"tag {tag[:200]!r} is not a valid image tag", where="--tag", hint="use letters, digits, _ . - (up to 128)"
        )
    stack_path = find_stack_file(path)
    try:
        text = stack_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the stack file: {exc}", where=str(stack_path), hint="check the file") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise InputError(
            f"not valid TOML: {str(exc).split(' (at')[0]}",
            where=where(stack_path, int(line.group(1)) if line else None),
            hint="fix the syntax",
        ) from None
    try:
        config = StackFile.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc, stack_path, text) from None
    if tag is not None:
        config = config.model_copy(update={"stack": config.stack.model_copy(update={"tag": tag})})
    stack = Stack(path=stack_path, root=stack_path.parent, config=config, text=text, cli_tag=tag)
    env_path = _env_file(stack)
    if env_path is None:
        return stack
    from .envfile import read_env_file

    env = read_env_file(env_path, stack.rel(env_path))
    return stack.model_copy(update={"env": env, "env_path": env_path})


def _env_file(stack: Stack) -> Path | None:
    """The first ``env_file`` that exists; none existing is an error naming them all."""
    names = stack.config.stack.env_file
    if names is None:
        return None
    names = [names] if isinstance(names, str) else names
    for name in names:
        path = stack.root / name
        if path.is_dir():
            raise InputError(
                f"env file {name!r} is a folder", where=stack.where("stack", "env_file"), hint="name a file"
            )
        if path.is_file():
            return path
    if not names:
        return None
    shown = ", ".join(repr(n) for n in names)
    raise InputError(
        f"env file {shown} not found" if len(names) == 1 else f"none of the env files {shown} exists",
        where=stack.where("stack", "env_file"),
        hint="create one (build.sh copied .env.example to .env) or fix stack.env_file",
    )


def read_compose(stack: Stack, tree) -> dict:
    """The stack's compose files, merged as compose merges them, read through ``tree``."""
    from .compose import read_compose as read_files

    cfg = stack.config.stack
    readable = readable_folders(stack.root, cfg.allow_outside)

    def confined(path: Path) -> str:
        # compose files, and what they include or extend, are stack files like any other
        if path in tree.planned:
            return tree.read_text(path)
        if (real := leads_outside(path, readable)) is not None:
            through = f" (through a symlink, to {real})" if real != Path(os.path.abspath(path)) else ""
            raise OSError(
                errno.EACCES, f"it is outside the stack folder{through}; list its folder in stack.allow_outside"
            )
        return tree.read_text(Path(os.path.realpath(path)))  # the path checked, not one swapped since

    return read_files(
        [stack.root / name for name in cfg.compose],
        {**stack.env, **os.environ},  # compose's precedence: the shell environment wins
        profiles=cfg.compose_profiles,
        read_text=confined,
        shown_as=stack.rel,
    )


def _validation_error(exc: ValidationError, path: Path, text: str) -> InputError:
    """Every problem of the file, one line each: unknown keys first (a misspelled key also
    makes the key it meant missing), then wrong values, then missing keys."""
    order = {"extra_forbidden": 0, "missing": 2}
    errors = sorted(exc.errors(), key=lambda e: order.get(e["type"], 1))
    problems = [_problem(err, path, text) for err in errors]
    first = problems[0]
    first.more = [str(p) for p in problems[1:]]
    return first


def _problem(err, path: Path, text: str) -> InputError:
    loc = [str(part) for part in err["loc"]]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(loc[-1], _fields_at(loc[:-1]), n=1)
        what = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        hint = "remove it or fix its spelling (see `reconcile schema`)"
    elif err["type"] == "missing":
        what, hint = f"missing key {key!r}", "add it"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        # The value at fault, unless the message names it itself (harbor_paths checks keys and values).
        plain = isinstance(value, str | int | float | bool) and err["type"] != "harbor_path"
        shown = f" = {value!r}"[:200] if plain else ""
        what, hint = f"{key}{shown}: {msg}", "fix the value (see `reconcile schema`)"
    return InputError(what, where=where(path, locate(text, loc)), hint=hint)


def _fields_at(loc: list[str]) -> list[str]:
    """The keys allowed where ``loc`` points (for "did you mean")."""
    model: Any = StackFile
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            continue  # a dict key (services.NAME) or a list index (templates.0)
        model = field.annotation
        for arg in typing.get_args(model):  # dict[str, ServiceSection], list[TemplateSection], X | None
            if hasattr(arg, "model_fields"):
                model = arg
    return list(getattr(model, "model_fields", {}))


def locate(text: str, loc: list[str]) -> int | None:
    """Best-effort line of a key in a TOML text (tomllib keeps no positions).

    Looks for the deepest ``[table]`` header that is a prefix of ``loc`` and
    then for ``key =`` below it; falls back to the header's line.
    """
    lines = text.splitlines()
    header_line, depth = None, 0
    for n in range(len(loc), 0, -1):
        header = ".".join(loc[:n])
        for i, line in enumerate(lines):
            if re.fullmatch(rf"\s*\[\s*{re.escape(header)}\s*\]\s*(#.*)?", line):
                header_line, depth = i, n
                break
        if header_line is not None:
            break
    if depth < len(loc):
        key = loc[depth]
        start = header_line + 1 if header_line is not None else 0
        for i in range(start, len(lines)):
            if re.match(r"\s*\[", lines[i]):  # the next table starts: the key is not here
                break
            if re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", lines[i]):
                return i + 1
    return header_line + 1 if header_line is not None else None


# Build args BuildKit consumes without an ARG instruction: the proxies (kept out of the build cache).
PROXY_ARGS = frozenset(
    name
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (proxy, proxy.lower())
)
PREDEFINED_ARGS = PROXY_ARGS


def resolve(stack: Stack, tree, compose: dict | None = None, *, partial: bool = False) -> Stack:
    """The services, merged from three layers, each key by key over the one before:
    Dockerfiles found by ``stack.services`` (seen through ``tree``: planned files
    count), compose ``build:`` sections (with ``compose_builds``), ``[services.X]``.

    ``partial``: the compose files are not read yet (templates are rendered first):
    leave out what only they can complete instead of reporting it."""
    cfg = stack.config.stack
    layers: dict[str, dict] = {}
    if cfg.services:
        _discover(stack, tree, layers)
    for name, service in (compose or {}).items():
        if service.build is None:
            continue
        build = service.build
        layer = layers.setdefault(name, {})
        layer.update(
            context=build.context,
            dockerfile=build.dockerfile or "Dockerfile",  # relative to the context, as compose reads it
            dockerfile_from="compose",
            target=build.target,
            args=dict(build.args),
            origin=where(stack.rel(build.file), build.line, f"services.{name}.build"),
            refused=dict(build.refused),  # a remote context, dockerfile_inline: an error unless replaced below
        )
        if service.image is not None:
            layer["image"] = service.image.ref
    for name, explicit in stack.config.services.items():
        layer = layers.setdefault(name, {"origin": stack.where("services", name)})
        given = explicit.model_fields_set
        for key in given & {"context", "dockerfile"}:  # what compose refused is replaced: no longer an error
            layer.get("refused", {}).pop(key, None)
        if "context" in given:
            assert explicit.context is not None  # TOML has no null: a context given is a string
            layer["context"] = (stack.root / explicit.context).resolve()
            # Key by key: a compose dockerfile stays (relative to the new context); a discovered one does not.
            if "dockerfile" in given or layer.get("dockerfile_from") != "compose":
                layer["dockerfile"] = explicit.dockerfile
        elif "dockerfile" in given:
            if "context" not in layer and not partial:
                raise InputError(
                    f"service {name!r} has a dockerfile but no context",
                    where=stack.where("services", name),
                    hint='add context = "path/to/folder" (dockerfile is relative to it)',
                )
            layer["dockerfile"] = explicit.dockerfile
        if "target" in given:
            layer["target"] = explicit.target
        if "build_args" in given:
            layer["args"] = {**layer.get("args", {}), **explicit.build_args}
        if "image" in given:
            layer["explicit_image"] = explicit.image
        if "platform" in given:
            layer["platform"] = explicit.platform
    if partial:
        layers = {name: layer for name, layer in layers.items() if "context" in layer}
    for name in cfg.exclude:
        if name not in layers and partial:
            continue
        if name not in layers:
            raise InputError(
                f"stack.exclude names {name[:200]!r}, which is no service",
                where=stack.where("stack", "exclude"),
                hint=f"services are: {_names(layers)}",
            )
        del layers[name]
    if cfg.services and not layers and not stack.config.services and not partial:
        raise InputError(
            f"stack.services {cfg.services!r} matches no Dockerfile",
            where=stack.where("stack", "services"),
            hint="fix the glob (relative to the stack folder)",
        )
    services: dict[str, Service] = {}
    for name in sorted(layers):
        try:
            service = _service(stack, tree, name, layers[name])
        except InputError:
            if partial:  # the compose layer, read later, may complete it; the full pass reports it
                continue
            raise
        first = next((s for s in services.values() if s.image == service.image), None)
        if first is None:
            services[name] = service
        elif _definition(first) == _definition(service):  # compose often builds one image for several services
            services[first.name] = first.model_copy(update={"also": (*first.also, name)})
        elif partial:  # the compose layer may yet make the two alike; the full pass reports a real conflict
            continue
        else:
            raise InputError(
                f"services {first.name!r} and {name!r} both build {service.image} from different definitions",
                where=service.origin,
                hint="give each service its own image, or make the two build sections identical",
            )
    return stack.model_copy(update={"services": list(services.values())})


def _names(layers) -> str:
    return ", ".join(sorted(layers)) or "(none)"


def _definition(service: Service) -> tuple:
    return (service.context, service.dockerfile, service.target, service.build_args, service.platform)


def _discover(stack: Stack, tree, layers: dict[str, dict]) -> None:
    cfg = stack.config.stack
    try:
        matches = tree.glob(cfg.services)
    except (NotImplementedError, ValueError) as exc:
        raise InputError(
            f"stack.services {cfg.services!r} is not a usable glob: {exc}",
            where=stack.where("stack", "services"),
            hint="give a glob relative to the stack folder, e.g. src/*/Dockerfile",
        ) from None
    context = (stack.root / cfg.context).resolve() if cfg.context is not None else None
    for match in matches:
        name = match.parent.name
        if name in layers:
            raise InputError(
                f"two Dockerfiles make the same service {name!r}: "
                f"{stack.rel(layers[name]['context'] / layers[name]['dockerfile'])} and {stack.rel(match)}",
                where=stack.where("stack", "services"),
                hint="narrow the glob, rename a folder, or list one in stack.exclude",
            )
        if context is not None and not match.resolve().is_relative_to(context):
            raise InputError(
                f"Dockerfile {stack.rel(match)} is outside stack.context {cfg.context!r}",
                where=stack.where("stack", "context"),
                hint="use a context that holds every discovered Dockerfile",
            )
        base = context or match.parent
        layers[name] = {
            "context": base,
            "dockerfile": match.relative_to(base).as_posix() if context is None else os.path.relpath(match, base),
            "dockerfile_from": "glob",
            "origin": stack.where("stack", "services"),
        }


def _service(stack: Stack, tree, name: str, layer: dict) -> Service:
    cfg = stack.config.stack
    if not _SERVICE_NAME.fullmatch(name):
        raise InputError(
            f"service name {name[:200]!r} is not a valid image name component",
            where=layer["origin"],
            hint="use lower-case letters, digits and . _ - (rename the folder, the compose service or the table)",
        )
    if "context" not in layer:
        raise InputError(
            f"service {name!r} has no context and no Dockerfile matched by stack.services",
            where=stack.where("services", name, "context"),
            hint='add context = "path/to/folder"',
        )
    for refused in layer.get("refused", {}).values():
        raise refused
    readable = readable_folders(stack.root, cfg.allow_outside)

    def leading_out(path: Path, real: Path) -> str:
        shown = stack.rel(Path(os.path.normpath(path)))
        if Path(shown).is_absolute():
            return f"{shown} is outside the stack folder"
        return f"{shown} leads outside the stack folder (to {real})"

    outside = leads_outside(layer["context"], readable)
    if outside is not None:
        explicit = stack.config.services.get(name)
        if explicit is not None and "context" in explicit.model_fields_set:
            at = stack.where("services", name, "context")
        elif cfg.context is not None and layer["context"] == (stack.root / cfg.context).resolve():
            at = stack.where("stack", "context")
        else:
            at = layer["origin"]
        raise InputError(
            f"service {name!r}: build context {leading_out(layer['context'], outside)}",
            where=at,
            hint="keep contexts inside the stack folder, or list the folder in stack.allow_outside",
        )
    named = Path(os.path.normpath(layer["context"] / layer.get("dockerfile", "Dockerfile")))
    outside = leads_outside(named, readable)
    if outside is not None:
        raise InputError(
            f"service {name!r}: Dockerfile {leading_out(named, outside)}",
            where=layer["origin"],
            hint="replace the symlink by the file, or list its folder in stack.allow_outside",
        )
    # Resolved like every planned destination, so `../shared/Dockerfile` is one file wherever it is named from.
    dockerfile = named.resolve()
    if not tree.is_file(dockerfile):
        raise InputError(
            f"service {name!r}: Dockerfile {stack.rel(dockerfile)} not found",
            where=layer["origin"],
            hint="fix context / dockerfile (dockerfile is relative to the context)",
        )
    image_ref = _image(stack, name, layer)
    args = dict(stack.env) if cfg.env_build_args else {}
    # STACK_TAG lets a Dockerfile name a sibling service's image (FROM ai-infra-base:${STACK_TAG}).
    args[STACK_TAG_ARG] = image_ref.tag or cfg.tag
    args.update(cfg.build_args)
    args.update(layer.get("args", {}))
    return Service(
        name=name,
        context=layer["context"],
        dockerfile=dockerfile,
        target=layer.get("target"),
        build_args=args,
        image=image_ref.familiar,
        platform=layer.get("platform") or cfg.platform,
        origin=layer["origin"],
    )


def _image(stack: Stack, name: str, layer: dict):
    """``[services.X] image`` (+ the stack tag), else compose's ``image:`` with its own tag (``latest``
    when it has none, as compose), else ``image_prefix + name``; ``--tag`` replaces the tag in every case."""
    cfg = stack.config.stack
    if "image" in layer and "explicit_image" not in layer:
        ref = layer["image"]
        if ref.is_digest:
            raise InputError(
                f"service {name!r}: a built image cannot be pinned by digest ({ref})",
                where=layer["origin"],
                hint="give the compose service a tag",
            )
        return ref if stack.cli_tag is None else dataclasses.replace(ref, tag=stack.cli_tag)
    image = layer.get("explicit_image") or f"{cfg.image_prefix}{name}"
    try:
        return parse(f"{image}:{cfg.tag}")
    except InvalidReference as exc:
        raise InputError(
            f"service {name!r}: image {image}:{cfg.tag} is not valid: {exc}",
            where=layer["origin"],
            hint="fix stack.image_prefix, stack.tag or the service's image",
        ) from None
