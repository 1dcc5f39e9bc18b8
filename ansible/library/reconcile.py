#!/usr/bin/python
# ruff: noqa: E402  (Ansible's layout: DOCUMENTATION, EXAMPLES and RETURN come before the imports)
"""The ``reconcile`` Ansible module: plan (check mode) or apply one stack on the managed
host's Docker daemon, through the ``reconciler`` library installed on that host.

A thin adapter, as the CLI is: the library decides, this module maps Ansible's
check mode, diff mode and results onto ``prepare`` -> ``plan`` -> ``apply``."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: reconcile
short_description: Keep a Docker host's images as a reconcile stack declares them
description:
  - Plans or applies a C(reconcile) stack on the managed host's Docker daemon, through the C(reconciler)
    Python library installed on that host (C(pip install reconcile)).
  - In check mode it runs C(reconcile plan) and changes nothing; O(ignore:changed) is true exactly when the plan has
    actions. Otherwise it runs C(reconcile apply --auto-approve), and O(ignore:changed) is true exactly when an action ran.
  - With C(--diff), the plan as C(reconcile plan) prints it is the task's diff.
  - Apply takes the daemon's lock (keyed by the daemon ID), as the CLI does, so two plays, or a play and a
    person at a terminal, never apply to one daemon at once.
  - A second run with the same stack reports no change.
version_added: "0.2.0"
author:
  - reconcile authors (!UNKNOWN)
requirements:
  - the C(reconcile) Python package (import name C(reconciler)) on the managed host, for the Python that
    C(ansible_python_interpreter) names
  - a Docker daemon reachable from the managed host
options:
  stack:
    description:
      - The stack file, or the folder holding C(stack.toml), on the managed host.
    type: path
    required: true
  docker_host:
    description:
      - The Docker daemon, as C(--host) takes it (C(unix://), C(tcp://), C(ssh://user@host)).
      - Unset, the module uses E(DOCKER_HOST), then E(DOCKER_CONTEXT), then the context C(docker context use) chose,
        then the local socket, as the docker CLI does.
    type: str
  network:
    description:
      - Where base images come from; overrides E(AI_INFRA_NETWORK_ENV), the stack's C(network.mode) and detection.
    type: str
    choices: [internal, external]
  registry:
    description:
      - The internal registry C(HOST[:PORT][/PROJECT]); overrides E(INTERNAL_REGISTRY) and the stack's.
    type: str
  tag:
    description:
      - Tag of the service images; overrides the stack's C(stack.tag).
    type: str
  targets:
    description:
      - Only these and what they depend on, as C(--target) takes them - a service, a base image or an action
        address like C(tag[localhost/redis:7-alpine]). The plan is partial.
    type: list
    elements: str
    default: []
  only:
    description:
      - Only actions of these kinds, as C(--only) takes them (C(pull), C(tag), C(write), C(build), and any kind the
        installed reconcile adds). The plan is partial.
    type: list
    elements: str
    default: []
  role:
    description:
      - The host's role, as C(--role) takes it (C(node) pulls service images instead of building them).
      - Unset, the stack's C([stack] role) applies. Needs a reconcile that knows roles; an older one fails the task
        with a message saying so.
    type: str
  push:
    description:
      - Push service images to the internal registry, as C(--push). Unset, the stack's C([stack] push) applies.
      - Needs a reconcile that can push; an older one fails the task with a message saying so.
    type: bool
  prune:
    description:
      - Remove what the stack made and no longer declares, as C(--prune). Unset, the stack's C([stack] prune) applies.
      - Needs a reconcile that can prune; an older one fails the task with a message saying so.
    type: bool
  refresh_remote:
    description:
      - Also ask each base image's registry whether its tag moved upstream, as C(--refresh-remote).
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for another apply on the same daemon; V(0) fails at once. Not used in check mode.
    type: float
    default: 0
  parallelism:
    description:
      - Pulls and builds at once, from 1 to 32.
    type: int
    default: 4
attributes:
  check_mode:
    description: Check mode runs C(reconcile plan); the same plan that a real run would apply.
    support: full
  diff_mode:
    description: The plan text is returned as RV(ignore:diff.prepared) when the plan has actions.
    support: full
  platform:
    description: Any host where the C(reconciler) library runs and can reach a Docker daemon.
    support: full
    platforms: posix
notes:
  - The module's environment reaches the library, so E(RECONCILE_CACHE_DIR), E(AI_INFRA_NETWORK_ENV),
    E(INTERNAL_REGISTRY) and E(DOCKER_HOST) can be set with the C(environment) keyword.
  - Plan warnings (for example a registry that could not be asked) are Ansible warnings.
  - docs/fleet.md in the reconcile repository shows the fleet flow - mirror, builder, nodes in serial batches,
    nightly drift check.
"""

