"""Service builds against the real engine: BuildKit through the daemon's API.

The stack: ``base`` (FROM redis:7-alpine), ``app`` (FROM base's own image,
through ``STACK_TAG``) and ``other`` (FROM nginx:stable, independent).  Every
scenario follows the four steps -- plan, apply, plan again (empty), apply
again (nothing) -- and checks the images through docker-py, not reconcile.
"""

from __future__ import annotations

import io
import tarfile
import textwrap
from dataclasses import dataclass

import pytest

from tests.conftest import HARBOR_PROJECT, internal_env, tags

ENV = {"AI_INFRA_NETWORK_ENV": "external"}
# The private engine has no bridge network: RUN steps need build_network = "none".
TOML = 'image_prefix = "t-"\nbuild_network = "none"\n'
SERVICES = {
    "base": """
        FROM redis:7-alpine
        ARG GREETING=hi
        COPY base.txt /base.txt
        RUN echo "$GREETING" > /greeting
    """,
    "app": """
        ARG STACK_TAG
        FROM t-base:${STACK_TAG}
        ARG STACK_TAG
        COPY app.txt /app.txt
        RUN cat /base.txt /app.txt > /both && echo "$STACK_TAG" > /tag
    """,
    "other": """
        FROM nginx:stable
        COPY other.txt /other.txt
    """,
}


def three_services(make_stack, toml: str = "", dockerfiles: dict[str, str] | None = None):
    """The base/app/other stack, each context holding ``<name>.txt`` = "<name> 1"."""
    dockerfiles = {**SERVICES, **(dockerfiles or {})}
    stack = make_stack(dockerfiles, toml=TOML + toml)
    for name in dockerfiles:
        (stack / "src" / name / f"{name}.txt").write_text(f"{name} 1\n")
    return stack


def plan_json(cli, stack, *args: str, env=ENV) -> dict:
    result = cli("plan", "--json", "-s", str(stack), *args, env=env)
    assert result.code == 0, result.err
    return result.json()


@dataclass
class Applied:
    """``apply --json``'s stream, by address (see conftest's Result.stream)."""

    code: int
    out: str
    err: str
    planned: list[dict]  # planned_change lines: the actions, in plan order
    outcomes: dict[str, dict]  # address -> apply_complete / apply_errored hook
    summary: dict  # change_summary's changes
    verify: dict


def apply_json(cli, stack, *args: str, env=ENV) -> Applied:
    result = cli("apply", "--auto-approve", "--json", "-s", str(stack), *args, env=env)
    done = result.stream()
    return Applied(
        result.code,
        result.out,
        result.err,
        planned=done.planned,
        outcomes={o["address"]: o for o in done.outcomes},
        summary=done.summary,
        verify=done.verify,
    )


def reasons(plan: dict) -> list[tuple[str, str]]:
    return [(a["address"], a["reason"]) for a in plan["actions"]]


def four_steps(cli, stack, *args: str, env=ENV) -> tuple[dict, Applied]:
    """plan → apply → plan (empty) → apply (nothing); apply did what plan said.
    Returns the first plan's JSON and the first apply."""
    first = cli("plan", "--json", "--detailed-exitcode", "-s", str(stack), *args, env=env)
    assert first.code == 2, first.out + first.err
    planned = [(a["address"], a["reason"]) for a in first.json()["actions"]]
    done = apply_json(cli, stack, *args, env=env)
    assert done.code == 0, done.out + done.err
    assert [(a["address"], a["reason"]) for a in done.planned] == planned
    assert sorted(done.outcomes) == sorted(address for address, _ in planned)
    assert {o["status"] for o in done.outcomes.values()} <= {"succeeded", "unchanged"}, done.outcomes
    assert done.verify == {"converged": True, "remaining": []}
    again = cli("plan", "--json", "--detailed-exitcode", "-s", str(stack), *args, env=env)
    assert again.code == 0, again.out + again.err
    assert again.json()["actions"] == []
    rerun = apply_json(cli, stack, *args, env=env)
    assert rerun.code == 0 and rerun.planned == [] and rerun.outcomes == {}, rerun.out + rerun.err
    return first.json(), done


