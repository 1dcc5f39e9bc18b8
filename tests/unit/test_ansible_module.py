"""The Ansible module's argument handling and results (ansible/library/reconcile.py), called
directly; plans are computed by the library from a stack and a given observed state.
Its runs against real daemons are in tests/integration/test_fleet.py."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import signal
from pathlib import Path

import pytest
import typer.main
import yaml
from ansible.module_utils.testing import patch_module_args

from reconciler import cli, pipeline
from reconciler.actual import observe, observe_files
from reconciler.apply import ApplyResult, Outcome

MODULE_PATH = Path(__file__).resolve().parents[2] / "ansible" / "library" / "reconcile.py"


def _load():
    spec = importlib.util.spec_from_file_location("reconcile_ansible_module", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


module = _load()

DEFAULTS = dict(
    stack="/srv/stack",
    docker_host=None,
    network=None,
    registry=None,
    tag=None,
    targets=[],
    only=[],
    role=None,
    push=None,
    prune=None,
    refresh_remote=False,
    lock_timeout=0.0,
    parallelism=4,
)
PREPARE = set(inspect.signature(pipeline.prepare).parameters)

# Each module option and the `reconcile apply` option it mirrors.
CLI_OPTIONS = {
    "stack": "--stack",
    "docker_host": "--host",
    "network": "--network",
    "registry": "--registry",
    "tag": "--tag",
    "targets": "--target",
    "only": "--only",
    "role": "--role",
    "push": "--push",
    "prune": "--prune",
    "refresh_remote": "--refresh-remote",
    "lock_timeout": "--lock-timeout",
    "parallelism": "--parallelism",
}


@pytest.fixture
def stack(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AI_INFRA_NETWORK_ENV", raising=False)
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "stack.toml").write_text('[stack]\nname = "t"\nimages = ["redis:7-alpine"]\n')
    return folder


def planned(stack: Path, images: list[dict] | None = None):
    """The plan against a daemon holding ``images`` (none: empty), without a daemon."""
    run = pipeline.prepare(str(stack), network="external")
    return pipeline.plan(run, pipeline.Observation(observe(images or []), observe_files([])))


def outcome(the_plan, address: str, status: str, error: str | None = None) -> Outcome:
    action = next(a for a in the_plan.actions if a.address == address)
    return Outcome(action, status, f"{address} {status}", error=error)


def run_main(args: dict, capsys, *, check_mode: bool = False, diff: bool = False) -> dict:
    """main() as Ansible runs it: the module's JSON answer on stdout."""
    internal = {"_ansible_check_mode": check_mode, "_ansible_diff": diff}
    with patch_module_args({**args, **internal}), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


# --- arguments ------------------------------------------------------------------------


def test_every_option_mirrors_a_cli_option_or_one_the_library_is_adding():
    command = typer.main.get_command(cli.app).commands["apply"]
    flags = {flag for param in command.params for flag in param.opts}
    assert set(module.ARGUMENT_SPEC) == set(CLI_OPTIONS)
    missing = {name for name, flag in CLI_OPTIONS.items() if flag not in flags}
    assert missing <= set(module.NEWER_OPTIONS)


def test_documentation_states_each_option_as_the_argument_spec_has_it():
    """What ansible-test's validate-modules compares: names, types, defaults, choices, elements."""
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert set(documented) == set(module.ARGUMENT_SPEC)
    for name, spec in module.ARGUMENT_SPEC.items():
        doc = documented[name]
        assert doc["type"] == spec["type"], name
        assert doc.get("required", False) == spec.get("required", False), name
        assert doc.get("default") == spec.get("default"), name
        assert doc.get("choices") == spec.get("choices"), name
        assert doc.get("elements") == spec.get("elements"), name
    yaml.safe_load(module.EXAMPLES)
    assert set(yaml.safe_load(module.RETURN)) >= {"actions", "summary", "network", "outcomes", "msg"}


def test_defaults_become_the_library_defaults():
    assert module.prepare_options(DEFAULTS, PREPARE) == dict(
        stack="/srv/stack",
        host=None,
        network=None,
        registry=None,
        tag=None,
        targets=[],
        only=[],
        refresh_remote=False,
    )


def test_each_option_reaches_prepare_under_its_library_name():
    given = dict(
        DEFAULTS,
        docker_host="ssh://deploy@node-07",
        network="internal",
        registry="harbor.test/aihpc",
        tag="v2",
        targets=["api", "redis:7-alpine"],
        only=["pull", "tag"],
        refresh_remote=True,
    )
    options = module.prepare_options(given, PREPARE)
    assert options == dict(
        stack="/srv/stack",
        host="ssh://deploy@node-07",
        network="internal",
        registry="harbor.test/aihpc",
        tag="v2",
        targets=["api", "redis:7-alpine"],
        only=["pull", "tag"],
        refresh_remote=True,
    )
    assert set(options) <= PREPARE