EXAMPLES = r"""
- name: Nightly drift check (changes nothing)
  reconcile:
    stack: /srv/stack
    network: internal
  check_mode: true
  register: drift

- name: Converge the host
  reconcile:
    stack: /srv/stack
    network: internal
    lock_timeout: 600

- name: Build host - build and push the service images
  reconcile:
    stack: /srv/stack
    push: true

- name: Node - pull the service images instead of building them
  reconcile:
    stack: /srv/stack
    role: node

- name: Only the base images and their aliases (build.sh build-all steps 1-2)
  reconcile:
    stack: /srv/stack
    only: [pull, tag]
"""

RETURN = r"""
actions:
  description: The plan's actions, as C(reconcile plan --json) lists them (address, kind, reason, detail, before, ...).
  returned: success or failure after the plan was made
  type: list
  elements: dict
  sample: [{"address": "pull[redis:7-alpine]", "kind": "pull", "reason": "missing", "before": null}]
summary:
  description:
    - In check mode the plan's counts by kind (C(pull), C(tag), C(write), C(build), C(total)).
    - Otherwise apply's counts by kind done (C(pulled), C(tagged), C(written), C(built), and C(pushed),
      C(mirrored), C(untagged), C(removed) where the installed reconcile has them) and by outcome
      (C(succeeded), C(unchanged), C(failed), C(skipped)), and C(total).
  returned: success or failure after the plan was made
  type: dict
  sample: {"pulled": 1, "tagged": 2, "written": 0, "built": 0, "succeeded": 3, "unchanged": 0, "failed": 0,
           "skipped": 0, "total": 3}
network:
  description: The network decision - C(mode) (internal or external), C(source) (what decided it), C(registry).
  returned: success or failure after the stack was read
  type: dict
  sample: {"mode": "internal", "source": "--network", "registry": "aiharbor.msxf.local/aihpc"}
outcomes:
  description: Each action's outcome (address, kind, status, message, error, hint, seconds); empty in check mode.
  returned: success or failure after the plan was made
  type: list
  elements: dict
remaining:
  description: The addresses the verifying plan still wants after apply; empty when converged and in check mode.
  returned: success or failure after the plan was made
  type: list
  elements: str
partial:
  description: Whether O(targets) or O(only) made the plan partial.
  returned: success or failure after the plan was made
  type: bool
docker_host:
  description: The daemon planned or applied against.
  returned: success or failure after the daemon was chosen
  type: str
  sample: unix:///var/run/docker.sock
msg:
  description: The plan's or apply's one-line summary, or on failure the one-line error.
  returned: always
  type: str
  sample: "Plan: 1 to pull, 2 to tag."
"""

import inspect
import os
import signal
import sys
import threading
import traceback
from contextlib import contextmanager, redirect_stdout

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from reconciler import __version__ as RECONCILER_VERSION
    from reconciler import output, pipeline
    from reconciler.errors import ReconcileError, printable
    from reconciler.lock import hold
except ImportError:
    RECONCILER_IMPORT_ERROR = traceback.format_exc()
else:
    RECONCILER_IMPORT_ERROR = None

ARGUMENT_SPEC = dict(
    stack=dict(type="path", required=True),
    docker_host=dict(type="str"),
    network=dict(type="str", choices=["internal", "external"]),
    registry=dict(type="str"),
    tag=dict(type="str"),
    targets=dict(type="list", elements="str", default=[]),
    only=dict(type="list", elements="str", default=[]),
    role=dict(type="str"),
    push=dict(type="bool"),
    prune=dict(type="bool"),
    refresh_remote=dict(type="bool", default=False),
    lock_timeout=dict(type="float", default=0.0),
    parallelism=dict(type="int", default=4),
)

# Passed on only when set: a reconcile without them still serves every play that leaves them unset.
NEWER_OPTIONS = ("role", "push", "prune")
MAX_PARALLELISM = 32  # as the CLI's --parallelism
MSG_LIMIT = 2000


class TaskFailed(Exception):
    """The task fails with ``msg`` (one line) and whatever results were made before."""

    def __init__(self, msg, results=None):
        super().__init__(msg)
        self.msg = msg
        self.results = results or {}


def prepare_options(params, accepted):
    """The keyword arguments of ``pipeline.prepare`` for the module's ``params``.

    ``accepted``: the names the installed ``prepare`` takes.  An option of a newer
    reconcile, set in the play but unknown to the installed one, fails the task: run
    without it, the play would silently do less than it says."""
    if params["parallelism"] < 1 or params["parallelism"] > MAX_PARALLELISM:
        raise TaskFailed(f"parallelism={params['parallelism']} is out of range: give 1 to {MAX_PARALLELISM}")
    if params["lock_timeout"] < 0:
        raise TaskFailed(f"lock_timeout={params['lock_timeout']:g} is negative: give seconds to wait, or 0")
    options = dict(
        stack=params["stack"],
        host=params["docker_host"],
        network=params["network"],
        registry=params["registry"],
        tag=params["tag"],
        targets=list(params["targets"]),
        only=list(params["only"]),
        refresh_remote=params["refresh_remote"],
    )
    for name in NEWER_OPTIONS:
        if params[name] is None:
            continue
        if name not in accepted:
            raise TaskFailed(
                f"{name} is not supported by the reconcile installed on this host ({_version()}): "
                f"upgrade it (pip install -U reconcile), or leave {name} unset"
            )
        options[name] = params[name]
    return options


