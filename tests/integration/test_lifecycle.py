"""The whole image lifecycle against the real engine and its two registries: a builder pushes
its service images to the Harbor stand-in, a node pulls them instead of building, an external
host mirrors its base images into Harbor for internal hosts, and prune removes what a stack
dropped.  Each scenario follows the four steps (plan, apply, plan empty, apply nothing).

Every test gets its own Harbor project (``aihpc-<random>``), so each starts from an empty
internal registry; the images are read back through docker-py and the registry's own API.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid

import pytest

from reconciler.builds import LABEL_PARTS
from tests import harness
from tests.conftest import tags
from tests.integration.test_builds import apply_json, four_steps, plan_json, reasons, three_services

EXTERNAL = {"AI_INFRA_NETWORK_ENV": "external"}


@pytest.fixture
def project(engine) -> str:
    """An empty project in the Harbor stand-in, and the environment naming it."""
    return f"life-{uuid.uuid4().hex[:10]}"


def env_for(engine, project: str, mode: str = "external") -> dict[str, str]:
    return {"AI_INFRA_NETWORK_ENV": mode, "INTERNAL_REGISTRY": f"{engine.harbor}/{project}"}


def repo_digests(engine, image: str) -> list[str]:
    api = engine.api()
    try:
        return api.inspect_image(image)["RepoDigests"]
    finally:
        api.close()


def image_ids(engine, names: list[str]) -> dict[str, str]:
    found = tags(engine)
    return {name: found[name] for name in names}


def test_a_builder_pushes_its_service_images_and_then_plans_nothing(cli, daemon, make_stack, project):
    stack = three_services(make_stack, toml="push = true\n")
    env = env_for(daemon, project)
    plan, applied = four_steps(cli, stack, env=env)

    pushes = [a for a in plan["actions"] if a["kind"] == "push"]
    assert [(a["address"], a["reason"], a["depends_on"]) for a in pushes] == [
        ("push[t-base:latest]", "missing", ["build[base]"]),
        ("push[t-other:latest]", "missing", ["build[other]"]),
        ("push[t-app:latest]", "missing", ["build[app]"]),
    ]
    assert pushes[0]["target"] == f"{daemon.harbor}/{project}/t-base:latest"
    assert pushes[0]["detail"] == f"{daemon.harbor}/{project}/t-base:latest in the internal registry does not exist"
    assert applied.summary["pushed"] == 3 and applied.summary["built"] == 3
    # The registry serves what the daemon built: the digest it recorded for that repository.
    for service in ("base", "other", "app"):
        digest = harness.registry_digest(daemon.harbor, f"{project}/t-{service}", "latest")
        assert f"{daemon.harbor}/{project}/t-{service}@{digest}" in repo_digests(daemon, f"t-{service}:latest")
        assert applied.outcomes[f"push[t-{service}:latest]"]["after"] == digest

    # A changed file: its build, its dependent's, and their pushes, decided after the builds.
    (stack / "src/base/base.txt").write_text("base 2\n")
    plan, applied = four_steps(cli, stack, env=env)
    assert reasons(plan) == [
        ("build[base]", "inputs-changed"),
        ("build[app]", "base-changed"),
        ("push[t-base:latest]", "registry-differs"),
        ("push[t-app:latest]", "registry-differs"),
    ]
    assert plan["actions"][2]["detail"].endswith("; decided after build[base]")
    assert applied.summary["pushed"] == 2


def test_an_image_changed_in_the_registry_behind_the_builder_is_pushed_again(cli, daemon, make_stack, project):
    stack = three_services(make_stack, toml="push = true\n")
    env = env_for(daemon, project)
    assert apply_json(cli, stack, env=env).code == 0
    # Someone pushes another image under the same name: the registry differs from the local image.
    harness.seed(daemon, {f"{daemon.harbor}/{project}/t-other:latest": "harbor"}, force=True)
    plan, applied = four_steps(cli, stack, env=env)
    assert reasons(plan) == [("push[t-other:latest]", "registry-differs")]
    assert plan["actions"][0]["depends_on"] == []
    assert (
        "t-other:latest is image sha256:" in plan["actions"][0]["detail"]
        or "t-other:latest is sha256:" in (plan["actions"][0]["detail"])
    )
    digest = harness.registry_digest(daemon.harbor, f"{project}/t-other", "latest")
    assert applied.outcomes["push[t-other:latest]"]["after"] == digest


def test_a_push_that_fails_fails_that_action_only(cli, daemon, make_stack):
    stack = three_services(make_stack, toml="push = true\n")
    # Nothing listens there: every push fails (after its attempts), the builds still converge.
    env = {"AI_INFRA_NETWORK_ENV": "external", "INTERNAL_REGISTRY": "127.0.0.1:9/aihpc"}
    plan = plan_json(cli, stack, env=env)
    assert [a["reason"] for a in plan["actions"] if a["kind"] == "push"] == ["registry-unknown"] * 3
    assert any("cannot check 127.0.0.1:9/aihpc/t-base:latest in the internal registry" in w for w in plan["warnings"])
    done = apply_json(cli, stack, env=env)
    assert done.code == 1
    assert done.summary["built"] == 3 and done.summary["failed"] == 3
    assert {a for a, o in done.outcomes.items() if o["status"] == "failed"} == {
        "push[t-base:latest]",
        "push[t-other:latest]",
        "push[t-app:latest]",
    }


def test_a_node_pulls_the_service_images_a_builder_pushed_and_builds_nothing(cli, daemon, make_stack, project):
    stack = three_services(make_stack, toml="push = true\n")
    env = env_for(daemon, project)
    assert apply_json(cli, stack, env=env).code == 0
    built = image_ids(daemon, ["t-base:latest", "t-app:latest", "t-other:latest"])

    harness.reset_images(daemon)
    # A node's plan never reads a build context: one the node does not even have is no error.
    for service in ("base", "app", "other"):
        (stack / "src" / service / f"{service}.txt").unlink()
    plan, applied = four_steps(cli, stack, "--role", "node", env=env)
    harbor = f"{daemon.harbor}/{project}"
    assert [a for a in plan["actions"] if a["kind"] in ("build", "push")] == []
    assert [a["address"] for a in plan["actions"] if a["kind"] == "pull"] == [
        "pull[nginx:stable]",
        "pull[redis:7-alpine]",
        f"pull[{harbor}/t-app:latest]",
        f"pull[{harbor}/t-base:latest]",
        f"pull[{harbor}/t-other:latest]",
    ]
    assert "tag[t-base:latest]" in [a["address"] for a in plan["actions"]]
    assert "tag[localhost/t-base:latest]" in [a["address"] for a in plan["actions"]]
    assert applied.summary["built"] == 0 and applied.summary["pulled"] == 5
    # The very images the builder made, under their own names and aliases.
    assert image_ids(daemon, list(built)) == built
    assert tags(daemon)["localhost/t-app:latest"] == built["t-app:latest"]


def test_a_node_can_target_a_service(cli, daemon, make_stack, project):
    stack = three_services(make_stack, toml="push = true\n")
    env = env_for(daemon, project)
    assert apply_json(cli, stack, env=env).code == 0
    harness.reset_images(daemon)
    plan = plan_json(cli, stack, "--role", "node", "--target", "other", env=env)
    harbor = f"{daemon.harbor}/{project}"
    assert sorted(a["address"] for a in plan["actions"]) == [
        f"pull[{harbor}/t-other:latest]",
        "tag[localhost/t-other:latest]",
        "tag[t-other:latest]",
    ]


def test_an_external_host_mirrors_its_base_images_and_an_internal_host_then_converges(cli, daemon, make_stack, project):
    stack = three_services(make_stack, toml="[network]\nmirror = true\n")
    harbor = f"{daemon.harbor}/{project}"
    plan, applied = four_steps(cli, stack, env=env_for(daemon, project))
    mirrors = [a for a in plan["actions"] if a["kind"] == "mirror"]
    assert [(a["address"], a["reason"], a["target"], a["depends_on"]) for a in mirrors] == [
        ("mirror[nginx:stable]", "missing", f"{harbor}/nginx:stable", ["pull[nginx:stable]"]),
        ("mirror[redis:7-alpine]", "missing", f"{harbor}/redis:7-alpine", ["pull[redis:7-alpine]"]),
    ]
    assert applied.summary["mirrored"] == 2
    for path, tag in (("redis", "7-alpine"), ("nginx", "stable")):
        assert harness.registry_digest(daemon.harbor, f"{project}/{path}", tag) is not None

    # An internal host, from the Harbor the external one filled: it pulls from there and builds.
    harness.reset_images(daemon)
    plan, applied = four_steps(cli, stack, env=env_for(daemon, project, "internal"))
    assert [a["address"] for a in plan["actions"] if a["kind"] == "pull"] == [
        f"pull[{harbor}/nginx:stable]",
        f"pull[{harbor}/redis:7-alpine]",
    ]
    assert [a for a in plan["actions"] if a["kind"] == "mirror"] == []  # internal: nothing to mirror
    assert applied.summary["failed"] == 0 and applied.summary["built"] == 3
    # The mirrored copies are the hub's images (the seed labels them by origin).
    api = daemon.api()
    try:
        assert api.inspect_image("redis:7-alpine")["Config"]["Labels"][harness.LABEL_ORIGIN] == "hub"
    finally:
        api.close()


def _ps_names(engine) -> list[str]:
    api = engine.api()
    try:
        return [n.lstrip("/") for c in api.containers(all=True) for n in c["Names"]]
    finally:
        api.close()


def test_moving_the_tag_with_prune_removes_the_old_images_only_and_keeps_one_a_container_uses(cli, daemon, make_stack):
    stack = three_services(make_stack)
    assert apply_json(cli, stack, "--tag", "v1", env=EXTERNAL).code == 0
    v1 = image_ids(daemon, ["t-base:v1", "t-app:v1", "t-other:v1"])
    # Not the stack's: an image of another stack name, and a tag a user made of a base image.
    api = daemon.api()
    try:
        api.tag("redis:7-alpine", "mine/keep", "1")
        container = api.create_container(
            "t-other:v1", name="web-1", host_config=api.create_host_config(network_mode="none")
        )
    finally:
        api.close()
    # v2 drops nginx for busybox: the alias reconcile made for nginx goes, nginx:stable (pulled) stays.
    (stack / "src/other/Dockerfile").write_text("FROM busybox:1.36\nCOPY other.txt /other.txt\n")

    plan, _ = four_steps(cli, stack, "--tag", "v2", "--prune", env=EXTERNAL)
    pruned = [(a["address"], a["reason"]) for a in plan["actions"] if a["kind"] in ("untag", "remove")]
    assert pruned == [
        ("untag[localhost/nginx:stable]", "not-declared"),
        ("remove[t-app:v1]", "not-declared"),
        ("remove[t-base:v1]", "not-declared"),
    ]
    others = [a["address"] for a in plan["actions"] if a["kind"] not in ("untag", "remove")]
    assert all(a["depends_on"] == others for a in plan["actions"] if a["kind"] in ("untag", "remove"))
    [kept] = plan["kept"]
    assert kept["tags"] == ["t-other:v1"] and kept["containers"] == ["web-1"] and kept["reason"] == "in-use"
    assert kept["image_id"] == v1["t-other:v1"]
    assert "used by container web-1" in kept["detail"]

    now = tags(daemon)
    assert "t-base:v1" not in now and "t-app:v1" not in now and "localhost/nginx:stable" not in now
    assert now["t-other:v1"] == v1["t-other:v1"]  # kept: web-1 uses it
    assert {"t-base:v2", "t-app:v2", "t-other:v2", "nginx:stable", "mine/keep:1"} <= set(now)
    assert "web-1" in _ps_names(daemon)
    # The kept image is said again on the next plan, and it keeps the plan empty.
    text = cli("plan", "-s", str(stack), "--tag", "v2", "--prune", env=EXTERNAL)
    assert text.code == 0 and "! kept t-other:v1" in text.out and "used by container web-1" in text.out

    # Once the container is gone, the next prune removes it.
    api = daemon.api()
    try:
        api.remove_container(container["Id"], force=True)
    finally:
        api.close()
    plan, _ = four_steps(cli, stack, "--tag", "v2", "--prune", env=EXTERNAL)
    assert reasons(plan) == [("remove[t-other:v1]", "not-declared")]
    assert "t-other:v1" not in tags(daemon)


def test_prune_is_off_by_default_and_never_touches_a_tag_the_stack_did_not_create(cli, daemon, make_stack):
    stack = three_services(make_stack)
    api = daemon.api()
    try:
        # The user's alias, made before reconcile ever ran: reconcile finds it and leaves it alone.
        for line in api.pull("nginx", tag="stable", stream=True, decode=True):
            assert "error" not in line
        api.tag("nginx:stable", "localhost/nginx", "stable")
    finally:
        api.close()
    assert apply_json(cli, stack, "--tag", "v1", env=EXTERNAL).code == 0
    (stack / "src/other/Dockerfile").write_text("FROM busybox:1.36\nCOPY other.txt /other.txt\n")
    plan = plan_json(cli, stack, "--tag", "v2", env=EXTERNAL)
    assert [a for a in plan["actions"] if a["kind"] in ("untag", "remove")] == []
    # An alias tag-localhost made for an image the stack does not use is not the stack's either.
    api = daemon.api()
    try:
        for line in api.pull("osixia/openldap", tag="stable", stream=True, decode=True):
            assert "error" not in line
    finally:
        api.close()
    made = cli("tag-localhost", "-s", str(stack), "osixia/openldap:stable", env=EXTERNAL)
    assert made.code == 0 and "localhost/osixia/openldap:stable" in tags(daemon), made.out + made.err
    plan = plan_json(cli, stack, "--tag", "v2", "--prune", env=EXTERNAL)
    assert [a["address"] for a in plan["actions"] if a["kind"] in ("untag", "remove")] == [
        "remove[t-app:v1]",
        "remove[t-base:v1]",
        "remove[t-other:v1]",
    ]


def test_a_saved_plan_with_push_and_prune_is_refused_when_the_registry_changed_behind_it(
    cli, daemon, make_stack, project, tmp_path
):
    stack = three_services(make_stack)
    env = env_for(daemon, project)
    assert apply_json(cli, stack, "--tag", "v1", env=env).code == 0
    saved = tmp_path / "v2.plan"
    made = cli("plan", "-s", str(stack), "--tag", "v2", "--push", "--prune", "--out", str(saved), env=env)
    assert made.code == 0, made.err
    assert "+ push t-base:v2 →" in made.out and "- remove t-base:v1" in made.out
    harness.seed(daemon, {f"{daemon.harbor}/{project}/t-base:v2": "harbor"})
    stale = cli("apply", str(saved), env=env)
    assert stale.code == 1
    assert f"internal registry digest of {daemon.harbor}/{project}/t-base:v2: absent → sha256:" in stale.err

    cli("plan", "-s", str(stack), "--tag", "v2", "--push", "--prune", "--out", str(saved), env=env)
    done = cli("apply", str(saved), env=env)
    assert done.code == 0, done.out + done.err
    assert "3 built, 3 pushed, 3 removed, 0 failed" in done.out
    assert "t-base:v1" not in tags(daemon)


def _load_for(engine, platform: str, ref: str) -> str:
    """A local image of another platform under ``ref``: a ``docker save`` archive written here
    (one layer, a config naming that platform) and loaded (``docker import`` ignores --platform)."""
    os_, arch, *variant = platform.split("/")
    layer = harness._rootfs_tar(ref, platform) + b"\0" * 1024
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": arch,
        "os": os_,
        **({"variant": variant[0]} if variant else {}),
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": ["layer/layer.tar"]}]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in (
            ("layer/layer.tar", layer),
            (config_name, config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    api = engine.api()
    try:
        for line in api.load_image(archive.getvalue()):  # a stream: loaded once it is read to the end
            assert "error" not in line, line
        return api.inspect_image(ref)["Id"]
    finally:
        api.close()


def test_a_platform_is_passed_to_pulls_and_builds_and_an_image_of_another_is_drift(cli, daemon, make_stack):
    stack = three_services(make_stack, toml='platform = "linux/amd64"\n')
    plan, _ = four_steps(cli, stack, env=EXTERNAL)
    assert {a.get("platform") for a in plan["actions"] if a["kind"] == "pull"} == {"linux/amd64"}
    api = daemon.api()
    try:
        assert "platform" in json.loads(api.inspect_image("t-base:latest")["Config"]["Labels"][LABEL_PARTS])
    finally:
        api.close()

    # Someone put an arm64 image under the base image's name: the plan pulls the stack's platform again.
    arm = _load_for(daemon, "linux/arm64", "redis:7-alpine")
    plan, applied = four_steps(cli, stack, env=EXTERNAL)
    assert [(a["address"], a["reason"]) for a in plan["actions"]][:2] == [
        ("pull[redis:7-alpine]", "platform-differs"),
        ("tag[localhost/redis:7-alpine]", "moved"),
    ]
    assert plan["actions"][0]["detail"] == "the local image is linux/arm64, want linux/amd64"
    assert plan["actions"][0]["before"] == arm
    assert tags(daemon)["redis:7-alpine"] != arm
    assert applied.summary["pulled"] == 1


def test_a_platform_no_registry_serves_fails_the_pull(cli, daemon, make_stack):
    stack = make_stack({"svc": "FROM busybox:1.36\n"}, toml='platform = "linux/s390x"\n')
    done = apply_json(cli, stack, env=EXTERNAL)
    assert done.code == 1
    pull = done.outcomes["pull[busybox:1.36]"]
    assert pull["status"] == "failed"
    assert pull["error"] == "the registry serves busybox:1.36 for linux/amd64 only, not linux/s390x"
    assert done.outcomes["build[svc]"]["status"] == "skipped"


def test_export_and_import_round_trip_onto_an_emptied_daemon(cli, daemon, make_stack, tmp_path):
    stack = three_services(make_stack)
    assert apply_json(cli, stack, env=EXTERNAL).code == 0
    before = tags(daemon)
    folder = tmp_path / "offline"

    first = cli("export", "-s", str(stack), "--out", str(folder), "--json", env=EXTERNAL)
    assert first.code == 0, first.err
    exported = first.json()
    assert exported["summary"]["written"] == 5 and exported["summary"]["total"] == 5
    names = sorted(t for image in exported["images"] for t in image["tags"])
    bases = ["redis:7-alpine", "localhost/redis:7-alpine", "nginx:stable", "localhost/nginx:stable"]
    assert names == sorted([*bases, "t-base:latest", "t-app:latest", "t-other:latest"])
    stamps = {p.name: p.stat().st_mtime_ns for p in (folder / "images").iterdir()}
    # Again: the same images, the same names: nothing is written.
    again = cli("export", "-s", str(stack), "--out", str(folder), "--json", env=EXTERNAL).json()
    assert again["summary"] == {"written": 0, "loaded": 0, "tagged": 0, "unchanged": 5, "failed": 0, "total": 5}
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "images").iterdir()} == stamps

    harness.reset_images(daemon)
    loaded = cli("import", str(folder))
    assert loaded.code == 0, loaded.out + loaded.err
    assert "Import complete! 5 loaded; 5 image(s)" in loaded.out
    assert {t: i for t, i in tags(daemon).items() if t in names} == {t: before[t] for t in names}
    # Nothing left for the stack to do, and nothing for a second import.
    plan = cli("plan", "--json", "--detailed-exitcode", "-s", str(stack), env=EXTERNAL)
    assert plan.code == 0, plan.out
    assert "Import complete! 5 unchanged" in cli("import", str(folder)).out

    # A name moved away on the daemon is put back by tagging, without loading again.
    api = daemon.api()
    try:
        api.remove_image("localhost/redis:7-alpine")
    finally:
        api.close()
    fixed = cli("import", str(folder))
    assert "~ tagged localhost/redis:7-alpine" in fixed.out and "1 tagged, 4 unchanged" in fixed.out


def test_export_refuses_a_stack_whose_images_are_not_all_there(cli, daemon, make_stack, tmp_path):
    stack = three_services(make_stack)
    result = cli("export", "-s", str(stack), "--out", str(tmp_path / "out"), env=EXTERNAL)
    assert result.code == 1
    assert "not on the daemon, so not exported: nginx:stable, redis:7-alpine, localhost/nginx:stable" in result.err
    assert "reconcile apply" in result.err and "\n" not in result.err.strip()


def test_the_verify_after_a_push_asks_the_registry_nothing_it_just_confirmed(daemon, make_stack, project, monkeypatch):
    """apply's verify reads the daemon's image list again, but takes each pushed digest from the
    push itself: the registry is asked once per target, by the plan, and never by the verify."""
    from reconciler import pipeline

    stack = three_services(make_stack, toml="push = true\n")
    for name, value in {**env_for(daemon, project), "DOCKER_HOST": daemon.docker_host}.items():
        monkeypatch.setenv(name, value)
    run = pipeline.prepare(str(stack))
    asked: list[str] = []
    ask = run.engine.distribution_digest
    monkeypatch.setattr(run.engine, "distribution_digest", lambda ref: asked.append(ref.path) or ask(ref))
    seen = pipeline.observe_state(run)
    the_plan = pipeline.plan(run, seen)
    assert sorted(asked) == [f"{project}/t-{s}" for s in ("app", "base", "other")]
    result = pipeline.apply(run, the_plan, seen=seen)
    assert result.ok and result.remaining == [] and len(asked) == 3
    assert [o.action.kind for o in result.outcomes].count("push") == 3
    # Without what the plan saw, the verify asks each target again (and finds the same).
    assert pipeline.plan(run).actions == [] and len(asked) == 6