@pytest.mark.parametrize(
    "name, value",
    [("role", "node"), ("push", True), ("push", False), ("prune", True)],
)
def test_a_newer_option_set_is_passed_when_the_library_takes_it(name, value):
    options = module.prepare_options(dict(DEFAULTS, **{name: value}), PREPARE | {name})
    assert options[name] == value


@pytest.mark.parametrize("name, value", [("role", "node"), ("push", False), ("prune", True)])
def test_a_newer_option_set_fails_clearly_when_the_library_lacks_it(name, value):
    with pytest.raises(module.TaskFailed) as info:
        module.prepare_options(dict(DEFAULTS, **{name: value}), PREPARE - {name})
    assert info.value.msg == (
        f"{name} is not supported by the reconcile installed on this host (version {module.RECONCILER_VERSION}): "
        f"upgrade it (pip install -U reconcile), or leave {name} unset"
    )


def test_newer_options_left_unset_are_not_passed_whatever_the_library():
    options = module.prepare_options(DEFAULTS, PREPARE | set(module.NEWER_OPTIONS))
    assert not set(options) & set(module.NEWER_OPTIONS)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"parallelism": 0}, "parallelism=0 is out of range: give 1 to 32"),
        ({"parallelism": 33}, "parallelism=33 is out of range: give 1 to 32"),
        ({"lock_timeout": -1.5}, "lock_timeout=-1.5 is negative: give seconds to wait, or 0"),
    ],
)
def test_numbers_out_of_range_fail_before_anything_is_read(changes, message):
    with pytest.raises(module.TaskFailed) as info:
        module.prepare_options(dict(DEFAULTS, **changes), PREPARE)
    assert info.value.msg == message


# --- results --------------------------------------------------------------------------


def test_check_mode_is_changed_exactly_when_the_plan_has_actions(stack):
    the_plan = planned(stack)
    results = module.check_results(the_plan)
    assert results["changed"] is True
    assert results["actions"] == the_plan.to_json()["actions"]
    assert [a["address"] for a in results["actions"]] == ["pull[redis:7-alpine]", "tag[localhost/redis:7-alpine]"]
    assert results["summary"] == {
        "pull": 1,
        "tag": 1,
        "write": 0,
        "build": 0,
        "push": 0,
        "mirror": 0,
        "untag": 0,
        "remove": 0,
        "total": 2,
    }
    assert results["network"] == {"mode": "external", "source": "--network", "registry": "aiharbor.msxf.local/aihpc"}
    assert (results["outcomes"], results["remaining"], results["partial"]) == ([], [], False)
    assert results["msg"] == "Plan: 1 to pull, 1 to tag."


def test_check_mode_of_a_converged_host_is_not_changed(stack):
    images = [
        {
            "Id": "sha256:" + "a" * 64,
            "RepoTags": ["redis:7-alpine", "localhost/redis:7-alpine"],
            "RepoDigests": [],
            "Labels": {},
        }
    ]
    results = module.check_results(planned(stack, images))
    assert results["changed"] is False and results["actions"] == []
    assert results["msg"] == "No changes. Images and files are up to date."


def test_apply_is_changed_exactly_when_an_action_ran(stack):
    the_plan = planned(stack)
    result = ApplyResult(
        outcomes=[
            outcome(the_plan, "pull[redis:7-alpine]", "succeeded"),
            outcome(the_plan, "tag[localhost/redis:7-alpine]", "succeeded"),
        ]
    )
    results = module.apply_results(the_plan, result)
    assert results["changed"] is True
    assert results["summary"] == result.summary() and results["summary"]["succeeded"] == 2
    assert [o["status"] for o in results["outcomes"]] == ["succeeded", "succeeded"]
    assert results["remaining"] == []
    assert results["msg"] == "Apply complete: 1 pulled, 1 tagged; converged."
    assert module.apply_failure(result) is None


def test_apply_message_counts_every_kind_done(stack):
    """A builder whose run only pushed (or a prune that only untagged) did something: the message says what."""
    the_plan = planned(stack)
    result = ApplyResult(outcomes=[outcome(the_plan, "pull[redis:7-alpine]", "succeeded")])
    counts = {**result.summary(), "pulled": 0, "pushed": 2, "untagged": 1}
    result.summary = lambda: counts  # the outcomes of push and untag actions, counted as apply counts them
    results = module.apply_results(the_plan, result)
    assert results["changed"] is True
    assert results["msg"] == "Apply complete: 2 pushed, 1 untagged; converged."


def test_apply_whose_actions_all_found_nothing_to_do_is_not_changed(stack):
    """A tag decided after its pull can turn out to point there already: unchanged, not a change."""
    the_plan = planned(stack)
    result = ApplyResult(outcomes=[outcome(the_plan, a.address, "unchanged") for a in the_plan.actions])
    results = module.apply_results(the_plan, result)
    assert results["changed"] is False
    assert module.apply_failure(result) is None