def _version():
    return f"version {RECONCILER_VERSION}" if RECONCILER_IMPORT_ERROR is None else "not installed"


def plan_results(the_plan):
    """What check mode and apply both return about the plan."""
    document = the_plan.to_json()
    return dict(
        actions=document["actions"],
        summary=document["summary"],
        network=document["network"],
        partial=document["partial"],
        outcomes=[],
        remaining=[],
    )


def check_results(the_plan):
    """Check mode: changed exactly when the plan has actions."""
    results = plan_results(the_plan)
    results.update(changed=not the_plan.empty, msg=output.summary_line(the_plan))
    return results


def apply_results(the_plan, result):
    """Normal mode: changed exactly when an action ran (an empty plan runs none)."""
    results = plan_results(the_plan)
    counts = result.summary()
    # Every kind the installed reconcile counts (pushed, untagged, ... too), not only the first four.
    kinds = [word for word in counts if word not in ("succeeded", "unchanged", "failed", "skipped", "total")]
    done = ", ".join(f"{counts[word]} {word}" for word in kinds if counts[word])
    results.update(
        changed=result.count("succeeded") > 0,
        summary=counts,
        outcomes=[o.to_json() for o in result.outcomes],
        remaining=[a.address for a in result.remaining],
        msg=output.summary_line(the_plan)
        if the_plan.empty
        else f"Apply complete: {done or 'nothing to do'}; converged.",
    )
    return results


def apply_failure(result):
    """The one line that says why apply did not converge, or None when it did."""
    failed = [o for o in result.outcomes if o.status == "failed"]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return _line(
            f"{len(failed)} of {len(result.outcomes)} actions failed: {first.action.address}: {first.error}{more}"
        )
    if result.interrupted:
        return "interrupted: no new action was started; the next run finishes what is left"
    if result.verify_error:
        return _line(f"verify: {result.verify_error}")
    if result.remaining:
        addresses = ", ".join(a.address for a in result.remaining)
        return _line(f"not converged: {len(result.remaining)} action(s) still planned after apply: {addresses}")
    return None


def _line(text):
    return printable(" ".join(text.split()), MSG_LIMIT)


def reconcile(params, check_mode, want_diff, warn):
    """Plan (check mode), or lock the daemon, plan and apply: the results for ``exit_json``.
    Raises :class:`TaskFailed` with what ``fail_json`` needs."""
    from reconciler.apply import ApplyResult

    options = prepare_options(params, set(inspect.signature(pipeline.prepare).parameters))
    results = {}
    try:
        run = pipeline.prepare(**options)
        results["network"] = dict(mode=run.network.mode, source=run.network.source, registry=run.network.registry)
        results["docker_host"] = run.engine.host
        if check_mode:
            the_plan, result = pipeline.plan(run), None
        else:
            daemon = run.engine.info().get("ID") or run.engine.host  # the CLI's lock key: one writer per daemon
            with hold(daemon, f"ansible reconcile {options['stack']}", timeout=params["lock_timeout"]):
                seen = pipeline.observe_state(run)
                the_plan, result = pipeline.plan(run, seen), ApplyResult()
                if not the_plan.empty:
                    with _graceful_sigterm() as stop:
                        result = pipeline.apply(run, the_plan, parallelism=params["parallelism"], stop=stop, seen=seen)
    except ReconcileError as exc:
        if exc.where == "command line":  # where the library says its caller's options are
            exc.where = "module arguments"
        raise TaskFailed(str(exc), results) from None
    _warn(the_plan, warn)
    results.update(check_results(the_plan) if result is None else apply_results(the_plan, result))
    if want_diff and not the_plan.empty:
        results["diff"] = dict(prepared=output.plan_text(the_plan))
    failure = None if result is None else apply_failure(result)
    if failure is not None:
        raise TaskFailed(failure, results)
    return results


def _warn(the_plan, warn):
    for warning in the_plan.warnings:
        warn(printable(warning, MSG_LIMIT))


@contextmanager
def _graceful_sigterm():
    """As the CLI handles it: the first SIGTERM starts no new action and lets apply report
    and release the lock; a second one ends the module at once."""
    stop = threading.Event()

    def handle(signum, frame):
        if stop.is_set():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        stop.set()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if RECONCILER_IMPORT_ERROR is not None:
        module.fail_json(
            msg=missing_required_lib("reconcile (the Python package reconciler: pip install reconcile)"),
            exception=RECONCILER_IMPORT_ERROR,
        )
    try:
        # stdout carries the module's JSON answer alone: anything the library prints goes to stderr.
        with redirect_stdout(sys.stderr):
            results = reconcile(module.params, module.check_mode, module._diff, module.warn)
    except TaskFailed as exc:
        module.fail_json(**{"changed": False, **exc.results, "msg": exc.msg})
    module.exit_json(**results)


if __name__ == "__main__":
    main()
