"""The ``reconcile`` command: a thin typer shell over :mod:`reconciler.pipeline`.

Exit codes on every command: 0 success, 1 any error (bad input and usage
errors included), 2 only from ``plan --detailed-exitcode`` when there are
changes.  Expected errors print one line and no traceback.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .errors import InputError, ReconcileError

if TYPE_CHECKING:
    from . import pipeline

app = typer.Typer(
    name="reconcile",
    help="Keep a Docker host's base images, aliases, rendered files and service builds exactly as a stack "
    "declares them: `plan` shows what would change and why, `apply` does it and verifies.",
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    options_metavar="[OPTIONS]",
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", is_eager=True, help="Print the version and exit.")] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colors (also when NO_COLOR is set or TERM=dumb).")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log what reconcile and docker-py do, on stderr (RECONCILE_LOG=debug).")
    ] = False,
) -> None:
    if version:
        from . import __version__

        print(f"reconcile {__version__}")
        raise typer.Exit()
    if no_color:
        os.environ["NO_COLOR"] = "1"  # read by our output and by every library that honours it
    level = "debug" if debug else os.environ.get("RECONCILE_LOG", "").strip().lower()
    if level:
        import logging

        logging.basicConfig(
            level=getattr(logging, level.upper(), logging.DEBUG),
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())
        raise typer.Exit()


StackOpt = Annotated[
    str | None,
    typer.Option(
        "--stack",
        "-s",
        envvar="RECONCILE_STACK",
        metavar="STACK",
        help="stack.toml, or the folder holding it [default: ./stack.toml]",
    ),
]
HostOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        "-H",
        metavar="HOST",
        help="Docker daemon address (unix://, tcp://, ssh://user@host) [default: $DOCKER_HOST, the docker context]",
    ),
]


class Network(StrEnum):
    internal = "internal"
    external = "external"


NetworkOpt = Annotated[
    Network | None,
    typer.Option("--network", help="Overrides detection and AI_INFRA_NETWORK_ENV.", show_choices=True),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry", metavar="REGISTRY", help="Internal registry HOST[:PORT][/PROJECT]; overrides INTERNAL_REGISTRY."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also show what needs no change, and why.")]
CompactOpt = Annotated[bool, typer.Option("--compact", help="One line per resource: no reasons, no diffs.")]
TagOpt = Annotated[
    str | None, typer.Option("--tag", metavar="TAG", help="Tag of the service images [default: stack.tag].")
]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        metavar="TARGET",
        help="Only this and what it depends on (repeatable): a service (its build), a base image (its pull and "
        "alias tags) or an action address as plan prints it, like tag[localhost/redis:7-alpine]. "
        "The plan is partial.",
    ),
]


class Kind(StrEnum):
    pull = "pull"
    tag = "tag"
    write = "write"
    build = "build"
    push = "push"
    mirror = "mirror"
    untag = "untag"
    remove = "remove"


OnlyOpt = Annotated[
    list[Kind] | None,
    typer.Option(
        "--only",
        metavar="KIND",
        help="Only actions of this kind: pull, tag, write, build, push, mirror, untag or remove (repeatable); "
        "one whose dependency is left "
        "out runs against what is there now. `--only pull --only tag` is build.sh build-all steps 1-2. "
        "The plan is partial.",
    ),
]
ReplaceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--replace", metavar="SERVICE", help="Rebuild this service whatever its inputs, without cache (repeatable)."
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Rebuild every service whatever its inputs, without cache.")]
PushOpt = Annotated[
    bool,
    typer.Option(
        "--push", help="Also push each service image to the internal registry as REGISTRY/IMAGE:TAG ([stack] push)."
    ),
]
MirrorOpt = Annotated[
    bool,
    typer.Option(
        "--mirror",
        help="External networks: also push each base image to the internal registry under the name internal "
        "networks pull ([network] mirror).",
    ),
]
PruneOpt = Annotated[
    bool,
    typer.Option(
        "--prune",
        help="Also untag or remove what this stack made and no longer declares; images containers use are kept "
        "([stack] prune).",
    ),
]


class Role(StrEnum):
    builder = "builder"
    node = "node"


RoleOpt = Annotated[
    Role | None,
    typer.Option(
        "--role",
        help="builder: build the service images; node: pull them from the internal registry, build nothing "
        "[default: stack.role].",
    ),
]


def _prepare(
    stack, network, registry, host, images=None, tag=None, target=None, replace=None, force=False, only=None
) -> pipeline.Run:
    from . import pipeline  # imported here: --help stays light

    return pipeline.prepare(
        stack,
        network=network,
        registry=registry,
        host=host,
        images=images,
        tag=tag,
        targets=target,
        replace=replace,
        force=force,
        only=_kinds(only),
    )


def _kinds(only: list[Kind] | None) -> list[str] | None:
    return [kind.value for kind in only] if only else None


RefreshOpt = Annotated[
    bool, typer.Option("--refresh-remote", help="Also ask each base image's registry whether its tag moved upstream.")
]
LockTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        min=0,
        metavar="SECONDS",
        show_default=False,
        help="Seconds to wait for another apply on this daemon [default: 0, fail at once].",
    ),
]


@app.command()
def plan(
    stack: StackOpt = None,
    host: HostOpt = None,
    network: NetworkOpt = None,
    registry: RegistryOpt = None,
    json_: JsonOpt = False,
    verbose: VerboseOpt = False,
    compact: CompactOpt = False,
    tag: TagOpt = None,
    target: TargetOpt = None,
    only: OnlyOpt = None,
    replace: ReplaceOpt = None,
    force: ForceOpt = False,
    refresh_remote: RefreshOpt = False,
    push: PushOpt = False,
    mirror: MirrorOpt = False,
    prune: PruneOpt = False,
    role: RoleOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Save the plan, with a fingerprint of what it was computed from, for `apply FILE`.",
        ),
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 when converged, 2 when there are changes, 1 on error.")
    ] = False,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file", metavar="FILE", help="Write drift metrics for node_exporter's textfile collector."
        ),
    ] = None,
) -> int:
    """Show what apply would do: the pulls, tags, file writes, builds, pushes, mirrors and prunes that bring the
    host to the desired state."""
    from . import (
        output,
        pipeline,  # imported here: --help stays light
    )

    started = time.monotonic()
    options: dict[str, Any] = dict(  # prepare()'s keyword arguments, saved with the plan
        stack=stack,
        network=network,
        registry=registry,
        host=host,
        tag=tag,
        targets=target,
        only=_kinds(only),
        replace=replace,
        force=force,
        refresh_remote=refresh_remote,
        push=push,
        mirror=mirror,
        prune=prune,
        role=role.value if role else None,
    )
    run: pipeline.Run | None = None
    try:
        run = pipeline.prepare(**options)
        seen = pipeline.observe_state(run)
        the_plan = pipeline.plan(run, seen)
        if out is not None:
            from . import saved

            options.update(stack=str(run.stack.path), host=run.engine.host)
            saved.write(
                out,
                options=options,
                the_plan=the_plan,
                print_=saved.fingerprint(run, seen),
                rendered=output.plan_text(the_plan),
            )
    except ReconcileError:
        if metrics_file is not None:
            try:
                _metrics(metrics_file, run, None, started)
            except ReconcileError as exc:  # the check's own error is the one to report
                print(f"warning: {exc}", file=sys.stderr)
        raise
    if json_:
        output.emit_json(the_plan.to_json())
    else:
        output.render_plan(the_plan, verbose=verbose, compact=compact)
        if out is not None:
            output.emit(f"\nSaved the plan to {out}. To perform exactly these actions: reconcile apply {out}")
    if metrics_file is not None:
        _metrics(metrics_file, run, the_plan, started)
    return 2 if detailed_exitcode and not the_plan.empty else 0


def _metrics(path: Path, run, the_plan, started: float) -> None:
    from .metrics import write_metrics

    write_metrics(
        path,
        drift={k: v for k, v in the_plan.summary().items() if k != "total"} if the_plan is not None else {},
        success=the_plan is not None,
        duration_seconds=time.monotonic() - started,
        network_mode=run.network.mode if run is not None else None,
        stack=run.stack.config.stack.name if run is not None else "unknown",
    )


@app.command()
def apply(
    plan_file: Annotated[
        Path | None,
        typer.Argument(metavar="[FILE]", help="A plan saved by `plan --out`: applied exactly, without asking."),
    ] = None,
    stack: StackOpt = None,
    host: HostOpt = None,
    network: NetworkOpt = None,
    registry: RegistryOpt = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Stream one JSON object per line on stdout (docs/machine-output.md).")
    ] = False,
    verbose: VerboseOpt = False,
    tag: TagOpt = None,
    target: TargetOpt = None,
    only: OnlyOpt = None,
    replace: ReplaceOpt = None,
    force: ForceOpt = False,
    refresh_remote: RefreshOpt = False,
    push: PushOpt = False,
    mirror: MirrorOpt = False,
    prune: PruneOpt = False,
    role: RoleOpt = None,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking.")] = False,
    parallelism: Annotated[
        int, typer.Option("--parallelism", min=1, max=32, metavar="N", help="Pulls and builds at once.")
    ] = 4,
    lock_timeout: LockTimeoutOpt = 0.0,
) -> int:
    """Plan, ask, then pull, tag, write, build, push, mirror and prune; finally read again and check nothing is
    left to do."""
    from . import pipeline  # imported here: --help stays light

    stream = _stream() if json_ else None
    try:
        if plan_file is not None:
            given = [
                name
                for name, value in (
                    ("--host", host),
                    ("--network", network),
                    ("--registry", registry),
                    ("--tag", tag),
                    ("--target", target),
                    ("--only", only),
                    ("--replace", replace),
                    ("--force", force),
                    ("--refresh-remote", refresh_remote),
                    ("--push", push),
                    ("--mirror", mirror),
                    ("--prune", prune),
                    ("--role", role),
                )
                if value
            ]
            if given:
                raise InputError(
                    f"{', '.join(given)} cannot be combined with a saved plan",
                    where="command line",
                    hint="a saved plan carries its own options; make a new one with reconcile plan --out",
                )
            return _apply_saved(plan_file, stack, json_, stream, verbose, parallelism, lock_timeout)
        run = pipeline.prepare(
            stack,
            network=network,
            registry=registry,
            host=host,
            tag=tag,
            targets=target,
            replace=replace,
            force=force,
            only=_kinds(only),
            push=push,
            mirror=mirror,
            prune=prune,
            role=role.value if role else None,
        )
        run.refresh_remote = refresh_remote
        with _locked(run, "reconcile apply", lock_timeout):
            seen = pipeline.observe_state(run)
            the_plan = pipeline.plan(run, seen)
            return _perform(run, the_plan, seen, json_, stream, verbose, parallelism, ask=not auto_approve)
    except ReconcileError as exc:
        if stream is not None:
            for line in [str(exc), *exc.more]:
                stream.diagnostic("error", line)
        raise


def _apply_saved(path: Path, stack, json_: bool, stream, verbose: bool, parallelism: int, lock_timeout: float) -> int:
    from . import (
        pipeline,  # imported here: --help stays light
        saved,
    )
    from .stack import find_stack_file

    document = saved.read(path)
    options = document["options"]
    if stack is not None and find_stack_file(stack) != Path(options["stack"]):  # --stack or $RECONCILE_STACK
        raise InputError(
            f"the saved plan is for {options['stack']}, not {find_stack_file(stack)}",
            where=str(path),
            hint="apply it without --stack (and RECONCILE_STACK), or plan the other stack",
        )
    run = pipeline.prepare(**options)
    with _locked(run, f"reconcile apply {path}", lock_timeout):
        seen = pipeline.observe_state(run)
        changes = saved.changes(document["fingerprint"], saved.fingerprint(run, seen))
        if changes:
            raise InputError(
                f"saved plan is stale: {'; '.join(changes)}",
                where=str(path),
                hint="nothing was done; plan again with: reconcile plan --out FILE",
            )
        the_plan = pipeline.plan(run, seen)
        planned = [(a["address"], a["reason"]) for a in document["plan"]["actions"]]
        if [(a.address, a.reason) for a in the_plan.actions] != planned:  # identical inputs make an identical plan
            raise InputError(
                "saved plan is stale: the plan computed now differs from the saved one",
                where=str(path),
                hint="nothing was done; plan again with: reconcile plan --out FILE",
            )
        return _perform(run, the_plan, seen, json_, stream, verbose, parallelism, ask=False)


def _perform(run, the_plan, seen, json_: bool, stream, verbose: bool, parallelism: int, *, ask: bool) -> int:
    from . import (
        output,
        pipeline,  # imported here: --help stays light
    )

    if stream is not None:
        for warning in the_plan.warnings + [kept.text for kept in the_plan.kept]:
            stream.diagnostic("warning", warning)
        for action in the_plan.actions:
            stream.planned(action)
    if not json_ or ask:
        # With --json the plan goes to stderr, so stdout stays the JSON stream.
        output.render_plan(the_plan, verbose=verbose, stream=sys.stderr if json_ else None)
    if the_plan.empty:
        if stream is not None:
            from .apply import ApplyResult

            stream.summary(ApplyResult().summary(), [])
        return 0
    if ask:
        _confirm()
    reporter = stream or output.ProgressReporter(total=len(the_plan.actions))
    with _interrupts() as stop:
        try:
            result = pipeline.apply(run, the_plan, parallelism=parallelism, reporter=reporter, stop=stop, seen=seen)
        finally:
            if isinstance(reporter, output.ProgressReporter):
                reporter.close()
    if stream is not None:
        if result.verify_error:
            stream.diagnostic("error", f"verify: {result.verify_error}")
        stream.summary(result.summary(), [a.address for a in result.remaining], result)
    else:
        output.render_apply(result, already=len(the_plan.unchanged))
    if result.verify_error:  # the outcomes above first, then the one error line
        print(f"error: verify: {result.verify_error}", file=sys.stderr)
    return EXIT_INTERRUPTED if result.interrupted else 0 if result.ok else 1


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells and terraform report it


@contextmanager
def _interrupts():
    """terraform's interrupt handling: the first SIGINT or SIGTERM asks apply to stop
    gracefully (no new action starts, running ones get a few seconds, the summary is
    printed, the lock released); a second one stops at once."""
    stop = threading.Event()

    def handle(signum, frame):
        if stop.is_set():
            raise Interrupted
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stream():
    from . import __version__
    from .stream import JsonStream

    stream = JsonStream()
    stream.version(__version__)
    return stream


def _locked(run: pipeline.Run, command: str, timeout: float):
    """One writer per daemon: the lock is keyed by the daemon's ID."""
    from .lock import hold

    return hold(run.engine.info().get("ID") or run.engine.host, command, timeout=timeout)


