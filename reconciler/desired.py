"""Desired state: what must be present on the daemon, computed purely from inputs.

Two steps, both free of daemon access:

1. :func:`base_images` -- every image the stack needs from outside, from the
   Dockerfiles (for each service's target), compose files and the stack's
   extra ``images``, normalized and deduplicated, each with where it is used.
2. :func:`desired_state` -- for a network decision, which references must be
   present (pulled) and which alias tags must point at which of them; in
   internal mode ``[network.harbor_paths]`` says where the internal registry
   keeps an image when its layout is not the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .builds import BuildSpec
from .dockerfiles import BuildArgError, DockerfileInfo, ImageUse, UnknownTarget, analyze
from .errors import InputError, where
from .files import FileSpec
from .network import NetworkDecision
from .refs import ImageRef, InvalidReference, parse
from .stack import Stack, locate, read_compose
from .tree import StackTree

if TYPE_CHECKING:
    from .compose import ComposeService


@dataclass(frozen=True)
class BaseImage:
    ref: ImageRef
    used_by: tuple[ImageUse, ...]


def analyze_services(stack: Stack, tree: StackTree | None = None) -> dict[str, DockerfileInfo]:
    """Service name -> what its Dockerfile (as ``tree`` shows it: rendered ones count) needs for its target."""
    tree = tree or StackTree(stack.root)
    found = {}
    for s in stack.services:
        shown = stack.rel(s.dockerfile)
        try:
            text = tree.read_text(s.dockerfile)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read Dockerfile: {exc}", where=shown, hint="check the file") from None
        try:
            found[s.name] = analyze(text, s.build_args, s.target, path=s.dockerfile, shown_as=shown)
        except UnknownTarget as exc:  # the key that set the target is at fault, not the Dockerfile
            raise InputError(f"{exc.what} ({shown})", where=_key(stack, s, "target"), hint=exc.hint) from None
        except BuildArgError as exc:
            value = s.build_args[exc.arg]
            raise InputError(
                f"build arg {exc.arg} = {value[:200]!r} makes {exc.what} ({exc.where})",
                where=_key(stack, s, "build_args", exc.arg),
                hint="fix the build arg's value (build arg values are not expanded)",
            ) from None
    return found


def _key(stack: Stack, service, field: str, arg: str | None = None) -> str:
    """Where the stack sets a service's ``field`` (or one build arg): its own table, the
    stack-wide build args, the env file, else where the service is defined (compose)."""
    table = stack.config.services.get(service.name)
    if table is not None and field in table.model_fields_set and (arg is None or arg in table.build_args):
        return stack.where("services", service.name, field)
    if arg is not None and arg in stack.config.stack.build_args:
        return stack.where("stack", "build_args")
    if arg is not None and arg in stack.env and stack.env_path is not None:
        return stack.rel(stack.env_path)
    return service.origin


def service_uses(stack: Stack, tree: StackTree | None = None) -> dict[str, list[ImageUse]]:
    """Service name -> the images its build (for its target) uses from outside its Dockerfile."""
    return {name: info.uses for name, info in analyze_services(stack, tree).items()}


def base_images(
    stack: Stack,
    uses_by_service: dict[str, list[ImageUse]] | None = None,
    compose: dict[str, ComposeService] | None = None,
) -> list[BaseImage]:
    """Every image the stack needs from outside; ``compose``: the compose files as read
    (else they are read from disk)."""
    built = {parse(s.image) for s in stack.services}
    uses: list[ImageUse] = []
    for found in (uses_by_service if uses_by_service is not None else service_uses(stack)).values():
        uses += found
    cfg = stack.config.stack
    if cfg.compose:
        if compose is None:
            compose = read_compose(stack, StackTree(stack.root))
        # A service with `build:` runs the image compose builds: not a base image.
        uses += [s.image for s in compose.values() if s.build is None and s.image is not None]
    if cfg.images:
        line = locate(stack.text, ["stack", "images"]) or 0
        for text_ref in cfg.images:
            try:
                uses.append(ImageUse(parse(text_ref), stack.path, line))
            except InvalidReference as exc:
                raise InputError(
                    str(exc), where=where(stack.rel(stack.path), line, "stack.images"), hint="fix the reference"
                ) from None
    by_ref: dict[ImageRef, list[ImageUse]] = {}
    for use in uses:
        if use.ref not in built:
            by_ref.setdefault(use.ref, []).append(use)
    return [
        BaseImage(ref, tuple(sorted(set(found))))
        for ref, found in sorted(by_ref.items(), key=lambda kv: kv[0].familiar)
    ]


@dataclass(frozen=True)
class Presence:
    """``ref`` must be present locally; it is pulled if it is not."""

    ref: ImageRef
    serves: tuple[ImageRef, ...]  # the base images it provides
    platform: str | None = None  # pulled for this platform; None: the daemon's


@dataclass(frozen=True)
class Alias:
    """Tag ``alias`` must point at the image ID of ``source``."""

    alias: ImageRef
    source: ImageRef
    base: ImageRef


@dataclass(frozen=True)
class Upload:
    """The local image ``image`` must be in the internal registry as ``target``, the same manifest:
    a service image a builder pushes, or a base image an external host mirrors."""

    image: ImageRef
    target: ImageRef
    service: str | None = None  # the service whose image it is; None: a base image (a mirror)


@dataclass
class DesiredState:
    presence: list[Presence] = field(default_factory=list)
    aliases: list[Alias] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[FileSpec] = field(default_factory=list)  # rendered templates and copies
    builds: list[BuildSpec] = field(default_factory=list)  # in dependency order
    pushes: list[Upload] = field(default_factory=list)  # [stack] push: service images to the internal registry
    mirrors: list[Upload] = field(default_factory=list)  # [network] mirror: base images to the internal registry
    services: dict[str, ImageRef] = field(default_factory=dict)  # a node's services -> the image each pulls
    prune: str | None = None  # [stack] prune: the stack whose leftovers are untagged or removed

    def names(self) -> set[ImageRef]:
        """Every image name the stack declares on the daemon: prune never touches these."""
        found = {p.ref for p in self.presence} | {r for p in self.presence for r in p.serves}
        found |= {a.alias for a in self.aliases} | {a.source for a in self.aliases}
        found |= {b.image for b in self.builds} | set(self.services.values())
        return found | {u.target for u in self.pushes} | {u.target for u in self.mirrors}


def desired_state(
    bases: list[BaseImage],
    network: NetworkDecision,
    harbor_paths: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> DesiredState:
    """The rules of the network section of the docs, one base image at a time.

    ``harbor_paths`` is ``NetworkSection.harbor_paths``: canonical repository name
    (``docker.io/library/redis``) -> its path under the internal registry.  Only
    internal mode pulls from that registry, so only internal mode reads it.
    ``platform`` (``[stack] platform``): what every base image is pulled for.
    """
    presence: dict[ImageRef, list[ImageRef]] = {}
    aliases: dict[ImageRef, Alias] = {}
    origin: dict[ImageRef, ImageRef] = {}  # source -> upstream it was mapped from
    warnings: list[str] = []
    prefix = network.alias_prefix

    for base in bases:
        ref = base.ref
        # A Dockerfile may already use the alias (FROM localhost/redis:7): it needs the upstream image.
        upstream = ref.relative_to(prefix) if ref.is_under(prefix) else ref
        wanted: list[ImageRef | None]  # None: an alias that is no valid name (warned, skipped below)
        if upstream.is_under(network.registry):
            source, wanted = upstream, [ref] if ref != upstream else []
        elif network.mode == "external":
            source, wanted = upstream, [_alias(upstream, prefix, base, warnings)]
        else:
            source = _internal_name(upstream, network.registry, harbor_paths or {}, base)
            wanted = [upstream, _alias(upstream, prefix, base, warnings)]
            if origin.setdefault(source, upstream) != upstream:
                raise InputError(
                    f"{origin[source]} and {upstream} both map to {source} in the internal registry",
                    where=_first_use(base),
                    hint="use one of them, or give one its own path in [network.harbor_paths]",
                )
        if ref != upstream and ref not in wanted:
            wanted.append(ref)  # the exact name the Dockerfile uses (localhost/library/redis:7)
        presence.setdefault(source, []).append(ref)
        for alias in filter(None, wanted):
            if alias.is_digest or source.is_digest:
                pinned = alias if alias.is_digest else source
                warnings.append(
                    f"{pinned} is pinned by digest and cannot be a tag target: alias {alias} not created "
                    f"({_first_use(base)})"
                )
                continue
            current = aliases.get(alias)
            if current and current.source != source:
                raise InputError(
                    f"alias {alias} would point at both {current.source} and {source}",
                    where=_first_use(base),
                    hint="the two base images clash after normalization; use one of them",
                )
            aliases[alias] = Alias(alias=alias, source=source, base=ref)
    return DesiredState(
        presence=[Presence(ref, tuple(dict.fromkeys(serves)), platform) for ref, serves in presence.items()],
        aliases=list(aliases.values()),
        warnings=list(dict.fromkeys(warnings)),
    )


def registry_name(image: ImageRef, registry: str) -> ImageRef:
    """Where a service image lives in the internal registry: ``<registry>/<image>:<tag>``
    (``harbor/aihpc/ai-infra-base:v1``); an image named in the registry already is itself."""
    return image if image.is_under(registry) else image.under(registry)


def push_targets(builds: list[BuildSpec], registry: str) -> list[Upload]:
    """``[stack] push``: each built service image at its name in the internal registry."""
    return [Upload(spec.image, registry_name(spec.image, registry), spec.service) for spec in builds]


def mirror_targets(
    bases: list[BaseImage], network: NetworkDecision, harbor_paths: Mapping[str, str] | None = None
) -> tuple[list[Upload], list[str]]:
    """``[network] mirror`` on an external network: every base image, as pulled here, at the name
    an internal network pulls it from (the same rules: :func:`desired_state` in internal mode).
    A digest-pinned image cannot be pushed by its digest: it is left out with a warning."""
    if network.mode != "external":
        return [], []
    uploads: dict[ImageRef, Upload] = {}
    warnings: list[str] = []
    prefix = network.alias_prefix
    for base in bases:
        upstream = base.ref.relative_to(prefix) if base.ref.is_under(prefix) else base.ref
        if upstream.is_under(network.registry):
            continue  # it lives there already
        if upstream.is_digest:
            warnings.append(
                f"{upstream} is pinned by digest and cannot be pushed by it: not mirrored ({_first_use(base)})"
            )
            continue
        target = _internal_name(upstream, network.registry, harbor_paths or {}, base)
        current = uploads.get(target)
        if current is not None and current.image != upstream:
            raise InputError(
                f"{current.image} and {upstream} both map to {target} in the internal registry",
                where=_first_use(base),
                hint="use one of them, or give one its own path in [network.harbor_paths]",
            )
        uploads[target] = Upload(upstream, target)
    return list(uploads.values()), warnings


def add_node_images(
    state: DesiredState,
    services: Mapping[str, ImageRef],
    network: NetworkDecision,
    platforms: Mapping[str, str | None] | None = None,
) -> None:
    """``role = "node"``: each service image is pulled from the internal registry (for the
    service's ``platforms``) and tagged with its own name and its alias, as an internal network
    does for a base image."""
    for name, image in services.items():
        source = registry_name(image, network.registry)
        wanted = [image] if image != source else []
        alias = _alias(image, network.alias_prefix, BaseImage(image, ()), state.warnings)
        presence = next((p for p in state.presence if p.ref == source), None)
        if presence is None:
            state.presence.append(Presence(source, (image,), (platforms or {}).get(name)))
        elif image not in presence.serves:
            state.presence[state.presence.index(presence)] = Presence(
                source, (*presence.serves, image), presence.platform
            )
        known = {a.alias: a for a in state.aliases}
        for ref in filter(None, [*wanted, alias]):
            if ref in known and known[ref].source != source:
                raise InputError(
                    f"alias {ref} would point at both {known[ref].source} and {source}",
                    where=f"service {name}",
                    hint="a service image and a base image clash; rename the service image",
                )
            if ref not in known:
                state.aliases.append(Alias(alias=ref, source=source, base=image))
        state.services[name] = image


def _internal_name(upstream: ImageRef, registry: str, harbor_paths: Mapping[str, str], base: BaseImage) -> ImageRef:
    """Where the internal registry keeps ``upstream``: its mapped path, else its path without
    the registry host; the tag and digest stay."""
    path = harbor_paths.get(upstream.name)
    try:
        return upstream.renamed(f"{registry}/{path}") if path else upstream.under(registry)
    except InvalidReference as exc:  # the registry and path together pass the 255-character limit
        raise InputError(
            f"{upstream} has no valid name in the internal registry {registry}: {exc}",
            where=_first_use(base),
            hint="give it a shorter path in [network.harbor_paths]",
        ) from None


def _alias(upstream: ImageRef, prefix: str, base: BaseImage, warnings: list[str]) -> ImageRef | None:
    """``prefix/upstream``, or a warning when that is no valid name: a path cannot hold
    a registry port or capitals (``registry.example:5000/team/tool``)."""
    try:
        return upstream.aliased(prefix)
    except InvalidReference:
        warnings.append(
            f"{upstream} cannot be aliased as {prefix}/{upstream}: its registry host is not a valid path "
            f"component ({_first_use(base)})"
        )
        return None


def _first_use(base: BaseImage) -> str:
    if not base.used_by:
        return str(base.ref)
    use = base.used_by[0]
    return where(use.file, use.line)
