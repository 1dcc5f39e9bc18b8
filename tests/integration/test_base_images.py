"""Base images and aliases against the real engine and registries.

Every scenario follows community.docker's four steps: check mode (plan),
real run (apply), check mode again (must be empty), real run again (must do
nothing); and what apply did must be what plan said.
"""

from __future__ import annotations

from tests.conftest import HARBOR_PROJECT, internal_env, origin, tags

APP = {
    "api": """
        ARG REDIS_TAG=6
        FROM redis:${REDIS_TAG} AS cache
        FROM osixia/openldap:stable
        COPY --from=cache /marker /redis-marker
    """,
    "ops": "FROM quay.io/argoproj/argocd:v2\n",
}
APP_TOML = '[services.api]\nbuild_args = { REDIS_TAG = "7-alpine" }\n'
NO_LIFECYCLE = {"push": 0, "mirror": 0, "untag": 0, "remove": 0}  # the push, mirror and prune kinds: off here


def four_steps(cli, env, stack):
    """plan → apply → plan → apply; returns the first plan's JSON and the first apply's JSON."""
    first = cli("plan", "--json", "--detailed-exitcode", "-s", str(stack), env=env)
    assert first.code == 2, first.err
    applied = cli("apply", "--auto-approve", "--json", "-s", str(stack), env=env)
    assert applied.code == 0, applied.out + applied.err
    done = applied.stream()
    assert [o["address"] for o in done.outcomes] == [a["address"] for a in first.json()["actions"]]
    assert {o["status"] for o in done.outcomes} <= {"succeeded", "unchanged"}
    assert done.verify == {"converged": True, "remaining": []}
    again = cli("plan", "--detailed-exitcode", "-s", str(stack), env=env)
    assert again.code == 0, again.out + again.err
    assert "No changes. Images and files are up to date." in again.out
    rerun = cli("apply", "--auto-approve", "--json", "-s", str(stack), env=env)
    assert rerun.code == 0 and rerun.stream().outcomes == []
    return first.json(), done


def test_internal_network_pulls_from_harbor_and_aliases_both_names(cli, daemon, make_stack):
    stack = make_stack(APP, toml=APP_TOML)
    harbor = f"{daemon.harbor}/{HARBOR_PROJECT}"
    plan, _ = four_steps(cli, internal_env(daemon), stack)

    assert plan["network"] == {"mode": "internal", "source": "AI_INFRA_NETWORK_ENV", "registry": harbor}
    assert plan["summary"] == {"pull": 3, "tag": 6, "write": 0, "build": 2, **NO_LIFECYCLE, "total": 11}
    pulls = [a["image"] for a in plan["actions"] if a["kind"] == "pull"]
    assert sorted(pulls) == sorted(
        [f"{harbor}/redis:7-alpine", f"{harbor}/osixia/openldap:stable", f"{harbor}/argoproj/argocd:v2"]
    )
    now = tags(daemon)
    for ref, copy in [
        ("redis:7-alpine", "redis:7-alpine"),
        ("osixia/openldap:stable", "osixia/openldap:stable"),
        ("quay.io/argoproj/argocd:v2", "argoproj/argocd:v2"),
    ]:
        source = f"{harbor}/{copy}"
        assert now[ref] == now[f"localhost/{ref}"] == now[source]
        assert origin(daemon, ref) == "harbor"
    # Every tag waits for the pull of its source.
    for action in plan["actions"]:
        if action["kind"] == "tag":
            assert action["depends_on"] == [f"pull[{action['source']}]"]


