"""The ``reconcile`` command: a thin typer shell over :mod:`reconciler.pipeline`.

Exit codes on every command: 0 success, 1 any error (bad input and usage
errors included), 2 only from ``plan --detailed-exitcode`` when there are
changes.  Expected errors print one line and no traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from . import pipeline
from .errors import InputError, ReconcileError

app = typer.Typer(
    name="reconcile",
    help="Keep a Docker host's base images and aliases exactly as a stack declares them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

StackOpt = Annotated[
    Optional[str],
    typer.Option("--stack", "-s", envvar="RECONCILE_STACK", help="stack.toml, or the folder holding it [default: ./stack.toml]"),
]
HostOpt = Annotated[Optional[str], typer.Option("--host", "-H", help="Docker daemon address [default: $DOCKER_HOST]")]
NetworkOpt = Annotated[
    Optional[str], typer.Option("--network", help="internal or external: overrides detection and AI_INFRA_NETWORK_ENV")
]
RegistryOpt = Annotated[
    Optional[str], typer.Option("--registry", help="internal registry HOST[:PORT][/PROJECT]; overrides INTERNAL_REGISTRY")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also show what needs no change, and why.")]
TagOpt = Annotated[Optional[str], typer.Option("--tag", help="Tag of the service images [default: stack.tag].")]
TargetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--target", help="Only this service's build and what it depends on (repeatable); the plan is partial."),
]
ReplaceOpt = Annotated[
    Optional[list[str]], typer.Option("--replace", help="Rebuild this service whatever its inputs, without cache (repeatable).")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Rebuild every service whatever its inputs, without cache.")]


def _prepare(stack, network, registry, host, images=None, tag=None, target=None, replace=None, force=False) -> pipeline.Run:
    return pipeline.prepare(
        stack, network=network, registry=registry, host=host, images=images,
        tag=tag, targets=target, replace=replace, force=force,
    )


@app.command()
def plan(
    stack: StackOpt = None,
    host: HostOpt = None,
    network: NetworkOpt = None,
    registry: RegistryOpt = None,
    json_: JsonOpt = False,
    verbose: VerboseOpt = False,
    tag: TagOpt = None,
    target: TargetOpt = None,
    replace: ReplaceOpt = None,
    force: ForceOpt = False,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 when converged, 2 when there are changes, 1 on error.")
    ] = False,
) -> int:
    """Show what apply would do: the pulls, tags, file writes and builds that bring the host to the desired state."""
    from . import output

    run = _prepare(stack, network, registry, host, tag=tag, target=target, replace=replace, force=force)
    the_plan = pipeline.plan(run)
    if json_:
        output.emit_json(the_plan.to_json())
    else:
        output.render_plan(the_plan, verbose=verbose)
    return 2 if detailed_exitcode and not the_plan.empty else 0


@app.command()
def apply(
    stack: StackOpt = None,
    host: HostOpt = None,
    network: NetworkOpt = None,
    registry: RegistryOpt = None,
    json_: JsonOpt = False,
    verbose: VerboseOpt = False,
    tag: TagOpt = None,
    target: TargetOpt = None,
    replace: ReplaceOpt = None,
    force: ForceOpt = False,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking.")] = False,
    parallelism: Annotated[int, typer.Option("--parallelism", min=1, max=32, help="Pulls and builds at once.")] = 4,
) -> int:
    """Plan, ask, then pull, tag, write and build; finally read again and check nothing is left to do."""
    from . import output

    run = _prepare(stack, network, registry, host, tag=tag, target=target, replace=replace, force=force)
    the_plan = pipeline.plan(run)
    if not json_ or not auto_approve:
        # With --json the plan goes to stderr, so stdout stays one JSON document.
        output.render_plan(the_plan, verbose=verbose, stream=sys.stderr if json_ else None)
    if the_plan.empty:
        if json_:
            from .apply import ApplyResult

            output.emit_json(output.apply_json(the_plan, ApplyResult()))
        return 0
    if not auto_approve:
        _confirm()
    result = pipeline.apply(run, the_plan, parallelism=parallelism, reporter=output.ProgressReporter())
    if json_:
        output.emit_json(output.apply_json(the_plan, result))
    else:
        output.render_apply(result)
    return 0 if result.ok else 1


@app.command("tag-localhost")
def tag_localhost(
    images: Annotated[Optional[list[str]], typer.Argument(help="Base images to alias [default: all of the stack's]")] = None,
    stack: StackOpt = None,
    host: HostOpt = None,
    network: NetworkOpt = None,
    registry: RegistryOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Create or fix the alias tags alone, at once, for images already present (the old standalone command)."""
    from . import output

    run = _prepare(stack, network, registry, host, images)
    the_plan = pipeline.aliases_only(pipeline.plan(run))
    if not json_:
        output.render_plan(the_plan)
    result = pipeline.apply(run, the_plan, reporter=output.ProgressReporter())
    result.remaining = [a for a in result.remaining if a.kind == "tag"]
    if json_:
        output.emit_json(output.apply_json(the_plan, result))
    elif not the_plan.empty:
        output.render_apply(result)
    return 0 if result.ok else 1


@app.command()
def images(stack: StackOpt = None, json_: JsonOpt = False) -> int:
    """List the base images the stack needs, and where each is used."""
    from . import desired, output, stack as stack_mod

    loaded = stack_mod.load(stack)
    bases = desired.base_images(loaded)
    if json_:
        output.emit_json(output.images_json(bases, loaded.rel))
    else:
        output.render_images(bases, loaded.rel)
    return 0


@app.command()
def env(
    stack: StackOpt = None,
    network: NetworkOpt = None,
    registry: RegistryOpt = None,
    json_: JsonOpt = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Probe again instead of using the cached result.")] = False,
) -> int:
    """Show the network mode, where it came from, the internal registry, and each probe's outcome."""
    from . import output, stack as stack_mod
    from .network import decide

    loaded = stack_mod.load(stack)
    decision = decide(loaded.config.network, cli_mode=network, cli_registry=registry, use_cache=not refresh)
    if json_:
        output.emit_json(decision.model_dump())
    else:
        output.render_env(decision)
    return 0


@app.command()
def schema() -> int:
    """Print the JSON Schema of the stack file (for editors)."""
    from .stack import StackFile

    print(json.dumps(StackFile.model_json_schema(), indent=2))
    return 0


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise InputError(
            "refusing to apply without confirmation: standard input is not a terminal",
            hint="pass --auto-approve to apply non-interactively",
        )
    print("\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n", file=sys.stderr)
    print("  Enter a value: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip()
    if answer != "yes":
        raise InputError("apply cancelled", hint="nothing was changed")


def main(argv: list[str] | None = None) -> None:
    try:
        code = app(args=argv, prog_name="reconcile", standalone_mode=False)
    except ReconcileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except (typer.Abort, KeyboardInterrupt, EOFError):
        print("error: interrupted; nothing more was done", file=sys.stderr)
        code = 1
    except typer.TyperException as exc:  # usage errors (typer vendors click's exception tree)
        ctx = getattr(exc, "ctx", None)
        where = f" ({ctx.command_path})" if ctx is not None else ""
        print(f"error: {exc.format_message()}{where}; see --help", file=sys.stderr)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
