"""Scope against the real engine: ``--target`` (services, images, action addresses),
``--only`` (kinds of action, build.sh's steps), and ``tag-localhost`` from any local
copy of an image.  Scoped runs follow the four steps in their scope: plan, apply,
plan again (empty), apply again (nothing)."""

from __future__ import annotations

from tests.conftest import HARBOR_PROJECT, internal_env, origin, tags
from tests.integration.test_builds import ENV, four_steps, plan_json, reasons, three_services


def _pull(engine, ref: str, *, as_: str | None = None) -> None:
    """Put ``ref`` on the daemon (optionally only under the name ``as_``), through docker-py."""
    api = engine.api()
    try:
        repository, tag = ref.rsplit(":", 1)
        api.pull(repository, tag=tag)
        if as_ is not None:
            name, new_tag = as_.rsplit(":", 1)
            api.tag(ref, name, new_tag)
            api.remove_image(ref)
    finally:
        api.close()


def external_env(engine) -> dict[str, str]:
    """An external network that still knows the internal registry's name."""
    return {**internal_env(engine), **ENV}


def test_target_a_base_image_plans_and_applies_only_its_pull_and_aliases(cli, daemon, make_stack):
    stack = three_services(make_stack)
    env = internal_env(daemon)
    harbor = f"{daemon.harbor}/{HARBOR_PROJECT}"

    plan, applied = four_steps(cli, stack, "--target", "redis:7-alpine", env=env)
    assert reasons(plan) == [
        (f"pull[{harbor}/redis:7-alpine]", "missing"),
        ("tag[redis:7-alpine]", "missing"),
        ("tag[localhost/redis:7-alpine]", "missing"),
    ]
    assert plan["partial"] is True and plan["targets"] == ["redis:7-alpine"]
    assert applied.summary["built"] == 0
    now = tags(daemon)
    assert set(now) == {f"{harbor}/redis:7-alpine", "redis:7-alpine", "localhost/redis:7-alpine"}
    assert len(set(now.values())) == 1

    # The same target with nothing left to do: an empty plan that says it is partial.
    text = cli("plan", "--target", "redis:7-alpine", "-s", str(stack), env=env)
    assert text.code == 0, text.err
    assert "Note: this plan is partial (--target redis:7-alpine)" in text.out
    assert "No changes for --target redis:7-alpine." in text.out


def test_a_compose_only_image_is_a_target_like_a_base_image(cli, daemon, make_stack):
    compose = """
        services:
          cache:
            image: busybox:1.36
          web:
            image: nginx:stable
    """
    stack = make_stack({"api": "FROM redis:7-alpine\n"}, compose=compose)
    plan, _ = four_steps(cli, stack, "--target", "docker.io/library/busybox:1.36")
    assert reasons(plan) == [("pull[busybox:1.36]", "missing"), ("tag[localhost/busybox:1.36]", "missing")]
    assert set(tags(daemon)) == {"busybox:1.36", "localhost/busybox:1.36"}


def test_target_an_action_address_applies_it_and_what_it_depends_on(cli, daemon, make_stack):
    stack = three_services(make_stack)
    plan, _ = four_steps(cli, stack, "--target", "tag[localhost/redis:7-alpine]")
    assert reasons(plan) == [("pull[redis:7-alpine]", "missing"), ("tag[localhost/redis:7-alpine]", "missing")]
    assert set(tags(daemon)) == {"redis:7-alpine", "localhost/redis:7-alpine"}


def test_a_target_that_is_nothing_is_one_line_and_changes_nothing(cli, daemon, make_stack):
    stack = three_services(make_stack)
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = cli(*command, "--target", "mysql:8", "-s", str(stack), env=ENV)
        assert result.code == 1
        [line] = result.err.strip().splitlines()
        assert line.startswith(
            "error: command line: --target 'mysql:8': no service, image or action of this stack; services: "
        )
        assert "images: nginx:stable, redis:7-alpine; or an action as plan prints it (pull[" in line
    assert tags(daemon) == {}


def test_only_pull_and_tag_is_build_sh_steps_one_and_two_and_only_build_is_step_three(cli, daemon, make_stack):
    stack = three_services(make_stack)
    plan, applied = four_steps(cli, stack, "--only", "pull", "--only", "tag")
    assert reasons(plan) == [
        ("pull[nginx:stable]", "missing"),
        ("pull[redis:7-alpine]", "missing"),
        ("tag[localhost/nginx:stable]", "missing"),
        ("tag[localhost/redis:7-alpine]", "missing"),
    ]
    assert plan["only"] == ["pull", "tag"] and plan["partial"] is True and plan["warnings"] == []
    assert applied.summary["built"] == 0
    assert not [t for t in tags(daemon) if t.startswith("t-")]

    rest = plan_json(cli, stack)
    assert reasons(rest) == [("build[base]", "missing"), ("build[other]", "missing"), ("build[app]", "missing")]

    plan, applied = four_steps(cli, stack, "--only", "build")
    assert plan["warnings"] == [] and applied.summary["built"] == 3
    assert plan_json(cli, stack)["actions"] == []


def test_only_build_builds_from_what_is_there_when_a_tag_it_needs_is_left_out(cli, daemon, make_stack):
    # FROM the alias, which points at the Harbor copy while an external network wants the Hub one.
    stack = make_stack({"api": "FROM localhost/redis:7-alpine\n"}, toml='image_prefix = "t-"\n')
    _pull(daemon, "redis:7-alpine")
    _pull(daemon, f"{daemon.harbor}/{HARBOR_PROJECT}/redis:7-alpine", as_="localhost/redis:7-alpine")

    text = cli("plan", "--only", "build", "-s", str(stack), env=ENV)
    assert text.code == 0, text.err
    assert (
        "Warning: build[api] depends on tag[localhost/redis:7-alpine], left out by --only build: "
        "it runs against what is there now" in text.err
    )
    plan, applied = four_steps(cli, stack, "--only", "build")
    assert reasons(plan) == [("build[api]", "missing")]
    assert plan["actions"][0]["depends_on"] == []
    assert applied.outcomes["build[api]"]["status"] == "succeeded"
    assert origin(daemon, "t-api:latest") == "harbor"  # built FROM the alias as it was

    # A full plan then fixes the alias and rebuilds on the image the stack wants.
    full = plan_json(cli, stack)
    assert reasons(full) == [("tag[localhost/redis:7-alpine]", "moved"), ("build[api]", "base-changed")]