def read(engine, image: str, path: str) -> str:
    """A file's text inside an image, read from a created (never started) container."""
    api = engine.api()
    try:
        container = api.create_container(image, host_config=api.create_host_config(network_mode="none"))
        try:
            stream, _ = api.get_archive(container["Id"], path)
            data = b"".join(stream)
        finally:
            api.remove_container(container["Id"], force=True)
    finally:
        api.close()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.extractfile(tar.getmembers()[0]).read().decode()


def labels(engine, image: str) -> dict[str, str]:
    api = engine.api()
    try:
        return api.inspect_image(image)["Config"]["Labels"] or {}
    finally:
        api.close()


def built(engine) -> dict[str, str]:
    """The service images on the daemon → image ID."""
    return {t: i for t, i in tags(engine).items() if t.startswith("t-")}


def test_an_unchanged_stack_is_built_once_and_then_plans_no_builds(cli, daemon, make_stack):
    stack = three_services(make_stack)
    plan, applied = four_steps(cli, stack)

    assert reasons(plan) == [
        ("pull[nginx:stable]", "missing"),
        ("pull[redis:7-alpine]", "missing"),
        ("tag[localhost/nginx:stable]", "missing"),
        ("tag[localhost/redis:7-alpine]", "missing"),
        ("build[base]", "missing"),
        ("build[other]", "missing"),
        ("build[app]", "missing"),
    ]
    builds = {a["service"]: a for a in plan["actions"] if a["kind"] == "build"}
    assert builds["base"]["detail"] == "t-base:latest is not present"
    assert builds["base"]["depends_on"] == ["pull[redis:7-alpine]"]
    assert builds["app"]["depends_on"] == ["build[base]"]
    assert builds["app"]["image"] == "t-app:latest"
    assert applied.summary["built"] == 3 and applied.summary["pulled"] == 2

    assert set(built(daemon)) == {"t-base:latest", "t-app:latest", "t-other:latest"}
    for service in ("base", "app", "other"):
        found = labels(daemon, f"t-{service}:latest")
        assert found["io.reconcile.service"] == service
        assert found["io.reconcile.stack"] == "t"
        assert found["io.reconcile.inputs"].startswith("sha256:")
        assert "context" in found["io.reconcile.inputs.parts"]
    # app was built FROM the base just built, with STACK_TAG passed in.
    assert read(daemon, "t-app:latest", "/both") == "base 1\napp 1\n"
    assert read(daemon, "t-app:latest", "/tag") == "latest\n"
    assert read(daemon, "t-base:latest", "/greeting") == "hi\n"


def test_a_changed_context_file_rebuilds_its_service_and_dependents_only(cli, daemon, make_stack):
    stack = three_services(make_stack)
    assert apply_json(cli, stack).code == 0
    before = built(daemon)

    (stack / "src/base/base.txt").write_text("base 2\n")
    plan, _ = four_steps(cli, stack)
    assert reasons(plan) == [("build[base]", "inputs-changed"), ("build[app]", "base-changed")]
    base, app = plan["actions"]
    assert base["detail"] == "context files changed: base.txt"
    assert base["before"] == before["t-base:latest"]
    assert app["detail"] == "base image changed: t-base:latest (by build[base])"
    assert app["depends_on"] == ["build[base]"]
    after = built(daemon)
    assert after["t-other:latest"] == before["t-other:latest"]
    assert after["t-base:latest"] != before["t-base:latest"]
    assert after["t-app:latest"] != before["t-app:latest"]
    assert read(daemon, "t-app:latest", "/both") == "base 2\napp 1\n"

    # A leaf's file: that service alone.
    (stack / "src/app/app.txt").write_text("app 2\n")
    plan, _ = four_steps(cli, stack)
    assert [(a["address"], a["reason"], a["detail"]) for a in plan["actions"]] == [
        ("build[app]", "inputs-changed", "context files changed: app.txt")
    ]
    assert {t: i for t, i in built(daemon).items() if t != "t-app:latest"} == {
        t: i for t, i in after.items() if t != "t-app:latest"
    }


