"""Push, mirror, node role and prune: the plan rules, pure (no daemon).

The observed side is data as the daemon gives it: ``GET /images/json`` entries, the
internal registry's digests (``ObservedRegistry``), the containers per image ID and the
record of aliases reconcile created.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reconciler import builds as b
from reconciler import offline, platforms
from reconciler.actual import ObservedRegistry, observe, observe_containers
from reconciler.aliases import AliasRecord
from reconciler.builds import BuildSpec
from reconciler.desired import (
    BaseImage,
    DesiredState,
    add_node_images,
    desired_state,
    mirror_targets,
    push_targets,
)
from reconciler.errors import InputError
from reconciler.network import NetworkDecision
from reconciler.plan import MirrorAction, PushAction, RemoveAction, UntagAction, narrow, plan, scope
from reconciler.refs import parse

REGISTRY = "harbor.test/aihpc"
HASH = "sha256:" + "1" * 64
IMAGE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
PUSHED = "sha256:" + "c" * 64
STALE = "sha256:" + "d" * 64


def _network(mode: str = "external") -> NetworkDecision:
    return NetworkDecision(
        mode=mode, source="test", registry=REGISTRY, registry_source="test", alias_prefix="localhost"
    )


def _spec(service: str = "base", image: str = "t-base:v1") -> BuildSpec:
    return BuildSpec(
        service=service,
        image=parse(image),
        context=Path("/nonexistent"),
        dockerfile=Path("/nonexistent/Dockerfile"),
        target=None,
        build_args={},
        bases=(),
        needs={},
        dockerfile_sha="0" * 64,
        files={},
        stack="t",
    )


def _built(spec: BuildSpec, image_id: str = IMAGE, tags=(), digests=()) -> dict:
    """The image of ``spec``, labelled as reconcile builds it, so the plan finds it up to date."""
    inputs_hash = b.digest(b.record(spec, {}))
    return {
        "Id": image_id,
        "RepoTags": [spec.image.familiar, *tags],
        "RepoDigests": list(digests),
        "Labels": {b.LABEL_INPUTS: inputs_hash, b.LABEL_STACK: "t", b.LABEL_SERVICE: spec.service},
    }


def _pushing(spec: BuildSpec) -> DesiredState:
    return DesiredState(builds=[spec], pushes=push_targets([spec], REGISTRY))


# -- push ---------------------------------------------------------------------------------------


def test_push_target_is_the_image_under_the_registry_or_the_image_itself():
    [upload] = push_targets([_spec()], REGISTRY)
    assert (str(upload.image), str(upload.target), upload.service) == ("t-base:v1", f"{REGISTRY}/t-base:v1", "base")
    [upload] = push_targets([_spec(image=f"{REGISTRY}/x/base:v1")], REGISTRY)
    assert upload.target == upload.image


@pytest.mark.parametrize(
    ("registry", "digests", "expected"),
    [
        # Missing in the registry: + push.
        (
            {"digests": None},
            [],
            ("missing", None, "harbor.test/aihpc/t-base:v1 in the internal registry does not exist"),
        ),
        # The registry serves another manifest than the one the daemon recorded for that repository.
        (
            {"digests": STALE},
            [f"{REGISTRY}/t-base@{PUSHED}"],
            (
                "registry-differs",
                STALE,
                f"harbor.test/aihpc/t-base:v1 in the internal registry is {STALE[:19]}; t-base:v1 is {PUSHED[:19]}",
            ),
        ),
        # Never pushed from here: the local image has no digest from that repository.
        (
            {"digests": STALE},
            [],
            (
                "registry-differs",
                STALE,
                f"harbor.test/aihpc/t-base:v1 in the internal registry is {STALE[:19]}; t-base:v1 is image "
                f"{IMAGE[:19]}, with no digest from harbor.test/aihpc/t-base",
            ),
        ),
        # The registry could not be asked: pushed to be sure (the warning says why).
        (
            {"errors": "connection refused"},
            [],
            (
                "registry-unknown",
                None,
                "cannot ask the registry for harbor.test/aihpc/t-base:v1 (connection refused): pushed to be sure",
            ),
        ),
    ],
)
def test_push_is_planned_from_the_registry_digest_against_the_local_repo_digest(registry, digests, expected):
    spec = _spec()
    target = parse(f"{REGISTRY}/t-base:v1")
    seen = ObservedRegistry(
        digests={target: registry["digests"]} if "digests" in registry else {},
        errors={target: registry["errors"]} if "errors" in registry else {},
    )
    result = plan(_pushing(spec), observe([_built(spec, digests=digests)]), _network(), registry=seen)
    [action] = result.actions
    assert isinstance(action, PushAction) and not isinstance(action, MirrorAction)
    assert (action.address, action.depends_on) == ("push[t-base:v1]", [])
    assert (action.reason, action.before, action.detail) == expected
    assert action.symbol == ("~" if expected[1] else "+")
    assert action.to_json()["target"] == f"{REGISTRY}/t-base:v1"


def test_push_is_nothing_when_the_registry_serves_what_the_daemon_pushed():
    spec = _spec()
    target = parse(f"{REGISTRY}/t-base:v1")
    image = _built(spec, digests=[f"{REGISTRY}/t-base@{PUSHED}", f"t-base@{STALE}"])
    result = plan(_pushing(spec), observe([image]), _network(), registry=ObservedRegistry({target: PUSHED}))
    assert result.empty
    assert f"harbor.test/aihpc/t-base:v1 in the internal registry is {PUSHED[:19]}, the same as t-base:v1" in (
        result.unchanged
    )


def test_push_waits_for_its_build_and_is_decided_after_it():
    spec = _spec()
    target = parse(f"{REGISTRY}/t-base:v1")
    for there, reason in ((None, "missing"), (PUSHED, "registry-differs")):
        result = plan(_pushing(spec), observe([]), _network(), registry=ObservedRegistry({target: there}))
        build, push = result.actions
        assert (build.address, push.address, push.reason, push.depends_on) == (
            "build[base]",
            "push[t-base:v1]",
            reason,
            ["build[base]"],
        )
    assert (
        push.detail
        == f"harbor.test/aihpc/t-base:v1 in the internal registry is {PUSHED[:19]}; decided after build[base]"
    )


def test_push_is_targeted_with_its_service_and_kept_alone_by_only_push():
    spec = _spec()
    desired = _pushing(spec)
    full = plan(desired, observe([]), _network(), registry=ObservedRegistry({parse(f"{REGISTRY}/t-base:v1"): None}))
    assert {a.address for a in narrow(full, scope(desired, ["base"])).actions} == {"build[base]", "push[t-base:v1]"}
    assert [a.address for a in narrow(full, scope(desired, ["push[t-base:v1]"])).actions] == [
        "build[base]",
        "push[t-base:v1]",
    ]
    only = narrow(full, scope(desired, only=["push"]))
    assert [(a.address, a.depends_on) for a in only.actions] == [("push[t-base:v1]", [])]
    assert only.warnings == [
        "push[t-base:v1] depends on build[base], left out by --only push: it runs against what is there now"
    ]


# -- mirror -------------------------------------------------------------------------------------


def _bases(*refs: str) -> list[BaseImage]:
    return [BaseImage(parse(r), ()) for r in refs]


def test_mirror_targets_are_the_names_an_internal_network_pulls():
    bases = _bases("redis:7-alpine", "quay.io/argoproj/argocd:v2", "localhost/nginx:1", f"{REGISTRY}/tools/kubectl:1")
    paths = {"quay.io/argoproj/argocd": "argocd"}
    uploads, warnings = mirror_targets(bases, _network(), paths)
    assert [(str(u.image), str(u.target), u.service) for u in uploads] == [
        ("redis:7-alpine", f"{REGISTRY}/redis:7-alpine", None),
        ("quay.io/argoproj/argocd:v2", f"{REGISTRY}/argocd:v2", None),
        ("nginx:1", f"{REGISTRY}/nginx:1", None),  # the alias a Dockerfile uses: its upstream image
    ]
    assert warnings == []
    # The same names internal mode pulls.
    internal = desired_state(bases[:3], _network("internal"), paths)
    assert {p.ref for p in internal.presence} == {u.target for u in uploads}


def test_mirror_is_nothing_on_an_internal_network_and_warns_for_a_digest():
    assert mirror_targets(_bases("redis:7"), _network("internal")) == ([], [])
    uploads, warnings = mirror_targets(_bases(f"redis@sha256:{'e' * 64}"), _network())
    assert uploads == []
    assert warnings == [
        f"redis@sha256:{'e' * 64} is pinned by digest and cannot be pushed by it: not mirrored (redis@sha256:{'e' * 64})"
    ]


def test_mirror_refuses_two_images_with_one_internal_name():
    with pytest.raises(
        InputError, match=re.escape("quay.io/x/redis:7 and redis:7 both map to harbor.test/aihpc/redis:7")
    ):
        mirror_targets(_bases("quay.io/x/redis:7", "redis:7"), _network(), {"quay.io/x/redis": "redis"})


def test_mirror_waits_for_the_pull_and_is_nothing_once_the_registry_has_the_pushed_copy():
    network = _network()
    bases = _bases("redis:7")
    desired = desired_state(bases, network)
    desired.mirrors, _ = mirror_targets(bases, network)
    target = parse(f"{REGISTRY}/redis:7")
    result = plan(desired, observe([]), network, registry=ObservedRegistry({target: None}))
    assert [(a.address, a.reason, a.depends_on) for a in result.actions] == [
        ("pull[redis:7]", "missing", []),
        ("tag[localhost/redis:7]", "missing", ["pull[redis:7]"]),
        ("mirror[redis:7]", "missing", ["pull[redis:7]"]),
    ]
    assert isinstance(result.actions[-1], MirrorAction) and result.summary()["mirror"] == 1
    image = {
        "Id": IMAGE,
        "RepoTags": ["redis:7", "localhost/redis:7", f"{REGISTRY}/redis:7"],
        "RepoDigests": [f"redis@{STALE}", f"{REGISTRY}/redis@{PUSHED}"],
    }
    assert plan(desired, observe([image]), network, registry=ObservedRegistry({target: PUSHED})).empty
    [again] = plan(desired, observe([image]), network, registry=ObservedRegistry({target: STALE})).actions
    assert (again.address, again.reason, again.depends_on) == ("mirror[redis:7]", "registry-differs", [])


# -- node ---------------------------------------------------------------------------------------


def test_a_node_pulls_each_service_image_from_the_registry_and_tags_it_like_a_base_image():
    network = _network("internal")
    desired = desired_state(_bases("redis:7"), network)
    add_node_images(desired, {"base": parse("t-base:v1"), "base-too": parse("t-base:v1")}, network)
    assert desired.builds == []
    pulls = [(str(p.ref), [str(r) for r in p.serves]) for p in desired.presence]
    assert pulls == [(f"{REGISTRY}/redis:7", ["redis:7"]), (f"{REGISTRY}/t-base:v1", ["t-base:v1"])]
    assert [(str(a.alias), str(a.source)) for a in desired.aliases][-2:] == [
        ("t-base:v1", f"{REGISTRY}/t-base:v1"),
        ("localhost/t-base:v1", f"{REGISTRY}/t-base:v1"),
    ]
    result = plan(desired, observe([]), network)
    assert [(a.address, a.depends_on) for a in result.actions] == [
        (f"pull[{REGISTRY}/redis:7]", []),
        (f"pull[{REGISTRY}/t-base:v1]", []),
        ("tag[redis:7]", [f"pull[{REGISTRY}/redis:7]"]),
        ("tag[localhost/redis:7]", [f"pull[{REGISTRY}/redis:7]"]),
        ("tag[t-base:v1]", [f"pull[{REGISTRY}/t-base:v1]"]),
        ("tag[localhost/t-base:v1]", [f"pull[{REGISTRY}/t-base:v1]"]),
    ]
    assert (
        sorted(scope(desired, ["base"]).addresses)
        == sorted(scope(desired, ["base-too"]).addresses)
        == [
            "pull[harbor.test/aihpc/t-base:v1]",
            "tag[localhost/t-base:v1]",
            "tag[t-base:v1]",
        ]
    )


# -- prune --------------------------------------------------------------------------------------


def _pruning(spec: BuildSpec | None = None) -> DesiredState:
    return DesiredState(builds=[spec or _spec(image="t-base:v2")], prune="t")


def _labelled(image_id: str, *tags: str, stack: str = "t") -> dict:
    return {"Id": image_id, "RepoTags": list(tags), "RepoDigests": [], "Labels": {b.LABEL_STACK: stack}}


def _plan_prune(images: list[dict], containers=None, created=None, desired=None):
    desired = desired or _pruning()
    spec = desired.builds[0]
    current = _built(spec, "sha256:" + "9" * 64)
    return plan(desired, observe([current, *images]), _network(), containers=containers, created=created)


def test_prune_removes_an_image_of_the_stack_no_longer_declared_with_all_its_tags():
    made = {parse(t): IMAGE for t in ("t-base:v1", "localhost/t-base:v1", f"{REGISTRY}/t-base:v1")}
    result = _plan_prune([_labelled(IMAGE, "t-base:v1", "localhost/t-base:v1", f"{REGISTRY}/t-base:v1")], created=made)
    [action] = result.actions
    assert isinstance(action, RemoveAction) and action.symbol == "-"
    assert (action.address, action.reason, action.before) == (
        "remove[harbor.test/aihpc/t-base:v1]",
        "not-declared",
        IMAGE,
    )
    assert [str(t) for t in action.tags] == [f"{REGISTRY}/t-base:v1", "localhost/t-base:v1", "t-base:v1"]
    assert action.detail == (
        "an image of stack t under a tag the stack no longer declares; no container uses it; "
        "also tagged localhost/t-base:v1, t-base:v1"
    )
    assert result.summary()["remove"] == 1


def test_prune_untags_only_when_the_image_keeps_a_declared_or_foreign_tag():
    spec = _spec(image="t-base:v2")
    current = _built(spec, IMAGE, tags=["t-base:v1"])  # the same image under the old tag
    foreign = _labelled(OTHER, "t-app:v1", "backup/app:1", stack="other-stack")
    made = {parse("t-base:v1"): IMAGE}  # this stack's record; t-app:v1 is another stack's
    result = plan(_pruning(spec), observe([current, foreign]), _network(), created=made)
    [action] = result.actions
    assert isinstance(action, UntagAction)
    assert (action.address, action.before) == ("untag[t-base:v1]", IMAGE)
    assert action.detail.endswith("; the image stays as t-base:v2")


def test_prune_keeps_an_image_a_container_uses_and_says_which():
    result = _plan_prune(
        [_labelled(IMAGE, "t-base:v1")], containers={IMAGE: ["web-1", "web-2"]}, created={parse("t-base:v1"): IMAGE}
    )
    assert result.empty
    [kept] = result.kept
    assert kept.text == f"kept t-base:v1 ({IMAGE[:19]}): no longer declared, but used by containers web-1, web-2"
    assert result.to_json()["kept"] == [
        {
            "image_id": IMAGE,
            "tags": ["t-base:v1"],
            "containers": ["web-1", "web-2"],
            "reason": "in-use",
            "detail": kept.text,
        }
    ]


def test_prune_untags_a_recorded_alias_only_while_it_points_where_reconcile_put_it():
    redis = {"Id": IMAGE, "RepoTags": ["redis:7", "localhost/redis:7"], "RepoDigests": []}
    [action] = _plan_prune([redis], created={parse("localhost/redis:7"): IMAGE}).actions
    assert (action.address, action.kind) == ("untag[localhost/redis:7]", "untag")
    assert "an alias reconcile created for a base image stack t no longer uses" in action.detail
    # Moved by someone else since, or never recorded: not the stack's.
    assert _plan_prune([redis], created={parse("localhost/redis:7"): OTHER}).empty
    assert _plan_prune([redis]).empty


def test_prune_never_touches_a_tag_the_user_put_on_the_stacks_image():
    # Found in review: a labelled image's every undeclared tag used to count as the stack's.
    spec = _spec(image="t-base:v2")
    current = _built(spec, IMAGE, tags=["t-base:rollback", "myreg.example/me/web:prod"])
    assert plan(_pruning(spec), observe([current]), _network(), created={}).empty
    old = _labelled(OTHER, "t-base:v1", "t-base:keep-for-audit")
    [action] = _plan_prune([old], created={parse("t-base:v1"): OTHER}).actions
    assert isinstance(action, UntagAction) and action.image == parse("t-base:v1")  # the image stays


def test_prune_never_touches_what_the_stack_declares_did_not_make_or_is_off():
    images = [
        {"Id": IMAGE, "RepoTags": ["mine/tool:1"], "RepoDigests": []},  # unlabelled
        _labelled(OTHER, "t-base:v1", stack="another"),  # another stack's
    ]
    assert _plan_prune(images).empty
    desired = _pruning()
    desired.prune = None
    assert _plan_prune([_labelled(IMAGE, "t-base:v1")], desired=desired).empty


def test_prune_runs_after_everything_else_in_the_plan():
    desired = _pruning()
    result = plan(desired, observe([_labelled(IMAGE, "t-base:v1")]), _network(), created={parse("t-base:v1"): IMAGE})
    build, remove = result.actions
    assert (build.address, remove.address, remove.depends_on) == ("build[base]", "remove[t-base:v1]", ["build[base]"])


def test_prune_addresses_are_targets_only_when_prune_is_on():
    desired = _pruning()
    assert scope(desired, ["untag[docker.io/library/redis:7]"]).addresses == {"untag[redis:7]"}
    desired.prune = None
    with pytest.raises(InputError, match="no service, image or action of this stack"):
        scope(desired, ["untag[redis:7]"])


def test_containers_are_grouped_by_image_id_with_their_names():
    listing = [
        {"Id": "c1", "Names": ["/web-2"], "ImageID": IMAGE},
        {"Id": "c2", "Names": ["/web-1"], "ImageID": IMAGE},
        {"Id": "c3" * 10, "Names": [], "ImageID": OTHER},
    ]
    assert observe_containers(listing) == {IMAGE: ["web-1", "web-2"], OTHER: ["c3c3c3c3c3c3"]}


def test_the_alias_record_is_kept_per_daemon_and_stack(tmp_path):
    record = AliasRecord("daemon-1", tmp_path)
    assert record.created("t") == {}
    record.update("t", {parse("localhost/redis:7"): IMAGE, parse("redis:7"): IMAGE}, [])
    record.update("u", {parse("localhost/nginx:1"): OTHER}, [])
    record.update("t", {}, [parse("redis:7")])
    assert record.created("t") == {parse("localhost/redis:7"): IMAGE}
    assert AliasRecord("daemon-2", tmp_path).created("t") == {}
    assert json.loads(record.path.read_text())["stacks"]["u"] == {"localhost/nginx:1": OTHER}
    record.path.write_text("{not json")
    assert record.created("t") == {}  # a damaged record: prune leaves every alias alone


# -- platform -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("Linux/x86_64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("windows/amd64", "windows/amd64"),
        ("amd64", None),
        ("linux/amd64/v2/x", None),
        ("", None),
    ],
)
def test_platforms_are_compared_in_containerds_normal_form(text, expected):
    assert platforms.normalize(text) == expected


def test_an_images_platform_comes_from_its_inspect():
    assert platforms.of_image({"Os": "linux", "Architecture": "arm64", "Variant": "v8"}) == "linux/arm64"
    assert platforms.of_image({"Os": "linux", "Architecture": "arm", "Variant": "v6"}) == "linux/arm/v6"
    assert platforms.of_image({}) is None
    assert platforms.matches(None, "linux/amd64") and platforms.matches("linux/amd64", None)


def test_a_stack_platform_is_validated_and_normalized():
    from reconciler.stack import StackFile

    found = StackFile.model_validate(
        {"stack": {"name": "t", "platform": "linux/x86_64"}, "services": {"a": {"platform": "linux/aarch64"}}}
    )
    assert (found.stack.platform, found.services["a"].platform) == ("linux/amd64", "linux/arm64")
    with pytest.raises(ValueError, match="is not a platform: use OS/ARCH"):
        StackFile.model_validate({"stack": {"name": "t", "platform": "amd64"}})


def test_a_base_image_of_another_platform_is_pulled_again_for_the_stacks():
    network = _network()
    desired = desired_state(_bases("redis:7"), network, platform="linux/arm64")
    seen = observe([{"Id": IMAGE, "RepoTags": ["redis:7", "localhost/redis:7"], "RepoDigests": []}])
    assert plan(desired, seen, network).empty  # its platform unknown (not read): no drift claimed
    seen.platforms[IMAGE] = "linux/amd64"
    pull, tag = plan(desired, seen, network).actions
    assert (pull.address, pull.reason, pull.before, pull.platform) == (
        "pull[redis:7]",
        "platform-differs",
        IMAGE,
        "linux/arm64",
    )
    assert pull.detail == "the local image is linux/amd64, want linux/arm64"
    assert pull.to_json()["platform"] == "linux/arm64"
    assert (tag.address, tag.depends_on) == ("tag[localhost/redis:7]", ["pull[redis:7]"])
    seen.platforms[IMAGE] = "linux/arm64/v8"
    assert plan(desired, seen, network).empty
    assert "platform" not in plan(desired_state(_bases("redis:7"), network), observe([]), network).actions[0].to_json()


def test_a_service_platform_is_in_its_inputs_and_an_image_of_another_is_rebuilt():
    spec = _spec()
    assert "platform" not in b.record(spec, {})  # no platform: the hashes stay as they were
    arm = BuildSpec(**{**spec.__dict__, "platform": "linux/arm64"})
    assert b.record(arm, {})["platform"] == "linux/arm64"
    assert b.digest(b.record(arm, {})) != b.digest(b.record(spec, {}))
    old_parts = b.parts(b.record(spec, {}))
    assert b.changed_parts(old_parts, b.record(arm, {})) == ["platform"]
    assert b.changed_parts(b.parts(b.record(arm, {})), b.record(spec, {})) == ["platform"]
    assert b.describe_changes(["platform"], None, b.record(arm, {})) == "platform is now linux/arm64"

    image = _built(arm)
    seen = observe([image])
    seen.platforms[IMAGE] = "linux/amd64"
    [build] = plan(DesiredState(builds=[arm]), seen, _network()).actions
    assert (build.reason, build.detail) == ("platform-differs", "t-base:v1 is linux/amd64, want linux/arm64")
    seen.platforms[IMAGE] = "linux/arm64"
    assert plan(DesiredState(builds=[arm]), seen, _network()).empty


# -- export / import ----------------------------------------------------------------------------


def _manifest(tmp_path, images) -> Path:
    document = {"format_version": "1.0", "kind": offline.KIND, "stack": "t", "network": "external", "images": images}
    (tmp_path / offline.MANIFEST).write_text(json.dumps(document))
    return tmp_path


def test_an_export_manifest_is_read_back_as_archives(tmp_path):
    folder = _manifest(tmp_path, [{"archive": "images/a.tar", "image_id": IMAGE, "tags": ["redis:7"], "size": 3}])
    [archive] = offline._read_manifest(folder)
    assert (archive.path, archive.image_id, archive.tags, archive.size) == (
        "images/a.tar",
        IMAGE,
        [parse("redis:7")],
        3,
    )


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([{"archive": "../../etc/passwd", "image_id": IMAGE, "tags": []}], "leaves the folder"),
        ([{"archive": "/etc/passwd", "image_id": IMAGE, "tags": []}], "leaves the folder"),
        ([{"archive": "images/a.tar", "image_id": IMAGE, "tags": ["Not A Name"]}], "export manifest is damaged"),
        ([{"image_id": IMAGE, "tags": []}], "export manifest is damaged: 'archive'"),
    ],
)
def test_a_damaged_or_escaping_export_manifest_is_refused_in_one_line(tmp_path, images, message):
    with pytest.raises(InputError) as refused:
        offline._read_manifest(_manifest(tmp_path, images))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_folder_without_a_manifest_is_refused_for_import_and_empty_for_export(tmp_path):
    with pytest.raises(InputError, match="no export manifest here"):
        offline._read_manifest(tmp_path)
    assert offline._read_manifest(tmp_path, missing_ok=True) == []
    (tmp_path / offline.MANIFEST).write_text('{"kind": "reconcile-saved-plan"}')
    with pytest.raises(InputError, match="not a reconcile export manifest"):
        offline._read_manifest(tmp_path)


def test_after_an_apply_only_what_it_pushed_is_known_and_every_other_target_is_asked_again():
    from reconciler.actual import ObservedImages, ObservedRegistry
    from reconciler.apply import Outcome
    from reconciler.pipeline import Observation, after_apply
    from reconciler.plan import MirrorAction, PushAction

    pushed, cut, mirrored, untouched = (parse(f"harbor.local/p/{n}:1") for n in ("pushed", "cut", "mirrored", "same"))
    seen = Observation(
        ObservedImages(),
        {},
        registry=ObservedRegistry({pushed: None, cut: "sha256:" + "1" * 64, untouched: "sha256:" + "2" * 64}),
    )
    outcomes = [
        Outcome(
            PushAction("push[pushed]", "missing", "", image=parse("pushed:1"), target=pushed),
            "succeeded",
            "",
            after="sha256:" + "a" * 64,
        ),
        Outcome(PushAction("push[cut]", "registry-differs", "", image=parse("cut:1"), target=cut), "failed", ""),
        Outcome(
            MirrorAction("mirror[m]", "missing", "", image=parse("m:1"), target=mirrored),
            "unchanged",
            "",
            after="sha256:" + "b" * 64,
        ),
    ]
    known = after_apply(seen, outcomes)
    # Not the failed push (it may have been cut anywhere), nor the target this apply did not push
    # (another host may have): only the digests the registry answered this apply's pushes.
    assert known.registry.digests == {pushed: "sha256:" + "a" * 64, mirrored: "sha256:" + "b" * 64}
    assert seen.registry.digests[cut] == "sha256:" + "1" * 64  # the plan's observation is left as it was
