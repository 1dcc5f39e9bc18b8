"""The pipeline, top to bottom: stack -> desired -> actual -> plan -> apply -> verify.

This is the importable library the CLI is a thin shell over::

    run = reconciler.prepare("desired/")          # stack file + network -> desired state
    the_plan = reconciler.plan(run)                # one read of the daemon, pure diff
    result = reconciler.apply(run, the_plan)       # the only writer, then a verifying plan
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from . import desired as desired_mod
from . import stack as stack_mod
from .actual import observe
from .desired import BaseImage, DesiredState
from .errors import InputError
from .network import NetworkDecision, decide
from .plan import Plan, TagAction
from .plan import plan as diff
from .refs import InvalidReference, parse

if TYPE_CHECKING:
    from .apply import ApplyResult, Reporter
    from .engine import Engine


@dataclass
class Run:
    """Everything computed before the daemon is read."""

    stack: stack_mod.Stack
    bases: list[BaseImage]
    network: NetworkDecision
    desired: DesiredState
    host: str | None = None
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from .engine import Engine  # docker-py is imported only when a command needs the daemon

            self._engine = Engine(self.host)
        return self._engine


def prepare(
    stack: str | None = None,
    *,
    network: str | None = None,
    registry: str | None = None,
    host: str | None = None,
    images: list[str] | None = None,
) -> Run:
    """Load the stack and compute the desired state.  ``images`` replaces the
    stack's base images by the given references (``tag-localhost IMAGE...``)."""
    loaded = stack_mod.load(stack)
    if images:
        bases = []
        for text in images:
            try:
                bases.append(BaseImage(parse(text), ()))
            except InvalidReference as exc:
                raise InputError(str(exc), where="command line", hint="give image references like redis:7-alpine") from None
    else:
        bases = desired_mod.base_images(loaded)
    decision = decide(loaded.config.network, cli_mode=network, cli_registry=registry)
    return Run(loaded, bases, decision, desired_mod.desired_state(bases, decision), host)


def plan(run: Run) -> Plan:
    """Read the daemon once and diff it against the desired state."""
    return diff(run.desired, observe(run.engine.list_images()), run.network)


def apply(run: Run, the_plan: Plan, *, parallelism: int = 4, reporter: Reporter | None = None) -> ApplyResult:
    """Perform ``the_plan``, then read the daemon again: what it still plans is ``remaining``."""
    from .apply import ApplyResult
    from .apply import apply as execute

    outcomes = execute(the_plan, run.engine, parallelism=parallelism, reporter=reporter)
    return ApplyResult(outcomes=outcomes, remaining=plan(run).actions)


def aliases_only(the_plan: Plan) -> Plan:
    """``tag-localhost``: the tags of a plan whose sources are already present."""
    # A tag that waited for a pull has no target now: apply reports it failed, with a hint.
    return Plan(
        network=the_plan.network,
        actions=[replace(a, depends_on=[]) for a in the_plan.actions if isinstance(a, TagAction)],
        unchanged=the_plan.unchanged,
        warnings=the_plan.warnings,
    )
