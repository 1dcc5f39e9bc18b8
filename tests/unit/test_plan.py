"""Plan: the pure diff of desired and observed state.

The main behaviour is data: one JSON file per case under tests/cases/plan/::

    {"mode": "internal" | "external", "registry": "harbor.test/aihpc",
     "bases": ["redis:7-alpine", ...],
     "images": [GET /images/json entries: Id, RepoTags, RepoDigests, Labels],
     "expect": [{"kind", "address", "reason", "before", "depends_on", optionally "source", "after"}, ...]}

and optionally the command's scope and what else it must say::

     "targets": [--target ...], "only": [--only ...],      # the plan narrowed to them
     "tag_localhost": true, "harbor_paths": {...},         # tag-localhost's plan instead
     "warnings": [...],                                    # exactly these warnings
     "error": "text"                                       # the plan is refused with this in its message
"""

import json
from pathlib import Path

import pytest

from reconciler.actual import observe
from reconciler.desired import BaseImage, desired_state
from reconciler.errors import InputError
from reconciler.network import NetworkDecision
from reconciler.plan import PullAction, TagAction, narrow, plan, plan_aliases, scope, short_id
from reconciler.refs import ImageRef, parse

CASES = Path(__file__).parent.parent / "cases" / "plan"
KEYS = ("kind", "address", "reason", "before", "depends_on")
DIGEST = "sha256:" + "ef" * 32
LIFECYCLE_NONE = {"push": 0, "mirror": 0, "untag": 0, "remove": 0}  # counted in every summary, zero here


def _network(mode: str, registry: str = "harbor.test/aihpc") -> NetworkDecision:
    return NetworkDecision(
        mode=mode, source="test", registry=registry, registry_source="test", alias_prefix="localhost"
    )


def _plan(mode: str, bases: list[str], images: list[dict], registry: str = "harbor.test/aihpc"):
    network = _network(mode, registry)
    desired = desired_state([BaseImage(parse(b), ()) for b in bases], network)
    return plan(desired, observe(images), network)


def _value(action, key: str):
    value = getattr(action, key)
    return str(value) if isinstance(value, ImageRef) else value


@pytest.mark.parametrize("name", sorted(p.stem for p in CASES.glob("*.json")))
def test_plan_case(name):
    case = json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))
    network = _network(case["mode"], case["registry"])
    desired = desired_state([BaseImage(parse(b), ()) for b in case["bases"]], network, case.get("harbor_paths"))
    observed = observe(case["images"])
    if case.get("tag_localhost"):
        result = plan_aliases(desired, observed, network, case.get("harbor_paths"))
    elif "error" in case:
        with pytest.raises(InputError) as refused:
            scope(desired, case.get("targets", []), case.get("only", []))
        assert case["error"] in str(refused.value)
        assert "\n" not in str(refused.value)
        return
    else:
        result = narrow(plan(desired, observed, network), scope(desired, case.get("targets", []), case.get("only", [])))
    assert all(set(KEYS) <= set(expected) for expected in case["expect"])
    assert len(result.actions) == len(case["expect"]), [a.address for a in result.actions]
    got = [{key: _value(a, key) for key in e} for a, e in zip(result.actions, case["expect"], strict=True)]
    assert got == case["expect"]
    assert result.empty == (case["expect"] == [])
    assert result.partial == bool(case.get("targets") or case.get("only"))
    if "warnings" in case:
        assert result.warnings == case["warnings"]


def test_plan_is_idempotent_after_tags_are_applied():
    image = {"Id": "sha256:aaaa", "RepoTags": ["harbor.test/aihpc/redis:7"], "RepoDigests": [], "Labels": {}}
    assert [a.address for a in _plan("internal", ["redis:7"], [image]).actions] == [
        "tag[redis:7]",
        "tag[localhost/redis:7]",
    ]
    image["RepoTags"] += ["redis:7", "localhost/redis:7"]
    assert _plan("internal", ["redis:7"], [image]).empty


