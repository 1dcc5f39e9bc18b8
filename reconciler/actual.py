"""Actual state: the daemon's images as one pure parse of ``GET /images/json``,
and the current content of the files the stack writes.

No per-image inspect: tags, repo digests and labels all come in the one list.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .refs import ImageRef, InvalidReference, parse

ObservedFiles = dict[Path, tuple[bytes | None, int | None]]  # path -> (content, mode); None: absent


@dataclass
class ObservedImages:
    tags: dict[ImageRef, str] = field(default_factory=dict)  # repo:tag -> image ID
    digests: dict[ImageRef, str] = field(default_factory=dict)  # repo@digest -> image ID
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # image ID -> labels
    platforms: dict[str, str] = field(default_factory=dict)  # image ID -> os/arch[/variant], read when wanted

    def image_id(self, ref: ImageRef) -> str | None:
        """The local image ``ref`` resolves to; a digest reference only by its repo digest."""
        if ref.is_digest:
            return self.digests.get(ImageRef(ref.domain, ref.path, None, ref.digest))
        return self.tags.get(ref)

    def has_digest(self, ref: ImageRef, digest: str) -> bool:
        """Whether the local image of ``ref`` is the one ``repo@digest`` names (its RepoDigests)."""
        image_id = self.image_id(ref)
        return image_id is not None and self.digests.get(ImageRef(ref.domain, ref.path, None, digest)) == image_id


@dataclass
class ObservedRegistry:
    """The internal registry, asked through the daemon for each push and mirror target."""

    digests: dict[ImageRef, str | None] = field(default_factory=dict)  # target -> manifest digest; None: absent
    errors: dict[ImageRef, str] = field(default_factory=dict)  # target -> why it could not be asked


def observe_containers(listing: list[dict]) -> dict[str, list[str]]:
    """Image ID -> the names of the containers (any state) made from it (``GET /containers/json?all=1``)."""
    users: dict[str, list[str]] = {}
    for container in listing:
        image_id = container.get("ImageID")
        names = [n.lstrip("/") for n in container.get("Names") or []] or [str(container.get("Id", ""))[:12]]
        if image_id:
            users.setdefault(image_id, []).append(names[0])
    return {image_id: sorted(names) for image_id, names in users.items()}


def observe(listing: list[dict]) -> ObservedImages:
    """Parse the daemon's image list (``APIClient.images()``)."""
    seen = ObservedImages()
    for image in listing:
        image_id = image["Id"]
        seen.labels[image_id] = image.get("Labels") or {}
        for text in image.get("RepoTags") or []:
            if text != "<none>:<none>":
                ref = _parse(text)
                if ref:
                    seen.tags[ref] = image_id
        for text in image.get("RepoDigests") or []:
            ref = _parse(text)
            if ref and ref.digest:
                seen.digests[ImageRef(ref.domain, ref.path, None, ref.digest)] = image_id
    return seen


def _parse(text: str) -> ImageRef | None:
    try:
        return parse(text, default_tag=False)
    except InvalidReference:
        return None  # the daemon knows it; we cannot want it, so it cannot matter


def observe_files(paths: list[Path]) -> ObservedFiles:
    """What each destination holds now."""
    seen: ObservedFiles = {}
    for path in paths:
        try:
            seen[path] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
        except FileNotFoundError:
            seen[path] = (None, None)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}", hint="check permissions") from None
    return seen