def _change_build_arg(stack, daemon):
    toml = stack / "stack.toml"
    toml.write_text(toml.read_text().replace('GREETING = "hi"', 'GREETING = "ho"'))


def _change_dockerfile(stack, daemon):
    with (stack / "src/base/Dockerfile").open("a") as f:
        f.write("LABEL note=changed\n")


def _move_base_tag(stack, daemon):
    api = daemon.api()
    api.tag(tags(daemon)["nginx:stable"], "redis", "7-alpine", force=True)
    api.close()


@pytest.mark.parametrize(
    "change, detail, moved_alias",
    [
        (_change_build_arg, "build args changed: GREETING", False),
        (_change_dockerfile, "Dockerfile changed", False),
        (_move_base_tag, "base image changed: redis:7-alpine", True),
    ],
    ids=["build arg", "Dockerfile", "base tag moved"],
)
def test_a_changed_build_input_rebuilds_the_affected_service_and_dependents_only(
    cli, daemon, make_stack, change, detail, moved_alias
):
    stack = three_services(make_stack, toml='[services.base]\nbuild_args = { GREETING = "hi" }\n')
    assert apply_json(cli, stack).code == 0
    before = built(daemon)

    change(stack, daemon)
    plan, _ = four_steps(cli, stack)
    expected = [("build[base]", "inputs-changed"), ("build[app]", "base-changed")]
    if moved_alias:  # localhost/redis:7-alpine follows redis:7-alpine
        expected.insert(0, ("tag[localhost/redis:7-alpine]", "moved"))
    assert reasons(plan) == expected
    assert plan["actions"][-2]["detail"] == detail
    after = built(daemon)
    assert after["t-other:latest"] == before["t-other:latest"]
    assert after["t-base:latest"] != before["t-base:latest"]
    assert after["t-app:latest"] != before["t-app:latest"]
    if change is _change_build_arg:
        assert read(daemon, "t-base:latest", "/greeting") == "ho\n"
    if moved_alias:
        assert f"ref={daemon.hub}/library/nginx:stable" in read(daemon, "t-base:latest", "/marker")


def test_in_internal_mode_a_build_waits_for_its_moved_alias_to_be_put_back(cli, daemon, make_stack):
    # FROM redis:7-alpine reads an alias of the Harbor copy: moved elsewhere, it must be fixed before the build.
    stack = three_services(make_stack)
    env = internal_env(daemon)
    assert apply_json(cli, stack, env=env).code == 0
    api = daemon.api()
    api.tag(tags(daemon)["nginx:stable"], "redis", "7-alpine", force=True)
    api.close()
    (stack / "src/base/base.txt").write_text("base 2\n")

    plan, _ = four_steps(cli, stack, env=env)
    assert reasons(plan) == [
        ("tag[redis:7-alpine]", "moved"),
        ("build[base]", "inputs-changed"),
        ("build[app]", "base-changed"),
    ]
    assert plan["actions"][1]["depends_on"] == ["tag[redis:7-alpine]"]
    assert plan["actions"][1]["detail"] == "context files changed: base.txt"  # the alias is not an input
    assert read(daemon, "t-base:latest", "/marker").startswith(f"ref={daemon.harbor}/{HARBOR_PROJECT}/redis:7-alpine\n")


def test_a_file_excluded_by_dockerignore_changes_nothing(cli, daemon, make_stack):
    stack = three_services(make_stack)
    (stack / "src/base/.dockerignore").write_text("# build noise\n*.log\nscratch/\n")
    (stack / "src/base/debug.log").write_text("one\n")
    assert apply_json(cli, stack).code == 0

    (stack / "src/base/debug.log").write_text("two\n")
    (stack / "src/base/new.log").write_text("new\n")
    (stack / "src/base/scratch").mkdir()
    (stack / "src/base/scratch/notes.txt").write_text("notes\n")
    quiet = cli("plan", "--detailed-exitcode", "-s", str(stack), env=ENV)
    assert quiet.code == 0, quiet.out
    assert "No changes. Images and files are up to date." in quiet.out

    # A file no COPY reads is not sent either (BuildKit sends only what COPY/ADD name): no change.
    (stack / "src/base/debug.txt").write_text("two\n")
    assert plan_json(cli, stack)["actions"] == []

    # The same kind of change to a file the build reads does count.
    (stack / "src/base/base.txt").write_text("base 2\n")
    plan = plan_json(cli, stack)
    assert reasons(plan) == [("build[base]", "inputs-changed"), ("build[app]", "base-changed")]
    assert plan["actions"][0]["detail"] == "context files changed: base.txt"


