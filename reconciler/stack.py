"""The stack file: ``stack.toml`` read, validated and resolved.

Pydantic does the validation (and gives ``reconcile schema`` its JSON Schema);
this module turns its errors into one line naming the file, line and key, and
resolves the relative paths and the service glob against the stack folder.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .errors import InputError, where
from .refs import PATH_RE, InvalidReference, parse, parse_prefix

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
    compose: list[str] = Field(
        default_factory=list, description="Compose files whose `image:` entries are base images."
    )
    env_file: str | None = Field(None, description="Env file for compose interpolation.")
    images: list[str] = Field(default_factory=list, description="Extra base images.")
    build_network: str | None = Field(
        None, description="Network of RUN steps (`none`, `host`, or a network name) [default: the daemon's]."
    )


class NetworkSection(_Strict):
    mode: Literal["auto", "internal", "external"] = "auto"
    internal_registry: str = Field(
        "aiharbor.msxf.local/aihpc", description="Harbor registry and project that mirrors Docker Hub."
    )
    alias_prefix: str = Field("localhost", description="Prefix of the alias every base image also gets.")
    probe_timeout: float = Field(2.0, gt=0, le=60, description="Seconds per probe.")
    external_probes: list[str] | None = Field(
        None, description="URLs; any HTTP answer means Docker Hub is reachable. Absent: Docker Hub's /v2/."
    )
    internal_probes: list[str] | None = Field(
        None, description="URLs; absent: the internal registry's /v2/ over https, then http."
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


class _FileEntry(_Strict):
    src: str = Field(description="Relative to the stack folder.")
    dest: str = Field(description="Relative to the stack folder; must stay inside it.")
    mode: str | None = Field(
        None, pattern=r"^0?[0-7]{3,4}$", description="Octal file mode [default: the destination's, else the source's]."
    )


class TemplateSection(_FileEntry):
    """A jinja2 template rendered to a file (sandboxed, undefined names are errors)."""

    vars: dict[str, Any] = Field(default_factory=dict, description="Available to the template as `vars`.")


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


class Stack(BaseModel):
    """A loaded stack: the validated file plus everything resolved from it."""

    model_config = ConfigDict(frozen=True)
    path: Path
    root: Path
    config: StackFile
    services: list[Service]

    def rel(self, path: Path) -> str:
        """A path as users see it in messages: relative to the stack folder when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


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
    """Read and validate the stack file; ``tag`` (``--tag``) replaces ``stack.tag``."""
    if tag is not None and not _TAG.fullmatch(tag):
        raise InputError(
            f"tag {tag!r} is not a valid image tag", where="--tag", hint="use letters, digits, _ . - (up to 128)"
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
    root = stack_path.parent
    return Stack(path=stack_path, root=root, config=config, services=_resolve_services(config, stack_path, text))


def _validation_error(exc: ValidationError, path: Path, text: str) -> InputError:
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        what, hint = f"unknown key {key!r}", "remove it or fix its spelling (see `reconcile schema`)"
    elif err["type"] == "missing":
        what, hint = f"missing key {key!r}", "add it"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        what, hint = f"{key}: {msg}", "fix the value (see `reconcile schema`)"
    more = len(exc.errors()) - 1
    if more:
        hint += f" ({more} more problem{'s' if more > 1 else ''} after this one)"
    return InputError(what, where=where(path, locate(text, loc)), hint=hint)


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


def _resolve_services(config: StackFile, stack_path: Path, text: str) -> list[Service]:
    root = stack_path.parent
    found: dict[str, tuple[Path, str]] = {}
    if config.stack.services:
        try:
            matches = sorted(root.glob(config.stack.services))
        except (NotImplementedError, ValueError) as exc:
            raise InputError(
                f"stack.services {config.stack.services!r} is not a usable glob: {exc}",
                where=where(stack_path, locate(text, ["stack", "services"])),
                hint="give a glob relative to the stack folder, e.g. src/*/Dockerfile",
            ) from None
        for match in matches:
            if not match.is_file():
                continue
            if match.parent.name in found:
                raise InputError(
                    f"two Dockerfiles make the same service {match.parent.name!r}: "
                    f"{found[match.parent.name][0] / found[match.parent.name][1]} and {match}",
                    where=where(stack_path, locate(text, ["stack", "services"])),
                    hint="narrow the glob or rename a folder",
                )
            found[match.parent.name] = (match.parent, match.name)
        if not found and not config.services:
            raise InputError(
                f"stack.services {config.stack.services!r} matches no Dockerfile",
                where=where(stack_path, locate(text, ["stack", "services"])),
                hint="fix the glob (relative to the stack folder)",
            )
    services: list[Service] = []
    images: dict[str, str] = {}
    for name in sorted(set(found) | set(config.services)):
        explicit = config.services.get(name, ServiceSection())
        loc_line = locate(text, ["services", name])
        if not _SERVICE_NAME.fullmatch(name):
            raise InputError(
                f"service name {name!r} is not a valid image name component",
                where=where(stack_path, loc_line),
                hint="use lower-case letters, digits and . _ - (rename the folder or the [services] table)",
            )
        if explicit.context is not None:
            context = (root / explicit.context).resolve()
        elif name in found:
            context = found[name][0]
        else:
            raise InputError(
                f"service {name!r} has no context and no Dockerfile matched by stack.services",
                where=where(stack_path, loc_line, f"services.{name}.context"),
                hint='add context = "path/to/folder"',
            )
        dockerfile_name = explicit.dockerfile
        if "dockerfile" not in explicit.model_fields_set and name in found and explicit.context is None:
            dockerfile_name = found[name][1]
        dockerfile = (context / dockerfile_name).resolve()
        if not dockerfile.is_file():
            raise InputError(
                f"service {name!r}: Dockerfile {dockerfile} not found",
                where=where(stack_path, loc_line, f"services.{name}"),
                hint="fix context / dockerfile (dockerfile is relative to the context)",
            )
        image = explicit.image or f"{config.stack.image_prefix}{name}"
        try:
            image_ref = parse(f"{image}:{config.stack.tag}")
        except InvalidReference as exc:
            raise InputError(
                f"service {name!r}: image {image}:{config.stack.tag} is not valid: {exc}",
                where=where(stack_path, loc_line),
                hint="fix stack.image_prefix, stack.tag or the service's image",
            ) from None
        if image_ref.familiar in images:
            raise InputError(
                f"services {images[image_ref.familiar]!r} and {name!r} both build {image_ref.familiar}",
                where=where(stack_path, loc_line),
                hint="give each service its own image",
            )
        images[image_ref.familiar] = name
        services.append(
            Service(
                name=name,
                context=context,
                dockerfile=dockerfile,
                target=explicit.target,
                # STACK_TAG lets a Dockerfile name a sibling service's image (FROM ai-infra-base:${STACK_TAG}).
                build_args={STACK_TAG_ARG: config.stack.tag, **explicit.build_args},
                image=image_ref.familiar,
            )
        )
    return services
