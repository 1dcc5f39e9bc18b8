"""Service builds, desired side: what each service's image must be built from.

A build's *inputs record* holds everything that decides its result: the
Dockerfile bytes, the target, the build args, every context file the daemon
receives (mode and content hash) and what each base image resolves to (an
image ID, or a sibling service's inputs hash).  Its sha256 is the *inputs
hash*, stored on the image as a label; the plan rebuilds when they differ.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_atomically
from .context import Entry, HashCache, context_record
from .dockerfiles import DockerfileInfo, Source
from .errors import InputError, where
from .refs import ImageRef, parse
from .stack import PREDEFINED_ARGS, PROXY_ARGS, Stack
from .tree import StackTree

LABEL_INPUTS = "io.reconcile.inputs"
LABEL_PARTS = "io.reconcile.inputs.parts"  # per-part hashes: name what changed without the old record
LABEL_STACK = "io.reconcile.stack"
LABEL_SERVICE = "io.reconcile.service"


@dataclass
class BuildSpec:
    service: str
    image: ImageRef
    context: Path
    dockerfile: Path
    target: str | None
    build_args: dict[str, str]
    bases: tuple[ImageRef, ...]  # external images its Dockerfile uses, as written
    needs: dict[str, ImageRef]  # sibling services whose image it builds FROM, by name
    dockerfile_sha: str
    files: dict[str, Entry]  # the context record: the files the build reads
    stack: str = ""  # the stack's name, labelled on the image
    network: str | None = None  # stack.build_network
    sources: list[Source] | None = None  # the context paths its COPY/ADD/mounts read; None: all
    also: tuple[str, ...] = ()  # other compose services building this same image
    heredocs: tuple[int, ...] = ()  # lines using a heredoc with no `# syntax=` line: the daemon's frontend decides
    secrets: frozenset[str] = frozenset()  # build args whose values never leave in clear (secret_build_args)
    platform: str | None = None  # [stack] / [services.X] platform; None: the daemon's


def build_specs(
    stack: Stack,
    infos: dict[str, DockerfileInfo],
    overlay: dict[Path, Entry],
    cache: HashCache | None = None,
    tree: StackTree | None = None,
) -> list[BuildSpec]:
    """One spec per service, in dependency order (a service after the services it builds FROM).
    ``overlay``: the entries of files the plan writes first; ``tree`` shows them with their content."""
    cache = cache or HashCache()
    tree = tree or StackTree(stack.root)
    by_image = {parse(s.image): s.name for s in stack.services}
    specs: dict[str, BuildSpec] = {}
    for service in stack.services:
        info = infos[service.name]
        bases, needs = [], {}
        for use in info.uses:
            if use.ref in by_image:
                if by_image[use.ref] == service.name:
                    raise InputError(
                        f"service {service.name!r} builds FROM its own image {use.ref}",
                        where=where(stack.rel(use.file), use.line),
                        hint="use another base image",
                    )
                needs[by_image[use.ref]] = use.ref
            else:
                bases.append(use.ref)
        ignore = service.context / ".dockerignore"
        if ignore in overlay:
            raise InputError(
                f"a [[templates]] or [[files]] entry writes {stack.rel(ignore)}, which decides what service "
                f"{service.name!r} is built from",
                where=stack.rel(stack.path),
                hint="keep .dockerignore a plain file",
            )
        try:
            dockerfile_sha = hashlib.sha256(tree.read_bytes(service.dockerfile)).hexdigest()
        except OSError as exc:
            raise InputError(
                f"cannot read Dockerfile: {exc}", where=stack.rel(service.dockerfile), hint="check the file"
            ) from None
        specs[service.name] = BuildSpec(
            service=service.name,
            image=parse(service.image),
            context=service.context,
            dockerfile=service.dockerfile,
            target=service.target,
            # Only what the Dockerfile declares is passed (and hashed): an unrelated .env key rebuilds nothing.
            build_args={k: v for k, v in service.build_args.items() if k in info.args or _predefined(k)},
            bases=tuple(dict.fromkeys(bases)),
            needs=needs,
            dockerfile_sha=dockerfile_sha,
            files=context_record(service.context, service.dockerfile, cache, overlay, info.sources, shown_as=stack.rel),
            stack=stack.config.stack.name,
            network=stack.config.stack.build_network,
            sources=info.sources,
            also=service.also,
            heredocs=() if info.syntax else tuple(info.heredocs),
            secrets=frozenset(k for k in service.build_args if is_secret(k, stack.config.stack.secret_build_args)),
            platform=service.platform,
        )
    cache.save()
    return _ordered(specs)


def _predefined(name: str) -> bool:
    """Build args BuildKit uses without an ARG instruction (proxies, its own switches)."""
    return name in PREDEFINED_ARGS or name.startswith("BUILDKIT_")


def _ordered(specs: dict[str, BuildSpec]) -> list[BuildSpec]:
    from graphlib import CycleError, TopologicalSorter

    graph = {name: set(spec.needs) for name, spec in sorted(specs.items())}
    try:
        return [specs[name] for name in TopologicalSorter(graph).static_order()]
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise InputError(
            f"services build FROM each other in a cycle: {cycle}", hint="break the cycle in the Dockerfiles"
        ) from None


# Names whose values are secret unless the stack says otherwise (fnmatch, any case).
SECRET_NAMES = ("*PASSWORD*", "*SECRET*", "*TOKEN*", "*_KEY")
REDACTED = "***"
MIN_REDACTED = 4  # shorter values are not replaced in output: they would mangle every line and protect nothing


def is_secret(name: str, listed: list[str] | tuple[str, ...] = ()) -> bool:
    return name in listed or any(fnmatch.fnmatchcase(name.upper(), pattern) for pattern in SECRET_NAMES)


def record(spec: BuildSpec, resolved: Mapping[str, str | None]) -> dict:
    """The inputs record; ``resolved`` maps each base (and needed service image) to what it resolves to
    (None: decided by a pull not yet run).
    A secret build arg enters it only as a keyed hash, so neither the labels nor the cache tell its value."""
    args = {
        k: (keyed_hash(v) if k in spec.secrets else v)
        for k, v in sorted(spec.build_args.items())
        if k not in PROXY_ARGS  # like Docker's build cache: a proxy change does not change the image
    }
    found = {
        "dockerfile": spec.dockerfile_sha,
        "target": spec.target,
        "build_args": args,
        "context": spec.files,
        "bases": dict(sorted(resolved.items())),
    }
    if spec.platform is not None:  # only when set: the hashes of stacks without one stay as they were
        found["platform"] = spec.platform
    return found


_KEYS: dict[Path, bytes] = {}


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 of a secret value with this host's key (``secret.key`` in the cache dir, 0600):
    stable across runs, useless for guessing the value offline from a label."""
    from .network import cache_dir

    path = cache_dir() / "secret.key"
    if path not in _KEYS:
        _KEYS[path] = _host_key(path)
    return "hmac-sha256:" + hmac.new(_KEYS[path], value.encode(), hashlib.sha256).hexdigest()


