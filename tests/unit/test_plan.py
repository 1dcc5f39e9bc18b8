"""Plan: the pure diff of desired and observed state.

The main behaviour is data: one JSON file per case under tests/cases/plan/::

    {"mode": "internal" | "external", "registry": "harbor.test/aihpc",
     "bases": ["redis:7-alpine", ...],
     "images": [GET /images/json entries: Id, RepoTags, RepoDigests, Labels],
     "expect": [{"kind", "address", "reason", "before", "depends_on"}, ...]}
"""

import json
from pathlib import Path

import pytest

from reconciler.actual import observe
from reconciler.desired import BaseImage, desired_state
from reconciler.network import NetworkDecision
from reconciler.plan import PullAction, TagAction, plan, short_id
from reconciler.refs import parse

CASES = Path(__file__).parent.parent / "cases" / "plan"
KEYS = ("kind", "address", "reason", "before", "depends_on")
DIGEST = "sha256:" + "ef" * 32


def _network(mode: str, registry: str = "harbor.test/aihpc") -> NetworkDecision:
    return NetworkDecision(
        mode=mode, source="test", registry=registry, registry_source="test", alias_prefix="localhost"
    )


def _plan(mode: str, bases: list[str], images: list[dict], registry: str = "harbor.test/aihpc"):
    network = _network(mode, registry)
    desired = desired_state([BaseImage(parse(b), ()) for b in bases], network)
    return plan(desired, observe(images), network)


@pytest.mark.parametrize("name", sorted(p.stem for p in CASES.glob("*.json")))
def test_plan_case(name):
    case = json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))
    result = _plan(case["mode"], case["bases"], case["images"], case["registry"])
    assert [{key: getattr(a, key) for key in KEYS} for a in result.actions] == case["expect"]
    assert result.empty == (case["expect"] == [])


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
        "total": 6,
    }
    assert _plan("internal", [], []).summary() == {"pull": 0, "tag": 0, "write": 0, "build": 0, "total": 0}


def test_plan_to_json_is_versioned_and_complete():
    data = _plan("external", ["redis:7"], []).to_json()
    assert data["format_version"] == "1.0"
    assert data["network"] == {"mode": "external", "source": "test", "registry": "harbor.test/aihpc"}
    assert data["summary"] == {"pull": 1, "tag": 1, "write": 0, "build": 0, "total": 2}
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