def test_a_saved_plan_keeps_only(cli, daemon, make_stack, tmp_path):
    stack = three_services(make_stack)
    saved = tmp_path / "steps.plan"
    made = cli("plan", "--only", "pull", "--out", str(saved), "-s", str(stack), env=ENV)
    assert made.code == 0, made.err
    shown = cli("show", str(saved), env=ENV)
    assert '"only": ["pull"]' in shown.out and "Plan for --only pull: 2 to pull." in shown.out
    refused = cli("apply", str(saved), "--only", "tag", env=ENV)
    assert refused.code == 1 and "--only cannot be combined with a saved plan" in refused.err
    applied = cli("apply", str(saved), "--json", env=ENV)
    assert applied.code == 0, applied.out + applied.err
    assert applied.stream().verify == {"converged": True, "remaining": []}
    assert set(tags(daemon)) == {"redis:7-alpine", "nginx:stable"}


def test_tag_localhost_from_a_harbor_only_copy_names_it(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    harbor = f"{daemon.harbor}/{HARBOR_PROJECT}"
    _pull(daemon, f"{harbor}/redis:7-alpine")

    for env in (external_env(daemon), internal_env(daemon)):  # the Harbor copy comes first on either network
        done = cli("tag-localhost", "-s", str(stack), env=env)
        assert done.code == 0, done.out + done.err
    now = tags(daemon)
    assert now["localhost/redis:7-alpine"] == now["redis:7-alpine"] == now[f"{harbor}/redis:7-alpine"]
    assert origin(daemon, "localhost/redis:7-alpine") == "harbor"


def test_tag_localhost_names_the_copy_in_its_output(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    harbor = f"{daemon.harbor}/{HARBOR_PROJECT}"
    _pull(daemon, f"{harbor}/redis:7-alpine")
    done = cli("tag-localhost", "-s", str(stack), env=external_env(daemon))
    assert done.code == 0, done.out + done.err
    assert (
        f"tag[localhost/redis:7-alpine]: ✓ created redis:7-alpine → localhost/redis:7-alpine "
        f"(from {harbor}/redis:7-alpine, sha256:" in done.err
    )
    assert f"+ tag {harbor}/redis:7-alpine → localhost/redis:7-alpine" in done.out
    assert "Verify: converged" in done.out


def test_tag_localhost_from_a_short_name(cli, daemon, make_stack):
    # build.sh's users pulled redis:7-alpine from Docker Hub even on an internal network.
    stack = make_stack({"api": "FROM redis:7-alpine\n", "ops": "FROM quay.io/argoproj/argocd:v2\n"})
    _pull(daemon, "redis:7-alpine")
    # quay.io's image known only by its name without the registry host.
    _pull(daemon, f"{daemon.harbor}/{HARBOR_PROJECT}/argoproj/argocd:v2", as_="argoproj/argocd:v2")

    done = cli("tag-localhost", "--json", "-s", str(stack), env=internal_env(daemon))
    assert done.code == 0, done.out + done.err
    result = done.json()
    messages = {o["address"]: o["message"] for o in result["outcomes"]}
    assert messages["tag[localhost/redis:7-alpine]"].startswith(
        "created redis:7-alpine → localhost/redis:7-alpine (sha256:"
    )
    assert messages["tag[quay.io/argoproj/argocd:v2]"].startswith(
        "created argoproj/argocd:v2 → quay.io/argoproj/argocd:v2 (sha256:"
    )
    assert messages["tag[localhost/quay.io/argoproj/argocd:v2]"].startswith(
        "created quay.io/argoproj/argocd:v2 → localhost/quay.io/argoproj/argocd:v2 (from argoproj/argocd:v2, sha256:"
    )
    assert "tag[redis:7-alpine]" not in messages  # the short name is the first copy: left alone
    assert result["verify"]["converged"] is True
    now = tags(daemon)
    assert now["localhost/redis:7-alpine"] == now["redis:7-alpine"]
    assert now["quay.io/argoproj/argocd:v2"] == now["localhost/quay.io/argoproj/argocd:v2"] == now["argoproj/argocd:v2"]

    again = cli("tag-localhost", "--json", "-s", str(stack), env=internal_env(daemon))
    assert again.code == 0 and again.json()["outcomes"] == []


def test_tag_localhost_tags_an_image_the_stack_does_not_use_with_a_note(cli, daemon, make_stack):
    stack = make_stack({"api": "FROM redis:7-alpine\n"})
    _pull(daemon, "busybox:1.36")
    done = cli("tag-localhost", "busybox:1.36", "-s", str(stack), env=ENV)
    assert done.code == 0, done.out + done.err
    assert "Warning: busybox:1.36 is not used by the stack: tagged as given" in done.err
    assert tags(daemon)["localhost/busybox:1.36"] == tags(daemon)["busybox:1.36"]

    missing = cli("tag-localhost", "nginx:stable", "-s", str(stack), env=ENV)
    assert missing.code == 1
    assert "tag[localhost/nginx:stable]: nginx:stable is not present" in missing.out
    assert "hint: pull it first: reconcile apply" in missing.out
