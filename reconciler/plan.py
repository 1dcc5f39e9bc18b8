"""Plan: the pure difference between desired and actual state.

A plan is a typed, ordered list of actions (pulls first, then the tags that
may depend on them), each with a machine reason and a sentence for people.
Everything that needs no action is kept too, with why, for ``plan -v``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .actual import ObservedImages
from .desired import DesiredState
from .network import NetworkDecision
from .refs import ImageRef


def short_id(image_id: str | None) -> str:
    return image_id[:19] if image_id else "none"


@dataclass
class Action:
    kind: ClassVar[str] = ""
    symbol: ClassVar[str] = "+"
    address: str
    reason: str  # machine-readable: missing, moved, ...
    detail: str  # the same for people
    before: str | None = None  # image ID the resource has now
    depends_on: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "address": self.address,
            "kind": self.kind,
            "reason": self.reason,
            "detail": self.detail,
            "before": self.before,
            "depends_on": self.depends_on,
        }


@dataclass
class PullAction(Action):
    kind: ClassVar[str] = "pull"
    image: ImageRef = None  # type: ignore[assignment]
    serves: tuple[ImageRef, ...] = ()

    def to_json(self) -> dict:
        return {**super().to_json(), "image": self.image.familiar, "serves": [r.familiar for r in self.serves]}


@dataclass
class TagAction(Action):
    kind: ClassVar[str] = "tag"
    image: ImageRef = None  # type: ignore[assignment]  # the alias
    source: ImageRef = None  # type: ignore[assignment]
    after: str | None = None  # None: known after the source's pull

    @property
    def symbol(self) -> str:  # type: ignore[override]
        return "~" if self.before else "+"

    def to_json(self) -> dict:
        return {**super().to_json(), "image": self.image.familiar, "source": self.source.familiar, "after": self.after}


@dataclass
class Plan:
    network: NetworkDecision
    actions: list[Action] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.actions

    def summary(self) -> dict[str, int]:
        counts = {"pull": 0, "tag": 0}
        for action in self.actions:
            counts[action.kind] = counts.get(action.kind, 0) + 1
        return {**counts, "total": len(self.actions)}

    def to_json(self) -> dict:
        return {
            "format_version": "1.0",
            "network": {
                "mode": self.network.mode,
                "source": self.network.source,
                "registry": self.network.registry,
            },
            "actions": [a.to_json() for a in self.actions],
            "warnings": self.warnings,
            "summary": self.summary(),
        }


def pull_address(ref: ImageRef) -> str:
    return f"pull[{ref.familiar}]"


def tag_address(ref: ImageRef) -> str:
    return f"tag[{ref.familiar}]"


def plan(desired: DesiredState, observed: ObservedImages, network: NetworkDecision) -> Plan:
    result = Plan(network=network, warnings=list(desired.warnings))
    pulled: set[ImageRef] = set()
    for need in desired.presence:
        image_id = observed.image_id(need.ref)
        if image_id:
            result.unchanged.append(f"{need.ref} is present as {short_id(image_id)}")
            continue
        serves = ", ".join(str(r) for r in need.serves if r != need.ref)
        result.actions.append(
            PullAction(
                address=pull_address(need.ref),
                reason="missing",
                detail=f"not present locally" + (f"; provides {serves}" if serves else ""),
                image=need.ref,
                serves=need.serves,
            )
        )
        pulled.add(need.ref)
    for alias in desired.aliases:
        current = observed.image_id(alias.alias)
        if alias.source in pulled:
            result.actions.append(
                TagAction(
                    address=tag_address(alias.alias),
                    reason="moved" if current else "missing",
                    detail=(f"now {short_id(current)}" if current else "not present")
                    + f"; target decided after pulling {alias.source}",
                    before=current,
                    depends_on=[pull_address(alias.source)],
                    image=alias.alias,
                    source=alias.source,
                )
            )
            continue
        want = observed.image_id(alias.source)
        if current == want:
            result.unchanged.append(f"{alias.alias} points at {short_id(want)} like {alias.source}")
            continue
        result.actions.append(
            TagAction(
                address=tag_address(alias.alias),
                reason="moved" if current else "missing",
                detail=f"now {short_id(current)}, want {short_id(want)}" if current else "not present",
                before=current,
                image=alias.alias,
                source=alias.source,
                after=want,
            )
        )
    return result