def test_plan_tag_action_knows_its_target_when_the_source_is_present():
    images = [
        {"Id": "sha256:new0000000000000000", "RepoTags": ["redis:7"], "RepoDigests": [], "Labels": {}},
        {"Id": "sha256:old0000000000000000", "RepoTags": ["localhost/redis:7"], "RepoDigests": [], "Labels": {}},
    ]
    [action] = _plan("external", ["redis:7"], images).actions
    assert isinstance(action, TagAction)
    assert action.image == parse("localhost/redis:7")
    assert action.source == parse("redis:7")
    assert action.before == "sha256:old0000000000000000"
    assert action.after == "sha256:new0000000000000000"
    assert action.symbol == "~"
    assert "want sha256:new000000000" in action.detail


def test_plan_tag_after_a_pull_is_decided_later():
    pull, tag = _plan("external", ["redis:7"], []).actions
    assert isinstance(pull, PullAction)
    assert pull.image == parse("redis:7")
    assert tag.after is None
    assert tag.symbol == "+"
    assert "decided after pulling redis:7" in tag.detail


def test_plan_pull_detail_names_what_it_provides():
    [pull, *_] = _plan("internal", ["redis:7"], []).actions
    assert pull.serves == (parse("redis:7"),)
    assert "provides redis:7" in pull.detail


def test_plan_keeps_why_nothing_changed():
    image = {"Id": "sha256:aaaa", "RepoTags": ["redis:7", "localhost/redis:7"], "RepoDigests": [], "Labels": {}}
    result = _plan("external", ["redis:7"], [image])
    assert result.empty
    assert result.unchanged == [
        "redis:7 is present as sha256:aaaa",
        "localhost/redis:7 points at sha256:aaaa like redis:7",
    ]


def test_plan_carries_desired_warnings():
    result = _plan("external", [f"redis@{DIGEST}"], [])
    assert len(result.warnings) == 1
    assert "pinned by digest" in result.warnings[0]


def test_plan_summary_counts_kinds():
    assert _plan("internal", ["redis:7", "nginx:1"], []).summary() == {
        "pull": 2,
        "tag": 4,
        "write": 0,
        "build": 0,
        **LIFECYCLE_NONE,
        "total": 6,
    }
    assert _plan("internal", [], []).summary() == {
        "pull": 0,
        "tag": 0,
        "write": 0,
        "build": 0,
        **LIFECYCLE_NONE,
        "total": 0,
    }


def test_plan_to_json_is_versioned_and_complete():
    data = _plan("external", ["redis:7"], []).to_json()
    assert data["format_version"] == "1.0"
    assert data["network"] == {"mode": "external", "source": "test", "registry": "harbor.test/aihpc"}
    assert data["summary"] == {"pull": 1, "tag": 1, "write": 0, "build": 0, **LIFECYCLE_NONE, "total": 2}
    assert data["kept"] == []
    pull, tag = data["actions"]
    assert pull == {
        "address": "pull[redis:7]",
        "kind": "pull",
        "reason": "missing",
        "detail": "not present locally",
        "before": None,
        "depends_on": [],
        "image": "redis:7",
        "serves": ["redis:7"],
    }
    assert tag["kind"] == "tag"
    assert tag["image"] == "localhost/redis:7"
    assert tag["source"] == "redis:7"
    assert tag["after"] is None
    assert tag["depends_on"] == ["pull[redis:7]"]
    json.dumps(data)


@pytest.mark.parametrize(("image_id", "expected"), [(None, "none"), ("sha256:" + "a" * 64, "sha256:" + "a" * 12)])
def test_short_id(image_id, expected):
    assert short_id(image_id) == expected


def test_tag_localhost_without_a_copy_says_where_it_looked():
    network = _network("internal")
    desired = desired_state([BaseImage(parse("quay.io/argoproj/argocd:v2"), ())], network)
    first, _ = plan_aliases(desired, observe([]), network).actions
    assert first.detail == (
        "not present; no local copy of quay.io/argoproj/argocd:v2: looked for harbor.test/aihpc/argoproj/argocd:v2, "
        "quay.io/argoproj/argocd:v2, argoproj/argocd:v2, localhost/quay.io/argoproj/argocd:v2"
    )