def test_external_network_pulls_through_the_mirror_and_adds_localhost_aliases(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\nCOPY --from=docker.io/library/nginx:stable / /\n"})
    plan, _ = four_steps(cli, {"AI_INFRA_NETWORK_ENV": "external"}, stack)

    assert plan["summary"] == {"pull": 2, "tag": 2, "write": 0, "build": 1, **NO_LIFECYCLE, "total": 5}
    now = tags(daemon)
    assert now["localhost/redis:7-alpine"] == now["redis:7-alpine"]
    assert now["localhost/nginx:stable"] == now["nginx:stable"]
    assert origin(daemon, "localhost/redis:7-alpine") == "hub"
    assert not any(t.startswith(daemon.harbor) for t in now)


def test_a_moved_alias_is_planned_as_moved_and_put_back(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\n", "ldap": "FROM osixia/openldap:stable\n"})
    env = internal_env(daemon)
    assert cli("apply", "--auto-approve", "-s", str(stack), env=env).code == 0
    before = tags(daemon)
    api = daemon.api()
    api.tag(before["osixia/openldap:stable"], "localhost/redis", "7-alpine", force=True)
    api.close()

    plan = cli("plan", "--detailed-exitcode", "-s", str(stack), env=env)
    assert plan.code == 2
    wrong, right = before["osixia/openldap:stable"][:19], before["redis:7-alpine"][:19]
    assert f"~ tag localhost/redis:7-alpine (now {wrong}, want {right})" in plan.out
    assert "Plan: 1 to tag." in plan.out
    moved = cli("plan", "--json", "-s", str(stack), env=env).json()["actions"]
    assert [(a["address"], a["reason"], a["before"]) for a in moved] == [
        ("tag[localhost/redis:7-alpine]", "moved", before["osixia/openldap:stable"])
    ]

    assert cli("apply", "--auto-approve", "-s", str(stack), env=env).code == 0
    assert tags(daemon) == before


def test_a_missing_harbor_image_fails_with_the_pull_hint_while_the_rest_converges(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\n", "gone": "FROM example/not-mirrored:1.0\n"})
    env = internal_env(daemon)
    harbor = f"{daemon.harbor}/{HARBOR_PROJECT}"
    # The user already has a tag the failing pull would have moved: it must survive the failure.
    api = daemon.api()
    api.pull(f"{harbor}/osixia/openldap", tag="stable")
    api.tag(f"{harbor}/osixia/openldap:stable", "example/not-mirrored", "1.0")
    api.close()
    kept = tags(daemon)["example/not-mirrored:1.0"]

    result = cli("apply", "--auto-approve", "-s", str(stack), env=env)
    assert result.code == 1
    assert f"hint: the registry has no {harbor}/example/not-mirrored:1.0" in result.out
    assert f"docker pull {harbor}/example/not-mirrored:1.0" in result.out
    # api's pull, tags and build succeed; gone's two tags and its build wait for the failed pull.
    assert "1 pulled, 2 tagged, 0 written, 1 built, 1 failed, 3 skipped" in result.out
    assert "skipped: pull[" in result.err
    assert "Verify: 4 action(s) still planned after apply" in result.out
    now = tags(daemon)
    assert now["redis:7-alpine"] == now["localhost/redis:7-alpine"] == now[f"{harbor}/redis:7-alpine"]
    assert now["example/not-mirrored:1.0"] == kept
    assert "localhost/example/not-mirrored:1.0" not in now

    # The partial apply left a state the next apply finishes once the image exists.
    from tests import harness

    harness.seed(daemon, {f"{harbor}/example/not-mirrored:1.0": "harbor"})
    assert cli("apply", "--auto-approve", "-s", str(stack), env=env).code == 0
    assert cli("plan", "--detailed-exitcode", "-s", str(stack), env=env).code == 0
    harness.delete_from_registry(daemon.harbor, f"{HARBOR_PROJECT}/example/not-mirrored", "1.0")


def test_a_tag_whose_alias_already_matches_after_the_pull_is_reported_unchanged(cli, daemon, make_stack):
    # localhost/redis exists and points at the hub copy; redis itself is missing.
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    env = {"AI_INFRA_NETWORK_ENV": "external"}
    api = daemon.api()
    api.pull("redis", tag="7-alpine")
    api.tag("redis:7-alpine", "localhost/redis", "7-alpine")
    api.remove_image("redis:7-alpine")
    api.close()

    plan = cli("plan", "--json", "-s", str(stack), env=env).json()
    assert [(a["address"], a["reason"]) for a in plan["actions"]] == [
        ("pull[redis:7-alpine]", "missing"),
        ("tag[localhost/redis:7-alpine]", "moved"),
        ("build[api]", "missing"),
    ]
    applied = cli("apply", "--auto-approve", "--json", "-s", str(stack), env=env).stream()
    assert [o["status"] for o in applied.outcomes] == ["succeeded", "unchanged", "succeeded"]
    assert applied.verify["converged"]


def test_a_digest_pinned_base_is_pulled_by_digest_and_warned_about(cli, daemon, make_stack):
    from tests import harness

    digest = harness.registry_digest(daemon.hub, "library/redis", "7-alpine")
    stack = make_stack({"api": f"FROM redis@{digest}\n"})
    env = {"AI_INFRA_NETWORK_ENV": "external"}
    plan = cli("plan", "--json", "-s", str(stack), env=env).json()
    assert [a["address"] for a in plan["actions"]] == [f"pull[redis@{digest}]", "build[api]"]
    assert plan["warnings"] and "pinned by digest" in plan["warnings"][0]
    assert cli("apply", "--auto-approve", "-s", str(stack), env=env).code == 0
    assert cli("plan", "--detailed-exitcode", "-s", str(stack), env=env).code == 0


def test_tag_localhost_creates_aliases_for_present_images_only(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\n", "web": "FROM nginx:stable\n"})
    env = {"AI_INFRA_NETWORK_ENV": "external"}
    api = daemon.api()
    api.pull("redis", tag="7-alpine")
    api.close()

    only = cli("tag-localhost", "redis:7-alpine", "-s", str(stack), env=env)
    assert only.code == 0, only.err
    assert tags(daemon)["localhost/redis:7-alpine"] == tags(daemon)["redis:7-alpine"]

    every = cli("tag-localhost", "-s", str(stack), env=env)
    assert every.code == 1
    assert "tag[localhost/nginx:stable]: nginx:stable is not present" in every.out
    assert "hint: pull it first: reconcile apply" in every.out
    assert "localhost/nginx:stable" not in tags(daemon)


def test_apply_without_a_terminal_refuses_unless_auto_approved(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    result = cli("apply", "-s", str(stack), env={"AI_INFRA_NETWORK_ENV": "external"})
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "error: refusing to apply without confirmation: standard input is not a terminal; "
        "pass --auto-approve to apply non-interactively"
    ]
    assert tags(daemon) == {}


def test_the_example_stack_converges_in_internal_mode(cli, daemon, tmp_path):
    import shutil
    from pathlib import Path

    from tests import seeding

    # A copy as a clean checkout has it (no rendered files): apply renders into the stack folder.
    source = Path(__file__).resolve().parents[2] / "desired"
    rendered = {line for line in (source / ".gitignore").read_text().splitlines() if line and not line.startswith("#")}
    example = tmp_path / "desired"
    shutil.copytree(
        source,
        example,
        ignore=lambda folder, names: [n for n in names if str((Path(folder) / n).relative_to(source)) in rendered],
    )
    seeding.seed_stack(daemon, str(example))
    env = internal_env(daemon)
    applied = cli("apply", "--auto-approve", "--json", "-s", str(example), env=env)
    assert applied.code == 0, applied.out[-2000:] + applied.err[-2000:]
    done = applied.stream()
    assert done.summary["failed"] == 0 and done.summary["built"] == 11 and done.summary["written"] == 2
    again = cli("plan", "--detailed-exitcode", "-s", str(example), env=env)
    assert again.code == 0 and "No changes." in again.out