def test_target_plans_and_builds_only_the_service_and_what_it_needs(cli, daemon, make_stack):
    stack = three_services(make_stack)

    text = cli("plan", "--target", "app", "-s", str(stack), env=ENV)
    assert text.code == 0, text.err
    assert "Note: this plan is partial (--target app)" in text.out
    assert "Plan for --target app: 1 to pull, 2 to build." in text.out

    plan, applied = four_steps(cli, stack, "--target", "app")
    assert plan["partial"] is True and plan["targets"] == ["app"]
    assert reasons(plan) == [("pull[redis:7-alpine]", "missing"), ("build[base]", "missing"), ("build[app]", "missing")]
    assert applied.summary["built"] == 2
    now = tags(daemon)
    assert {"t-base:latest", "t-app:latest", "redis:7-alpine"} <= set(now)
    assert not {"t-other:latest", "nginx:stable", "localhost/redis:7-alpine"} & set(now)

    # The rest is still pending, and a full plan says so without being partial.
    rest = plan_json(cli, stack)
    assert rest["partial"] is False
    assert reasons(rest) == [
        ("pull[nginx:stable]", "missing"),
        ("tag[localhost/nginx:stable]", "missing"),
        ("tag[localhost/redis:7-alpine]", "missing"),
        ("build[other]", "missing"),
    ]


def test_replace_rebuilds_one_unchanged_service_without_cache(cli, daemon, make_stack):
    stack = three_services(make_stack)
    assert apply_json(cli, stack).code == 0
    before = built(daemon)

    plan = plan_json(cli, stack, "--replace", "base")
    assert [(a["address"], a["reason"], a["nocache"]) for a in plan["actions"]] == [
        ("build[base]", "replace-requested", True)
    ]
    # Its inputs hash is unchanged, so its dependents are not rebuilt (docs/builds.md).
    applied = apply_json(cli, stack, "--replace", "base")
    assert applied.code == 0, applied.out + applied.err
    assert [o["status"] for o in applied.outcomes.values()] == ["succeeded"]
    after = built(daemon)
    assert after["t-base:latest"] != before["t-base:latest"]
    assert {k: v for k, v in after.items() if k != "t-base:latest"} == {
        k: v for k, v in before.items() if k != "t-base:latest"
    }
    assert cli("plan", "--detailed-exitcode", "-s", str(stack), env=ENV).code == 0


def test_force_rebuilds_every_service_without_cache(cli, daemon, make_stack):
    stack = three_services(make_stack)
    assert apply_json(cli, stack).code == 0
    before = built(daemon)

    plan = plan_json(cli, stack, "--force")
    assert [(a["address"], a["reason"], a["nocache"]) for a in plan["actions"]] == [
        ("build[base]", "force", True),
        ("build[other]", "force", True),
        ("build[app]", "force", True),
    ]
    applied = apply_json(cli, stack, "--force")
    assert applied.code == 0, applied.out + applied.err
    assert applied.summary["built"] == 3
    after = built(daemon)
    assert all(after[t] != before[t] for t in before)
    assert cli("plan", "--detailed-exitcode", "-s", str(stack), env=ENV).code == 0


def test_tag_builds_that_tag_and_stack_tag_resolves_to_the_siblings_image_of_that_tag(cli, daemon, make_stack):
    stack = three_services(make_stack)
    assert apply_json(cli, stack).code == 0
    latest = built(daemon)
    # Only v2 sees this change: app:v2 must be built FROM base:v2, not base:latest.
    (stack / "src/base/base.txt").write_text("base 2\n")

    plan, _ = four_steps(cli, stack, "--tag", "v2")
    assert [(a["address"], a["reason"], a["image"]) for a in plan["actions"]] == [
        ("build[base]", "missing", "t-base:v2"),
        ("build[other]", "missing", "t-other:v2"),
        ("build[app]", "missing", "t-app:v2"),
    ]
    assert plan["actions"][2]["depends_on"] == ["build[base]"]
    assert read(daemon, "t-app:v2", "/both") == "base 2\napp 1\n"
    assert read(daemon, "t-app:v2", "/tag") == "v2\n"
    now = built(daemon)
    assert {t: now[t] for t in latest} == latest  # the latest images are untouched


