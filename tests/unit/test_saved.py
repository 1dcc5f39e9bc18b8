"""Saved plans and the JSON stream, pure side: stale descriptions, the format check, the line models."""

import io
import json

import pytest

from reconciler import saved
from reconciler.errors import InputError
from reconciler.stream import LINE, JsonStream, schema

PRINT = {
    "stack": {"file": "sha256:aa", "builds": {"api": "sha256:b1"}, "files": {}, "base_images": ["redis:7"]},
    "network": {"mode": "internal", "registry": "h/p", "alias_prefix": "localhost"},
    "daemon": "ID1",
    "images": {"localhost/redis:7": "sha256:" + "1" * 64, "redis:7": "sha256:" + "1" * 64},
    "labels": {"api:latest": "sha256:" + "2" * 64},
    "files": {"conf/site.conf": None},
    "remote": {},
}


def _changed(**edits) -> dict:
    fresh = json.loads(json.dumps(PRINT))
    for dotted, value in edits.items():
        *path, last = dotted.split("__")
        node = fresh
        for key in path:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return fresh


MINIMAL = {
    "kind": saved.KIND,
    "format_version": "1.0",
    "created": "2026-11-29T12:00:00Z",
    "options": {"stack": "/s/stack.toml"},
    "fingerprint": PRINT,
    "plan": {"actions": []},
    "rendered": "No changes.\n",
}


def test_an_identical_fingerprint_has_no_changes():
    assert saved.changes(PRINT, json.loads(json.dumps(PRINT))) == []


@pytest.mark.parametrize(
    "edits, expected",
    [
        (
            {"images__localhost/redis:7": "sha256:" + "9" * 64},
            "image localhost/redis:7: sha256:111111111111 → sha256:999999999999",
        ),
        ({"images__redis:7": None}, "image redis:7: sha256:111111111111 → absent"),
        ({"daemon": "ID2"}, "the daemon: ID1 → ID2"),
        ({"network__mode": "external"}, "network mode: internal → external"),
        ({"stack__builds__api": "sha256:b2"}, "the inputs of service api changed"),
        ({"stack__file": "sha256:ab"}, "the stack file changed"),
        ({"files__conf/site.conf": "644:sha256:cd"}, "file conf/site.conf: absent → 644:sha256:cd"),
        ({"labels__api:latest": KeyError}, "build label of api:latest: sha256:222222222222 → absent"),
    ],
)
def test_each_kind_of_change_is_named(edits, expected):
    assert saved.changes(PRINT, _changed(**edits)) == [expected]


def test_many_changes_are_cut_to_a_few():
    fresh = _changed(**{f"images__img{n}:1": "sha256:x" for n in range(9)})
    words = saved.changes(PRINT, fresh, limit=3)
    assert len(words) == 4 and words[-1] == "and 6 more"


def test_a_file_that_is_not_a_saved_plan_is_refused(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"format_version": "1.0"}')
    with pytest.raises(InputError, match="not a reconcile saved plan"):
        saved.read(path)
    path.write_text("{")
    with pytest.raises(InputError, match="not a readable saved plan"):
        saved.read(path)
    with pytest.raises(InputError, match="saved plan not found"):
        saved.read(tmp_path / "none.json")


@pytest.mark.parametrize("version, accepted", [("1.0", True), ("1.7", True), ("2.0", False), ("0.9", False)])
def test_only_the_same_major_format_is_read(tmp_path, version, accepted):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**MINIMAL, "format_version": version}))
    if accepted:
        assert saved.read(path)["format_version"] == version
    else:
        with pytest.raises(InputError, match=f"saved plan format {version}"):
            saved.read(path)


def test_every_stream_line_goes_through_the_schema_models():
    out = io.StringIO()
    stream = JsonStream(out)
    stream.version("9.9")
    stream.diagnostic("warning", "redis@sha256:… is pinned by digest")
    stream.summary(
        {
            "pulled": 1,
            "tagged": 2,
            "written": 0,
            "built": 1,
            "succeeded": 4,
            "unchanged": 0,
            "failed": 0,
            "skipped": 0,
            "total": 4,
        },
        [],
    )
    lines = [LINE.validate_json(text) for text in out.getvalue().splitlines()]
    assert [line.type for line in lines] == ["version", "diagnostic", "change_summary"]
    assert lines[1].level == "warn" and lines[2].verify.converged
    assert set(schema()["discriminator"]["mapping"]) == {
        "version",
        "diagnostic",
        "planned_change",
        "apply_start",
        "apply_progress",
        "apply_complete",
        "apply_errored",
        "change_summary",
    }


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"options": None}, "saved plan is damaged: options"),
        ({"options": {"stack": "/s", "colour": "blue"}}, "saved plan is damaged: options.colour"),
        ({"plan": {"actions": [{"address": "pull[x]"}]}}, "saved plan is damaged: plan.actions.0.reason"),
    ],
)
def test_a_damaged_saved_plan_is_one_clear_error(tmp_path, edit, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**MINIMAL, **edit}))
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        saved.read(path)


def test_writing_a_plan_over_a_folder_fails_cleanly(tmp_path):
    from reconciler.network import NetworkDecision
    from reconciler.plan import Plan

    folder = tmp_path / "out"
    folder.mkdir()
    network = NetworkDecision(
        mode="internal", source="t", registry="h/p", registry_source="t", alias_prefix="localhost"
    )
    with pytest.raises(InputError, match="cannot write the saved plan"):
        saved.write(folder, options={}, the_plan=Plan(network=network), print_={}, rendered="")
    assert list(tmp_path.iterdir()) == [folder] and list(folder.iterdir()) == []  # no temp file left


def test_a_saved_plan_carries_only_and_targets_back_to_prepare(tmp_path):
    import inspect

    from reconciler import pipeline

    path = tmp_path / "p.json"
    options = {"stack": "/s/stack.toml", "targets": ["redis:7-alpine"], "only": ["pull", "tag"]}
    path.write_text(json.dumps({**MINIMAL, "options": options}))
    assert saved.read(path)["options"] == options
    assert set(saved.SavedOptions.model_fields) <= set(inspect.signature(pipeline.prepare).parameters)
