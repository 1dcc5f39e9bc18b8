"""The alias tags reconcile created on a daemon, by stack.

A tag carries no label, so an alias (``localhost/redis:7-alpine``) tells nothing of who made
it.  Apply records each alias it creates, with the image ID it gave it, in the cache dir, one
file per daemon; prune then untags only a recorded alias that still points there.  Losing the
record only makes prune leave those aliases alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from .atomic import write_atomically
from .refs import ImageRef, InvalidReference, parse


class AliasRecord:
    def __init__(self, daemon: str, directory: Path | None = None):
        from .network import cache_dir

        name = hashlib.sha256(daemon.encode()).hexdigest()[:16]
        self.path = (directory or cache_dir() / "aliases") / f"{name}.json"

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            found = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        stacks = found.get("stacks") if isinstance(found, dict) else None
        if not isinstance(stacks, dict):
            return {}
        return {
            stack: {k: v for k, v in aliases.items() if isinstance(k, str) and isinstance(v, str)}
            for stack, aliases in stacks.items()
            if isinstance(aliases, dict)
        }

    def created(self, stack: str) -> dict[ImageRef, str]:
        """The aliases reconcile created for ``stack`` -> the image ID each was given."""
        found = {}
        for text, image_id in self._read().get(stack, {}).items():
            try:
                found[parse(text)] = image_id
            except InvalidReference:
                continue  # a damaged entry: nothing to prune by it
        return found

    def update(self, stack: str, made: Mapping[ImageRef, str], gone: Iterable[ImageRef]) -> None:
        """Add the aliases apply created or moved (``made``), drop those it untagged (``gone``)."""
        stacks = self._read()
        aliases = stacks.setdefault(stack, {})
        before = dict(aliases)
        aliases.update({ref.familiar: image_id for ref, image_id in made.items()})
        for ref in gone:
            aliases.pop(ref.familiar, None)
        if aliases == before:
            return
        stacks = {name: found for name, found in stacks.items() if found}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, (json.dumps({"stacks": stacks}, indent=2, sort_keys=True) + "\n").encode())
        except OSError:
            pass  # prune then leaves these aliases alone: never more than the record shows