@app.command()
def show(
    plan_file: Annotated[Path, typer.Argument(metavar="FILE", help="A plan saved by `plan --out`.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the saved plan as JSON (the whole file).")] = False,
) -> int:
    """Print a saved plan: its actions as `plan` showed them, when and how it was made."""
    from . import output, saved

    document = saved.read(plan_file)
    if json_:
        output.emit_json(document)
        return 0
    options = {k: v for k, v in document["options"].items() if v not in (None, False, [], ())}
    output.emit(f"Saved plan {plan_file}: made {document['created']} with {json.dumps(options)}")
    output.emit(document["rendered"].rstrip("\n"))
    return 0


@app.command("tag-localhost")
def tag_localhost(
    images: Annotated[
        list[str] | None,
        typer.Argument(metavar="[IMAGE]...", help="Base images to alias [default: all of the stack's]"),
    ] = None,
    stack: StackOpt = None,
    host: HostOpt = None,
    network: NetworkOpt = None,
    registry: RegistryOpt = None,
    json_: JsonOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
) -> int:
    """Create or fix the alias tags alone, at once, from any local copy of each image (the old standalone command).

    The copy is the first present of: the internal registry's name, the full name, the name without its
    registry host, an alias. Nothing is pulled; an image with no local copy fails."""
    from . import (
        output,
        pipeline,  # imported here: --help stays light
    )

    run = _prepare(stack, network, registry, host, images)
    with _locked(run, "reconcile tag-localhost", lock_timeout):
        the_plan = pipeline.aliases_only(run)
        if not json_:
            output.render_plan(the_plan)
        reporter = output.ProgressReporter(total=len(the_plan.actions))
        try:
            result = pipeline.apply(run, the_plan, reporter=reporter, verify=pipeline.aliases_only)
        finally:
            reporter.close()
    if json_:
        output.emit_json(output.apply_json(the_plan, result))
    elif not the_plan.empty:
        output.render_apply(result)
    return 0 if result.ok else 1


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder for the archives and their manifest (created).")],
    stack: StackOpt = None,
    host: HostOpt = None,
    network: NetworkOpt = None,
    registry: RegistryOpt = None,
    tag: TagOpt = None,
    role: RoleOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Write every image the stack needs on a host of its network and role (base images, aliases, service
    images) as `docker save` archives with a manifest, for an air-gapped host: `reconcile import` loads them.

    An archive of the same image with the same names is not written again."""
    from . import offline, output, pipeline

    run = pipeline.prepare(
        stack, network=network, registry=registry, host=host, tag=tag, role=role.value if role else None
    )
    report = offline.export(run, out)
    output.render_offline(report, "Export", json_)
    return 0 if report.ok else 1


@app.command("import")
def import_(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="A folder written by `reconcile export`.")],
    host: HostOpt = None,
    json_: JsonOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
) -> int:
    """Load the archives of `reconcile export` whose images the daemon lacks, and give every image all its
    names (aliases included). An image present under every name is not loaded again."""
    from . import offline, output
    from .engine import Engine
    from .lock import hold

    engine = Engine(host)
    with hold(engine.info().get("ID") or engine.host, "reconcile import", timeout=lock_timeout):
        report = offline.import_(engine, folder)
    output.render_offline(report, "Import", json_)
    return 0 if report.ok else 1


@app.command()
def images(
    stack: StackOpt = None, network: NetworkOpt = None, registry: RegistryOpt = None, json_: JsonOpt = False
) -> int:
    """List the base images the stack needs, and where each is used (templates rendered first)."""
    from . import (
        output,
        pipeline,  # imported here: --help stays light
    )

    found = pipeline.discover(stack, network=network, registry=registry)
    if json_:
        output.emit_json(output.images_json(found.bases, found.stack.rel))
    else:
        output.render_images(found.bases, found.stack.rel)
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
    from . import output
    from . import stack as stack_mod
    from .network import decide

    loaded = stack_mod.read(stack)  # the network section only: nothing rendered or read beyond it
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


class Interrupted(BaseException):
    """Stop at once (a signal outside apply's graceful stop, or a second one).  Not a
    KeyboardInterrupt, which typer turns into a silent exit 130; unwinding releases locks."""


def _interrupt(signum, frame):
    raise Interrupted


def _command_name(info: typer.models.CommandInfo) -> str:
    return info.name or typer.main.get_command_name(getattr(info.callback, "__name__", ""))


def _only_the_command_named(args: list[str]) -> typer.Typer:
    """The app with just the command the arguments name, when they name one: typer builds
    every command's parser on each start (about 1.5 ms each, the whole of start-up for
    ``--help``).  The top level's own options take no values, so the first argument not
    starting with ``-`` is the command; anything else (no command, a misspelt one, the top
    level's ``--help``, shell completion) gets the whole app, for its listing and suggestions."""
    at = next((i for i, arg in enumerate(args) if not arg.startswith("-")), None)
    chosen = [c for c in app.registered_commands if at is not None and _command_name(c) == args[at]]
    if not chosen or "--help" in args[:at] or "_RECONCILE_COMPLETE" in os.environ:
        return app
    lean = copy.copy(app)
    lean.registered_commands = chosen
    return lean


def main(argv: list[str] | None = None) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):  # apply replaces these with a graceful stop while it runs
        signal.signal(sig, _interrupt)
    args = sys.argv[1:] if argv is None else argv
    try:
        code = _only_the_command_named(args)(args=args, prog_name="reconcile", standalone_mode=False)
    except ReconcileError as exc:
        for line in [str(exc), *exc.more]:
            print(f"error: {line}", file=sys.stderr)
        code = 1
    except (Interrupted, typer.Abort, KeyboardInterrupt):
        print("error: interrupted: stopped at once; a later apply finishes what is left", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except EOFError:
        print("error: standard input closed; nothing was done", file=sys.stderr)
        code = 1
    except typer.TyperException as exc:  # usage errors (typer vendors click's exception tree)
        ctx = getattr(exc, "ctx", None)
        where = f" ({ctx.command_path})" if ctx is not None else ""
        print(f"error: {exc.format_message()}{where}; see --help", file=sys.stderr)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