def test_apply_of_an_empty_plan_reports_zero_counts(stack):
    images = [
        {"Id": "sha256:" + "a" * 64, "RepoTags": ["redis:7-alpine", "localhost/redis:7-alpine"], "RepoDigests": []}
    ]
    results = module.apply_results(planned(stack, images), ApplyResult())
    assert results["changed"] is False and results["outcomes"] == []
    assert results["summary"] == ApplyResult().summary()
    assert results["msg"] == "No changes. Images and files are up to date."


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda p: ApplyResult(
                outcomes=[
                    outcome(p, "pull[redis:7-alpine]", "failed", "manifest unknown\nsecond line"),
                    outcome(p, "tag[localhost/redis:7-alpine]", "skipped"),
                ]
            ),
            "1 of 2 actions failed: pull[redis:7-alpine]: manifest unknown second line",
        ),
        (
            lambda p: ApplyResult(
                outcomes=[
                    outcome(p, "pull[redis:7-alpine]", "failed", "cut"),
                    outcome(p, "tag[localhost/redis:7-alpine]", "failed", "refused"),
                ]
            ),
            "2 of 2 actions failed: pull[redis:7-alpine]: cut (and 1 more)",
        ),
        (
            lambda p: ApplyResult(
                outcomes=[outcome(p, "pull[redis:7-alpine]", "succeeded")], verify_error="cannot reach the daemon"
            ),
            "verify: cannot reach the daemon",
        ),
        (
            lambda p: ApplyResult(outcomes=[outcome(p, "pull[redis:7-alpine]", "succeeded")], remaining=p.actions[1:]),
            "not converged: 1 action(s) still planned after apply: tag[localhost/redis:7-alpine]",
        ),
        (
            lambda p: ApplyResult(outcomes=[outcome(p, "pull[redis:7-alpine]", "succeeded")], interrupted=True),
            "interrupted: no new action was started; the next run finishes what is left",
        ),
    ],
    ids=["a failed action", "several failed", "verify failed", "not converged", "interrupted"],
)
def test_apply_that_did_not_converge_fails_with_one_line(stack, make, message):
    the_plan = planned(stack)
    result = make(the_plan)
    assert module.apply_failure(result) == message
    results = module.apply_results(the_plan, result)
    assert results["changed"] is (result.count("succeeded") > 0)
    assert len(results["outcomes"]) == len(result.outcomes)


# --- main, as Ansible runs it -----------------------------------------------------------


def test_an_unreachable_daemon_fails_the_task_with_the_one_line_error(stack, capsys, tmp_path):
    answer = run_main(
        {"stack": str(stack), "network": "external", "docker_host": f"unix://{tmp_path}/none.sock"},
        capsys,
        check_mode=True,
    )
    assert answer["failed"] is True and answer["changed"] is False
    assert answer["msg"].startswith(f"cannot reach the Docker daemon at unix://{tmp_path}/none.sock (")
    assert "\n" not in answer["msg"]
    assert answer["network"]["mode"] == "external"


def test_a_bad_option_value_names_the_module_arguments(stack, capsys):
    answer = run_main({"stack": str(stack), "network": "external", "only": ["pul"]}, capsys)
    assert answer["failed"] is True
    assert answer["msg"].startswith("module arguments: --only 'pul': no such kind of action; kinds are: pull, tag")


def test_a_missing_stack_fails_with_the_library_message(tmp_path, capsys):
    answer = run_main({"stack": str(tmp_path / "nowhere"), "network": "external"}, capsys)
    assert answer["failed"] is True and "not found" in answer["msg"] and str(tmp_path / "nowhere") in answer["msg"]


def test_ansible_rejects_an_unknown_network_before_the_module_runs(stack, capsys):
    answer = run_main({"stack": str(stack), "network": "intranet"}, capsys)
    assert answer["failed"] is True
    assert "value of network must be one of: internal, external, got: intranet" in answer["msg"]


def test_without_the_library_the_task_says_what_to_install(stack, capsys, monkeypatch):
    monkeypatch.setattr(
        module, "RECONCILER_IMPORT_ERROR", "Traceback ...\nModuleNotFoundError: No module named 'reconciler'"
    )
    answer = run_main({"stack": str(stack)}, capsys)
    assert answer["failed"] is True
    assert answer["msg"].startswith(
        "Failed to import the required Python library (reconcile (the Python package reconciler: pip install reconcile))"
    )
    assert "ansible_python_interpreter" in answer["msg"]


def test_a_first_sigterm_asks_apply_to_stop_instead_of_killing_the_module():
    """Apply then starts nothing new, reports and releases the lock, as the CLI does."""
    before = signal.getsignal(signal.SIGTERM)
    with module._graceful_sigterm() as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(timeout=5)
    assert signal.getsignal(signal.SIGTERM) is before