FAILING = """
    FROM redis:7-alpine
    RUN for i in 1 2 3; do echo "line-$i-of-the-log"; done; exit 3
"""


def test_a_failing_build_fails_itself_and_its_dependents_only_and_keeps_the_old_image(cli, daemon, make_stack):
    stack = three_services(make_stack)
    assert apply_json(cli, stack).code == 0
    before = built(daemon)

    (stack / "src/base/Dockerfile").write_text(textwrap.dedent(FAILING).lstrip())
    (stack / "src/other/other.txt").write_text("other 2\n")  # an independent change that must still apply
    result = apply_json(cli, stack)
    assert result.code == 1
    outcomes = result.outcomes
    assert {a: o["status"] for a, o in outcomes.items()} == {
        "build[base]": "failed",
        "build[other]": "succeeded",
        "build[app]": "skipped",
    }
    failed = outcomes["build[base]"]
    assert failed["message"] == "build base failed"
    assert "exit code: 3" in failed["error"]
    assert failed["log"][-3:] == ["line-1-of-the-log", "line-2-of-the-log", "line-3-of-the-log"]
    assert outcomes["build[app]"]["message"] == "skipped: build[base] failed"
    assert (result.summary["built"], result.summary["failed"], result.summary["skipped"]) == (1, 1, 1)
    assert result.verify == {"converged": False, "remaining": ["build[base]", "build[app]"]}
    after = built(daemon)
    assert after["t-base:latest"] == before["t-base:latest"]  # nothing lost
    assert after["t-app:latest"] == before["t-app:latest"]
    assert after["t-other:latest"] != before["t-other:latest"]

    # The same failure in text: the last output lines are shown.
    text = cli("apply", "--auto-approve", "-s", str(stack), env=ENV)
    assert text.code == 1
    assert "✗ build[base]:" in text.out and "exit code: 3" in text.out
    assert "      | line-3-of-the-log" in text.out
    assert "Apply finished with errors. 0 pulled, 0 tagged, 0 written, 0 built, 1 failed, 1 skipped" in text.out
    assert "build[app]: - skipped: build[base] failed" in text.err

    # Fixed, the next apply converges.
    (stack / "src/base/Dockerfile").write_text("FROM redis:7-alpine\nCOPY base.txt /base.txt\n")
    plan, _ = four_steps(cli, stack)
    assert reasons(plan) == [("build[base]", "inputs-changed"), ("build[app]", "base-changed")]


def test_a_base_changed_build_whose_base_is_pulled_back_unchanged_is_not_rebuilt(cli, daemon, make_stack):
    stack = three_services(make_stack)
    assert apply_json(cli, stack).code == 0
    before = tags(daemon)
    api = daemon.api()
    api.remove_image("redis:7-alpine")  # untags only: localhost/redis:7-alpine keeps the image
    api.close()

    plan, applied = four_steps(cli, stack)
    assert reasons(plan) == [
        ("pull[redis:7-alpine]", "missing"),
        ("tag[localhost/redis:7-alpine]", "moved"),
        ("build[base]", "base-changed"),
        ("build[app]", "base-changed"),
    ]
    assert plan["actions"][2]["inputs_hash"] is None  # decided at apply time
    assert "decided after pull[redis:7-alpine]" in plan["actions"][2]["detail"]
    assert {a: o["status"] for a, o in applied.outcomes.items()} == {
        "pull[redis:7-alpine]": "succeeded",
        "tag[localhost/redis:7-alpine]": "unchanged",
        "build[base]": "unchanged",
        "build[app]": "unchanged",
    }
    assert "not rebuilt" in applied.outcomes["build[base]"]["message"]
    assert applied.summary["built"] == 0
    assert tags(daemon) == before
