"""Seed the test registries with stand-ins for a stack's base images.

Every Docker Hub base image gets a copy in the hub registry (the daemon's
mirror, so ``docker pull redis:7-alpine`` is served from it) and every base
image gets a copy in the Harbor stand-in under ``aihpc/``.  The two copies
have different IDs and an ``io.reconcile.test.origin`` label, so a test can
tell which one an alias points at.

``python -m tests.seeding STACK`` seeds the example stack for ``make demo``.
"""

from __future__ import annotations

import sys

from reconciler import pipeline
from reconciler.refs import DEFAULT_DOMAIN, ImageRef

from . import harness

HARBOR_PROJECT = "aihpc"


def hub_target(engine: harness.Engine, ref: ImageRef) -> str | None:
    if ref.domain != DEFAULT_DOMAIN or not ref.tag:
        return None  # the mirror serves Docker Hub only; digests cannot be pushed by name
    return f"{engine.hub}/{ref.path}:{ref.tag}"


def harbor_target(engine: harness.Engine, ref: ImageRef) -> str | None:
    if not ref.tag:
        return None
    return f"{engine.harbor}/{HARBOR_PROJECT}/{ref.hub_path}:{ref.tag}"


def targets_for(engine: harness.Engine, refs: list[ImageRef]) -> dict[str, str]:
    targets: dict[str, str] = {}
    for ref in refs:
        if hub := hub_target(engine, ref):
            targets[hub] = "hub"
        if harbor := harbor_target(engine, ref):
            targets[harbor] = "harbor"
    return targets


def seed_stack(engine: harness.Engine, stack_path: str) -> dict[str, str]:
    """Seed every base image of a stack (its templates rendered first, as plan reads it)."""
    refs = [b.ref for b in pipeline.discover(stack_path, network="external").bases]
    return harness.seed(engine, targets_for(engine, refs))


if __name__ == "__main__":
    engine = harness.ensure_up()
    seeded = seed_stack(engine, sys.argv[1] if len(sys.argv) > 1 else "desired")
    print(f"seeded {len(seeded)} images into {engine.hub} (hub) and {engine.harbor} (harbor)", file=sys.stderr)