def _host_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise InputError(
            f"cannot read the secret hashing key: {exc}", where=str(path), hint="check permissions"
        ) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another run made it first
        return path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot create the secret hashing key: {exc}", where=str(path), hint="set RECONCILE_CACHE_DIR"
        ) from None
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def redactor(spec: BuildSpec):
    """A function that replaces the spec's secret values in a text by ***."""
    values = sorted((v for k, v in spec.build_args.items() if k in spec.secrets and len(v) >= MIN_REDACTED), key=len)
    values.reverse()  # longer first: a value that contains another is replaced whole

    def hide(text: str) -> str:
        for value in values:
            text = text.replace(value, REDACTED)
        return text

    return hide


def digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def parts(inputs: dict) -> dict[str, str]:
    """Short per-part digests (stored as a label) so a plan can say which part changed."""
    return {key: digest(value)[7:23] for key, value in inputs.items()}


def changed_parts(old_parts: dict[str, str], new: dict) -> list[str]:
    """The parts that differ, one no longer recorded (a platform unset) included."""
    found = parts(new)
    return [key for key, value in found.items() if old_parts.get(key) != value] + [
        key for key in old_parts if key not in found
    ]


def describe_changes(
    keys: list[str], old: dict | None, new: dict, limit: int = 3, dockerfile: str | None = None
) -> str:
    """People's words for what changed between two records (``old`` may be unknown).
    ``dockerfile``: the Dockerfile's name in the context, said once as "Dockerfile changed"."""
    words = []
    for key in keys:
        if key == "dockerfile":
            words.append("Dockerfile changed")
        elif key == "target":
            words.append(f"target is now {new['target'] or '(last stage)'}")
        elif key == "platform":
            words.append("platform is now " + (new.get("platform") or "the daemon's"))
        elif key == "build_args":
            names = _changed_keys(old and old.get("build_args"), new["build_args"])
            words.append("build args changed" + (f": {_first(names, limit)}" if names else ""))
        elif key == "context":
            names = _changed_keys(old and old.get("context"), new["context"])
            if "dockerfile" in keys and dockerfile in names:  # the daemon gets it as a context file too
                names.remove(dockerfile)
                if not names:
                    continue
            words.append("context files changed" + (f": {_first(names, limit)}" if names else ""))
        elif key == "bases":
            names = _changed_keys(old and old.get("bases"), new["bases"])
            words.append("base image changed" + (f": {_first(names, limit)}" if names else ""))
    return "; ".join(words)


def _changed_keys(old: dict | None, new: dict) -> list[str]:
    if old is None:
        return []
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _first(names: list[str], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


class RecordStore:
    """Past inputs records by hash, in the user's cache: lets a plan name the exact
    context files that changed.  Losing it only makes the reasons coarser."""

    def __init__(self, directory: Path | None = None):
        from .network import cache_dir

        self.directory = directory or cache_dir() / "inputs"

    def get(self, inputs_hash: str) -> dict | None:
        try:
            found = json.loads((self.directory / f"{inputs_hash.removeprefix('sha256:')}.json").read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def put(self, inputs_hash: str, inputs: dict) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(
                self.directory / f"{inputs_hash.removeprefix('sha256:')}.json", json.dumps(inputs).encode()
            )
        except OSError:
            pass  # only the plan's wording depends on it
