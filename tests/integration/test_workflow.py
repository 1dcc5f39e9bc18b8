"""The terraform workflow against the real engine: saved plans, the daemon lock,
the apply --json stream, drift metrics for cron, and upstream drift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from reconciler.stream import LINE
from tests import harness
from tests.conftest import HARBOR_PROJECT, internal_env, tags


def _metrics(path: Path) -> dict[str, float]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


# --- saved plans -------------------------------------------------------------------


def test_an_unchanged_saved_plan_is_applied_exactly_without_asking(cli, daemon, make_stack, tmp_path):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    env = internal_env(daemon)
    saved = tmp_path / "plan.json"
    made = cli("plan", "--out", str(saved), "-s", str(stack), env=env)
    assert made.code == 0 and f"reconcile apply {saved}" in made.out
    assert tags(daemon) == {}  # planning changes nothing

    shown = cli("show", str(saved))
    assert shown.code == 0 and "Plan: 1 to pull, 2 to tag, 1 to build." in shown.out
    document = cli("show", "--json", str(saved)).json()
    assert document["format_version"] == "1.0" and document["options"]["stack"] == str(stack / "stack.toml")
    planned = [a["address"] for a in document["plan"]["actions"]]

    # No stack option, no environment, no terminal: the file says everything, and needs no confirmation.
    applied = cli("apply", "--json", str(saved), env=env)
    assert applied.code == 0, applied.err
    lines = [json.loads(line) for line in applied.out.splitlines()]
    assert [line["change"]["address"] for line in lines if line["type"] == "planned_change"] == planned
    assert sorted(line["hook"]["address"] for line in lines if line["type"] == "apply_complete") == sorted(planned)
    assert lines[-1]["verify"] == {"converged": True, "remaining": []}
    assert cli("plan", "--detailed-exitcode", "-s", str(stack), env=env).code == 0


def test_a_saved_plan_is_refused_when_the_daemon_changed_behind_it(cli, daemon, make_stack, tmp_path):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    env = internal_env(daemon)
    assert cli("apply", "--auto-approve", "-s", str(stack), env=env).code == 0
    harbor = f"{daemon.harbor}/{HARBOR_PROJECT}"
    api = daemon.api()
    api.pull(f"{harbor}/nginx", tag="stable")
    api.tag(f"{harbor}/nginx:stable", "localhost/redis", "7-alpine")  # an alias moved
    api.close()
    saved = tmp_path / "plan.json"
    assert cli("plan", "--out", str(saved), "-s", str(stack), env=env).code == 0

    api = daemon.api()
    api.tag(f"{harbor}/redis:7-alpine", "localhost/redis", "7-alpine")  # someone fixed it by hand...
    api.remove_image(f"{harbor}/nginx:stable")  # ...and removed an image
    api.close()
    before = tags(daemon)
    refused = cli("apply", str(saved), env=env)
    assert refused.code == 1
    (line,) = refused.err.strip().splitlines()
    assert line.startswith(f"error: {saved}: saved plan is stale: image localhost/redis:7-alpine: sha256:")
    assert "nothing was done" in line
    assert tags(daemon) == before

    api = daemon.api()
    api.remove_image("api:latest")  # the built image is removed
    api.close()
    gone = cli("apply", str(saved), env=env)
    assert gone.code == 1 and "image api:latest: sha256:" in gone.err and "→ absent" in gone.err


def test_a_saved_plan_of_a_newer_format_is_refused(cli, daemon, make_stack, tmp_path):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    saved = tmp_path / "plan.json"
    assert cli("plan", "--out", str(saved), "-s", str(stack), env=internal_env(daemon)).code == 0
    document = json.loads(saved.read_text())
    document["format_version"] = "2.0"
    saved.write_text(json.dumps(document))
    refused = cli("apply", str(saved), env=internal_env(daemon))
    assert refused.code == 1 and "saved plan format 2.0 is newer than what this reconcile reads (1.x)" in refused.err
    assert tags(daemon) == {}


# --- locking -------------------------------------------------------------------------

SLOW = "FROM redis:7-alpine\nRUN sleep 4\n"


def _start_apply(daemon, stack: Path, cache: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_STACK",)}
    env.update(internal_env(daemon), DOCKER_HOST=daemon.docker_host, RECONCILE_CACHE_DIR=str(cache), NO_COLOR="1")
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "-s", str(stack), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_note(cache: Path, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for note in cache.glob("locks/daemon-*.json"):
            try:
                return json.loads(note.read_text())
            except ValueError:
                pass
        time.sleep(0.05)
    raise AssertionError("the first apply never took the lock")


def test_a_second_apply_fails_at_once_naming_the_holder_then_one_that_waits_converges(
    cli, daemon, make_stack, tmp_path
):
    stack = make_stack({"api": SLOW}, toml='build_network = "none"\n')
    cache = tmp_path / "cache"  # the cli fixture's cache dir: both runs share the lock folder
    first = _start_apply(daemon, stack, cache)
    try:
        holder = _wait_for_note(cache)
        assert holder["pid"] == first.pid and holder["command"] == "reconcile apply"
        refused = cli("apply", "--auto-approve", "-s", str(stack), env=internal_env(daemon))
        assert refused.code == 1
        assert f"the daemon is locked by pid {first.pid}" in refused.err and "--lock-timeout" in refused.err
        waited = cli("apply", "--auto-approve", "--lock-timeout", "120", "-s", str(stack), env=internal_env(daemon))
        assert waited.code == 0, waited.err
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # The second apply planned after the first finished: nothing was left for it.
    assert "No changes" in waited.out
    assert cli("plan", "--detailed-exitcode", "-s", str(stack), env=internal_env(daemon)).code == 0


def test_plans_do_not_wait_for_a_running_apply(cli, daemon, make_stack, tmp_path):
    stack = make_stack({"api": SLOW}, toml='build_network = "none"\n')
    first = _start_apply(daemon, stack, tmp_path / "cache")
    try:
        _wait_for_note(tmp_path / "cache")
        assert cli("plan", "-s", str(stack), env=internal_env(daemon)).code == 0
    finally:
        first.wait(timeout=120)


# --- the JSON stream --------------------------------------------------------------------


def test_the_apply_json_stream_parses_line_by_line_and_matches_the_schema(cli, daemon, make_stack):
    stack = make_stack(
        {
            "api": "FROM redis:7-alpine\n",
            "gone": "FROM example/not-mirrored:1.0\n",
            "bad": "FROM nginx:stable\nRUN exit 3\n",
        },
        toml='build_network = "none"\n',
    )
    result = cli("apply", "--auto-approve", "--json", "-s", str(stack), env=internal_env(daemon))
    assert result.code == 1
    lines = [LINE.validate_json(text) for text in result.out.splitlines()]  # every line is one valid object
    assert lines[0].type == "version" and lines[-1].type == "change_summary"
    assert all(line.level and line.message and line.timestamp.endswith("Z") for line in lines)
    planned = [line.change["address"] for line in lines if line.type == "planned_change"]
    started = [line.hook.address for line in lines if line.type == "apply_start"]
    ended = {line.hook.address: line for line in lines if line.type in ("apply_complete", "apply_errored")}
    assert set(ended) == set(planned) and set(started) <= set(planned)
    errored = {a: line.hook for a, line in ended.items() if line.type == "apply_errored"}
    assert set(errored) == {f"pull[{daemon.harbor}/{HARBOR_PROJECT}/example/not-mirrored:1.0]", "build[bad]"}
    assert all(hook.error for hook in errored.values())
    assert ended["build[gone]"].hook.status == "skipped"
    assert any(line.type == "apply_progress" and line.hook.address == "build[api]" for line in lines)
    summary = lines[-1]
    assert summary.level == "error" and summary.changes.failed == 2 and not summary.verify.converged


def test_an_error_before_any_action_is_a_diagnostic_line(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:${NOPE}\n"})
    result = cli("apply", "--auto-approve", "--json", "-s", str(stack), env=internal_env(daemon))
    assert result.code == 1
    version, diagnostic = [LINE.validate_json(text) for text in result.out.splitlines()]
    assert version.type == "version"
    assert diagnostic.type == "diagnostic" and diagnostic.diagnostic.severity == "error"
    assert "undefined variable NOPE" in diagnostic.diagnostic.summary
    assert result.err.count("error:") == 1


# --- drift checks ----------------------------------------------------------------------


def test_the_metrics_file_counts_drift_after_a_tag_is_moved(cli, daemon, make_stack, tmp_path):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    env = internal_env(daemon)
    metrics = tmp_path / "textfile" / "reconcile.prom"
    metrics.parent.mkdir()
    assert cli("apply", "--auto-approve", "-s", str(stack), env=env).code == 0
    assert cli("plan", "--detailed-exitcode", "--metrics-file", str(metrics), "-s", str(stack), env=env).code == 0
    assert _metrics(metrics)['reconcile_drift_total{stack="t"}'] == 0

    api = daemon.api()
    api.tag(f"{daemon.harbor}/{HARBOR_PROJECT}/redis:7-alpine", "localhost/redis", "7-alpine")
    api.pull(f"{daemon.harbor}/{HARBOR_PROJECT}/nginx", tag="stable")
    api.tag(f"{daemon.harbor}/{HARBOR_PROJECT}/nginx:stable", "localhost/redis", "7-alpine")
    api.close()
    check = cli("plan", "--detailed-exitcode", "--metrics-file", str(metrics), "-s", str(stack), env=env)
    assert check.code == 2
    values = _metrics(metrics)
    assert values['reconcile_drift_actions{stack="t",kind="tag"}'] == 1
    assert values['reconcile_drift_actions{stack="t",kind="build"}'] == 0
    assert values['reconcile_drift_total{stack="t"}'] == 1
    assert values['reconcile_check_success{stack="t"}'] == 1
    assert values['reconcile_network_mode_info{stack="t",mode="internal"}'] == 1
    assert abs(values['reconcile_last_check_timestamp_seconds{stack="t"}'] - time.time()) < 60
    assert sorted(p.name for p in metrics.parent.iterdir()) == ["reconcile.prom"]  # written atomically

    (stack / "stack.toml").write_text("[stack\n")
    failed = cli("plan", "--detailed-exitcode", "--metrics-file", str(metrics), "-s", str(stack), env=env)
    assert failed.code == 1
    values = _metrics(metrics)
    assert values['reconcile_check_success{stack="unknown"}'] == 0
    assert not any(name.startswith("reconcile_drift") for name in values)


# --- upstream drift ---------------------------------------------------------------------


def test_refresh_remote_sees_a_tag_pushed_anew_and_apply_brings_the_local_copy_up_to_date(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM busybox:1.36\n"})
    env = internal_env(daemon)
    source = f"{daemon.harbor}/{HARBOR_PROJECT}/busybox:1.36"
    assert cli("apply", "--auto-approve", "-s", str(stack), env=env).code == 0
    old = tags(daemon)[source]
    old_digest = harness.registry_digest(daemon.harbor, f"{HARBOR_PROJECT}/busybox", "1.36")
    try:
        new_digest = harness.seed(daemon, {source: "harbor-pushed-anew"}, force=True)[source]
        api = daemon.api()
        api.tag(old, source)  # seeding leaves the local tag alone: it still names the old image
        api.close()
        assert cli("plan", "--detailed-exitcode", "-s", str(stack), env=env).code == 0  # local-only: blind to it

        plan = cli("plan", "--json", "--refresh-remote", "-s", str(stack), env=env).json()
        actions = {a["address"]: a for a in plan["actions"]}
        assert actions[f"pull[{source}]"]["reason"] == "remote-changed"
        # A digest beside a digest: the local copy is named by its repo digest, not its image ID.
        assert actions[f"pull[{source}]"]["detail"] == (
            f"the registry now serves {new_digest[:19]}; the local copy is {old_digest[:19]}"
        )
        assert actions["tag[busybox:1.36]"]["depends_on"] == [f"pull[{source}]"]
        assert actions["build[api]"]["reason"] == "base-changed"
        # The plan names the command that acts on it: a plain apply asks no registry.
        text = cli("plan", "--refresh-remote", "-s", str(stack), env=env).out
        assert "Upstream changed: `reconcile apply --refresh-remote`" in text

        assert cli("apply", "--auto-approve", "--refresh-remote", "-s", str(stack), env=env).code == 0
        now = tags(daemon)
        assert now[source] != old and now["busybox:1.36"] == now["localhost/busybox:1.36"] == now[source]
        api = daemon.api()
        assert any(d.endswith(new_digest) for d in api.inspect_image(source)["RepoDigests"])
        api.close()
        assert cli("plan", "--detailed-exitcode", "--refresh-remote", "-s", str(stack), env=env).code == 0
    finally:
        harness.seed(daemon, {source: "harbor"}, force=True)  # put the session's copy back


def test_refresh_remote_asks_through_the_daemon_so_docker_hub_names_go_to_its_mirror(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    env = {"AI_INFRA_NETWORK_ENV": "external"}
    mirrored = f"{daemon.hub}/library/redis:7-alpine"  # the daemon's --registry-mirror serves Docker Hub names
    assert cli("apply", "--auto-approve", "-s", str(stack), env=env).code == 0
    old_digest = harness.registry_digest(daemon.hub, "library/redis", "7-alpine")
    try:
        new_digest = harness.seed(daemon, {mirrored: "hub-pushed-anew"}, force=True)[mirrored]
        plan = cli("plan", "--json", "--refresh-remote", "-s", str(stack), env=env).json()
        assert plan["warnings"] == []
        pull = {a["address"]: a for a in plan["actions"]}["pull[redis:7-alpine]"]
        assert pull["reason"] == "remote-changed"
        assert pull["detail"] == f"the registry now serves {new_digest[:19]}; the local copy is {old_digest[:19]}"
    finally:
        harness.seed(daemon, {mirrored: "hub"}, force=True)


def test_an_unreachable_registry_is_reported_per_image_not_fatal(cli, daemon, make_stack):
    stack = make_stack(
        {"api": "FROM redis:7-alpine\n", "far": "FROM 127.0.0.1:9/team/tool:1\n", "gone": "FROM example/gone:1\n"}
    )
    env = {"AI_INFRA_NETWORK_ENV": "external"}
    result = cli("plan", "--json", "--refresh-remote", "-s", str(stack), env=env)
    assert result.code == 0, result.err
    warnings = [w for w in result.json()["warnings"] if w.startswith("cannot check")]
    (far,) = [w for w in warnings if w.startswith("cannot check 127.0.0.1:9/team/tool:1 upstream: ")]
    assert "connection refused" in far and "\n" not in far
    assert "cannot check example/gone:1 upstream: manifest unknown" in " ".join(warnings)
    assert not any("redis" in w for w in warnings)