def test_tag_localhost_names_the_copy_it_tags_from_and_the_image():
    network = _network("internal")
    desired = desired_state([BaseImage(parse("redis:7"), ())], network)
    image = {"Id": "sha256:aaaa", "RepoTags": ["harbor.test/aihpc/redis:7"], "RepoDigests": [], "Labels": {}}
    _, alias = plan_aliases(desired, observe([image]), network).actions
    assert alias.detail == "not present; from harbor.test/aihpc/redis:7, the first local copy of redis:7"
    assert (alias.base, alias.source) == (parse("redis:7"), parse("harbor.test/aihpc/redis:7"))


def test_tag_localhost_leaves_an_alias_that_is_the_only_copy_alone():
    network = _network("external")
    desired = desired_state([BaseImage(parse("redis:7"), ())], network)
    image = {"Id": "sha256:aaaa", "RepoTags": ["localhost/redis:7"], "RepoDigests": [], "Labels": {}}
    result = plan_aliases(desired, observe([image]), network)
    assert result.empty
    assert result.unchanged == ["localhost/redis:7 is the first local copy of redis:7 (sha256:aaaa)"]


def test_only_tag_points_a_tag_at_the_source_there_now_when_its_pull_is_left_out():
    network = _network("external")
    desired = desired_state([BaseImage(parse("redis:7"), ())], network)
    image = {"Id": "sha256:old0", "RepoTags": ["redis:7"], "RepoDigests": [], "Labels": {}}
    full = plan(desired, observe([image]), network, remote={parse("redis:7"): DIGEST})
    assert [a.address for a in full.actions] == ["pull[redis:7]", "tag[localhost/redis:7]"]
    [tag] = narrow(full, scope(desired, only=["tag"])).actions
    assert (tag.after, tag.depends_on) == ("sha256:old0", [])
    assert narrow(full, scope(desired, only=["tag"])).warnings == [
        "tag[localhost/redis:7] depends on pull[redis:7], left out by --only tag: "
        "it points localhost/redis:7 at the redis:7 there now (sha256:old0)"
    ]


def test_no_scope_leaves_the_plan_as_it_is():
    network = _network("external")
    desired = desired_state([BaseImage(parse("redis:7"), ())], network)
    full = plan(desired, observe([]), network)
    assert narrow(full, scope(desired)) is full and not full.partial
    assert full.to_json()["only"] == [] and full.to_json()["partial"] is False


UPSTREAM = "sha256:" + "0f" * 32
LOCAL = "sha256:" + "9a" * 32


@pytest.mark.parametrize(
    ("repo_digests", "local_copy"),
    [
        # By its digest in the same repository: a digest is compared with a digest.
        ([f"redis@{LOCAL}", f"example/other@{DIGEST}"], LOCAL[:19]),
        # Only another repository's digest, or none (built or tagged here): named by image ID, saying so.
        ([f"example/other@{DIGEST}"], "image sha256:aaaa, with no digest from redis"),
        ([], "image sha256:aaaa, with no digest from redis"),
    ],
)
def test_plan_remote_changed_names_the_local_copy_by_its_repo_digest(repo_digests, local_copy):
    image = {"Id": "sha256:aaaa", "RepoTags": ["redis:7", "localhost/redis:7"], "RepoDigests": repo_digests}
    network = _network("external")
    desired = desired_state([BaseImage(parse("redis:7"), ())], network)
    pull, *_ = plan(desired, observe([image]), network, remote={parse("redis:7"): UPSTREAM}).actions
    assert pull.reason == "remote-changed"
    assert pull.detail == f"the registry now serves {UPSTREAM[:19]}; the local copy is {local_copy}"


def test_plan_no_pull_when_the_local_copy_has_the_upstream_digest():
    image = {"Id": "sha256:aaaa", "RepoTags": ["redis:7", "localhost/redis:7"], "RepoDigests": [f"redis@{UPSTREAM}"]}
    network = _network("external")
    desired = desired_state([BaseImage(parse("redis:7"), ())], network)
    result = plan(desired, observe([image]), network, remote={parse("redis:7"): UPSTREAM})
    assert result.empty
    assert result.unchanged[0] == "redis:7 is present as sha256:aaaa (same as upstream)"
