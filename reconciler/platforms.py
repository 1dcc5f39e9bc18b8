"""Platforms (``linux/amd64``, ``linux/arm64``, ``linux/arm/v7``) as the stack names them and as
the daemon reports an image's (``Os``, ``Architecture``, ``Variant``), compared after the
normalization containerd's ``platforms`` package applies (``x86_64`` is ``amd64``, ``aarch64`` is
``arm64``, whose only variant ``v8`` is its default).  Written by hand: no Python package
implements those rules; this covers the architectures Docker publishes images for.
"""

from __future__ import annotations

import re

PLATFORM_RE = re.compile(r"([a-z0-9_]+)/([a-z0-9_-]+)(?:/([a-z0-9]+))?")
_ARCH = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm", "i386": "386"}
_VARIANT = {"armhf": "v7", "armel": "v6"}


def normalize(text: str) -> str | None:
    """``os/arch[/variant]`` in containerd's normal form; None when it is no platform."""
    match = PLATFORM_RE.fullmatch(text.strip().lower())
    if match is None:
        return None
    os_, arch, variant = match.groups()
    variant = variant or _VARIANT.get(arch)
    arch = _ARCH.get(arch, arch)
    if arch == "arm64" and variant == "v8":
        variant = None
    if arch == "arm" and variant is None:
        variant = "v7"
    return f"{os_}/{arch}" + (f"/{variant}" if variant else "")


def of_image(inspected: dict) -> str | None:
    """An image's platform from ``GET /images/{id}/json``."""
    os_, arch = inspected.get("Os"), inspected.get("Architecture")
    if not os_ or not arch:
        return None
    variant = inspected.get("Variant")
    return normalize(f"{os_}/{arch}" + (f"/{variant}" if variant else ""))


def matches(have: str | None, want: str | None) -> bool:
    """Whether an image of platform ``have`` is one of ``want``; an unknown side matches."""
    if have is None or want is None:
        return True
    return normalize(have) == normalize(want)
