"""Builds, pure side: the inputs hash, context hashing, the build plan, BuildKit trace decoding."""

import base64
import hashlib
import json
import os
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from reconciler import buildkit, builds
from reconciler.actual import observe
from reconciler.context import HashCache, context_record, pack
from reconciler.desired import analyze_services, base_images, desired_state
from reconciler.errors import InputError
from reconciler.files import FileSpec
from reconciler.network import NetworkDecision
from reconciler.plan import narrow, plan, scope
from reconciler.refs import parse
from reconciler.stack import load

NETWORK = NetworkDecision(
    mode="external", source="test", registry="harbor.test/aihpc", registry_source="test", alias_prefix="localhost"
)
BASE_ID = "sha256:" + "ba" * 32
OTHER_ID = "sha256:" + "0e" * 32


def _stack(tmp_path: Path, dockerfiles: dict[str, str], extra: str = "") -> Path:
    for name, text in dockerfiles.items():
        (tmp_path / "src" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name / "Dockerfile").write_text(textwrap.dedent(text).lstrip())
    (tmp_path / "stack.toml").write_text(
        f'[stack]\nname = "t"\ntag = "v1"\nimage_prefix = "t-"\nservices = "src/*/Dockerfile"\n{textwrap.dedent(extra)}'
    )
    return tmp_path


def _desired(root: Path, cache: Path):
    stack = load(root)
    infos = analyze_services(stack)
    state = desired_state(base_images(stack, {name: info.uses for name, info in infos.items()}), NETWORK)
    state.builds = builds.build_specs(stack, infos, {}, HashCache(cache / "hashes.json"))
    return state


def _image(tags: list[str], image_id: str, labels: dict | None = None) -> dict:
    return {"Id": image_id, "RepoTags": tags, "RepoDigests": [], "Labels": labels or {}}


def _labels_for(state, service: str, resolved: dict) -> dict:
    spec = next(s for s in state.builds if s.service == service)
    inputs = builds.record(spec, resolved)
    return {builds.LABEL_INPUTS: builds.digest(inputs), builds.LABEL_PARTS: json.dumps(builds.parts(inputs))}


def _actions(result):
    return [(a.address, a.reason) for a in result.actions]


def test_a_missing_service_image_is_planned_as_a_build(tmp_path):
    state = _desired(_stack(tmp_path / "s", {"api": "FROM redis:7\n"}), tmp_path)
    result = plan(state, observe([_image(["redis:7"], BASE_ID)]), NETWORK)
    assert _actions(result) == [("tag[localhost/redis:7]", "missing"), ("build[api]", "missing")]
    assert result.actions[1].depends_on == []  # the build uses redis:7 itself, not its alias


def test_an_image_whose_label_matches_its_inputs_is_not_rebuilt(tmp_path):
    state = _desired(_stack(tmp_path / "s", {"api": "FROM redis:7\n"}), tmp_path)
    labels = _labels_for(state, "api", {"redis:7": BASE_ID})
    images = [_image(["redis:7", "localhost/redis:7"], BASE_ID), _image(["t-api:v1"], OTHER_ID, labels)]
    result = plan(state, observe(images), NETWORK)
    assert result.empty
    assert any("t-api:v1 is up to date" in line for line in result.unchanged)


def test_a_changed_context_file_is_named_in_the_reason(tmp_path):
    root = _stack(tmp_path / "s", {"api": "FROM redis:7\nCOPY app.py /\n"})
    (root / "src/api/app.py").write_text("print(1)\n")
    state = _desired(root, tmp_path)
    labels = _labels_for(state, "api", {"redis:7": BASE_ID})
    old_record = builds.record(state.builds[0], {"redis:7": BASE_ID})
    (root / "src/api/app.py").write_text("print(2)\n")
    state = _desired(root, tmp_path)
    images = [_image(["redis:7", "localhost/redis:7"], BASE_ID), _image(["t-api:v1"], OTHER_ID, labels)]
    result = plan(
        state, observe(images), NETWORK, previous=lambda h: old_record if h == labels[builds.LABEL_INPUTS] else None
    )
    assert _actions(result) == [("build[api]", "inputs-changed")]
    assert result.actions[0].detail == "context files changed: app.py"
    # Without the old record the part is still named, only not the file.
    result = plan(state, observe(images), NETWORK)
    assert result.actions[0].detail == "context files changed"


def test_a_base_being_pulled_defers_the_decision_to_apply(tmp_path):
    state = _desired(_stack(tmp_path / "s", {"api": "FROM redis:7\n"}), tmp_path)
    labels = _labels_for(state, "api", {"redis:7": BASE_ID})
    result = plan(state, observe([_image(["t-api:v1"], OTHER_ID, labels)]), NETWORK)
    assert _actions(result) == [
        ("pull[redis:7]", "missing"),
        ("tag[localhost/redis:7]", "missing"),
        ("build[api]", "base-changed"),
    ]
    build = result.actions[2]
    assert build.inputs_hash is None and "decided after pull[redis:7]" in build.detail
    assert build.lookups == {"redis:7": state.aliases[0].source}


def test_a_sibling_service_is_built_first_and_its_dependents_follow(tmp_path):
    root = _stack(tmp_path / "s", {"base": "FROM redis:7\n", "app": "ARG STACK_TAG\nFROM t-base:${STACK_TAG}\n"})
    state = _desired(root, tmp_path)
    assert [s.service for s in state.builds] == ["base", "app"]
    assert {k: v.familiar for k, v in state.builds[1].needs.items()} == {"base": "t-base:v1"}
    result = plan(state, observe([_image(["redis:7", "localhost/redis:7"], BASE_ID)]), NETWORK)
    assert result.actions[-1].address == "build[app]" and result.actions[-1].depends_on == ["build[base]"]


def test_a_changed_sibling_makes_its_dependents_base_changed(tmp_path):
    root = _stack(tmp_path / "s", {"base": "FROM redis:7\n", "app": "ARG STACK_TAG\nFROM t-base:${STACK_TAG}\n"})
    state = _desired(root, tmp_path)
    base_labels = _labels_for(state, "base", {"redis:7": BASE_ID})
    app_labels = _labels_for(state, "app", {"t-base:v1": base_labels[builds.LABEL_INPUTS]})
    (root / "src/base/Dockerfile").write_text("FROM redis:7\nENV X=1\n")
    state = _desired(root, tmp_path)
    images = [
        _image(["redis:7", "localhost/redis:7"], BASE_ID),
        _image(["t-base:v1"], OTHER_ID, base_labels),
        _image(["t-app:v1"], "sha256:" + "ab" * 32, app_labels),
    ]
    result = plan(state, observe(images), NETWORK)
    assert _actions(result) == [("build[base]", "inputs-changed"), ("build[app]", "base-changed")]
    # No COPY reads the context, so the record holds no files: only the Dockerfile changed.
    assert result.actions[0].detail == "Dockerfile changed"


def test_replace_and_force_rebuild_without_cache(tmp_path):
    root = _stack(tmp_path / "s", {"a": "FROM redis:7\n", "b": "FROM redis:7\n"})
    state = _desired(root, tmp_path)
    images = [_image(["redis:7", "localhost/redis:7"], BASE_ID)] + [
        _image([f"t-{n}:v1"], f"sha256:{n * 64}", _labels_for(state, n, {"redis:7": BASE_ID})) for n in "ab"
    ]
    assert plan(state, observe(images), NETWORK).empty
    replaced = plan(state, observe(images), NETWORK, replace=frozenset({"a"}))
    assert [(a.address, a.reason, a.nocache) for a in replaced.actions] == [("build[a]", "replace-requested", True)]
    forced = plan(state, observe(images), NETWORK, force=True)
    assert [(a.address, a.reason) for a in forced.actions] == [("build[a]", "force"), ("build[b]", "force")]


def _narrowed(state, images=(), targets=(), only=()):
    return narrow(plan(state, observe(list(images)), NETWORK, only=only), scope(state, targets, only))


def test_narrow_keeps_a_target_and_what_it_depends_on(tmp_path):
    root = _stack(tmp_path / "s", {"a": "FROM redis:7\n", "b": "FROM nginx:1\n"})
    result = _narrowed(_desired(root, tmp_path), targets=["a"])
    # Not even redis's alias: the build of a uses redis:7 itself.
    assert [a.address for a in result.actions] == ["pull[redis:7]", "build[a]"]
    assert result.targets == ["a"] and result.to_json()["partial"] is True


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # b builds FROM a's image; a's context gets a file
        ("build[b]", ["pull[redis:7]", "write[src/a/conf.txt]", "build[a]", "build[b]"]),
        ("t-b:v1", ["pull[redis:7]", "write[src/a/conf.txt]", "build[a]", "build[b]"]),  # a service's image
        ("redis:7", ["pull[redis:7]", "tag[localhost/redis:7]"]),  # a base image: its pull and aliases, no build
        ("write[src/a/conf.txt]", ["write[src/a/conf.txt]"]),
    ],
)
def test_narrow_to_each_kind_of_target(tmp_path, target, expected):
    root = _stack(tmp_path / "s", {"a": "FROM redis:7\n", "b": "FROM t-a:v1\n", "c": "FROM nginx:1\n"})
    state = _desired(root, tmp_path)
    state.files = [_file(root, "src/a/conf.txt")]
    assert [a.address for a in _narrowed(state, targets=[target]).actions] == expected


def test_a_build_depends_on_the_writes_into_its_context_when_targeted(tmp_path):
    root = _stack(tmp_path / "s", {"a": "FROM redis:7\n"})
    state = _desired(root, tmp_path)
    state.files = [_file(root, "src/a/conf.txt")]
    result = _narrowed(state, [_image(["redis:7", "localhost/redis:7"], BASE_ID)], targets=["a"])
    assert [a.address for a in result.actions] == ["write[src/a/conf.txt]", "build[a]"]


def test_only_build_runs_against_what_is_there_and_says_so(tmp_path):
    root = _stack(tmp_path / "s", {"a": "FROM redis:7\n", "b": "FROM t-a:v1\n"})
    state = _desired(root, tmp_path)
    state.files = [_file(root, "src/a/conf.txt")]
    result = _narrowed(state, only=["build"])
    assert [(a.address, a.depends_on) for a in result.actions] == [("build[a]", []), ("build[b]", ["build[a]"])]
    assert result.warnings == [
        "build[a] depends on pull[redis:7], write[src/a/conf.txt], left out by --only build: "
        "it runs against what is there now"
    ]
    assert result.only == ["build"] and result.targets == [] and result.partial


def test_only_build_reads_an_alias_as_it_is_when_its_tag_is_left_out(tmp_path):
    root = _stack(tmp_path / "s", {"a": "FROM localhost/redis:7\n"})
    state = _desired(root, tmp_path)
    images = [_image(["redis:7"], BASE_ID), _image(["localhost/redis:7"], OTHER_ID)]
    full = _narrowed(state, images)
    assert [a.address for a in full.actions] == ["tag[localhost/redis:7]", "build[a]"]
    assert full.actions[1].lookups == {"localhost/redis:7": parse("redis:7")}  # the alias once moved
    [build] = _narrowed(state, images, only=["build"]).actions
    # The tag will not run: the build reads, and records, the alias as it is now.
    assert build.lookups == {"localhost/redis:7": parse("localhost/redis:7")}
    assert build.inputs_hash == builds.digest(builds.record(build.spec, {"localhost/redis:7": OTHER_ID}))


def test_only_and_target_both_apply(tmp_path):
    root = _stack(tmp_path / "s", {"a": "FROM redis:7\n", "c": "FROM nginx:1\n"})
    result = _narrowed(_desired(root, tmp_path), targets=["a"], only=["pull", "tag"])
    assert [a.address for a in result.actions] == ["pull[redis:7]"]
    assert result.warnings == []


def test_an_unknown_target_lists_what_is_targetable_in_one_line(tmp_path):
    root = _stack(tmp_path / "s", {n: "FROM redis:7\n" for n in "abcdefghijk"})
    state = _desired(root, tmp_path)
    with pytest.raises(InputError) as refused:
        scope(state, ["z"])
    assert str(refused.value) == (
        "command line: --target 'z': no service, image or action of this stack; "
        "services: a, b, c, d, e, f, g, h and 3 more; images: redis:7; "
        "or an action as plan prints it (pull[redis:7], tag[localhost/redis:7], build[a] and 10 more)"
    )


def _file(root: Path, rel: str) -> FileSpec:
    return FileSpec("file", root / "conf.txt", root / rel, rel, b"x\n", 0o644, "files[0]", root)


def test_services_building_from_each_other_in_a_cycle_are_refused(tmp_path):
    root = _stack(tmp_path / "s", {"a": "FROM t-b:v1\n", "b": "FROM t-a:v1\n"})
    with pytest.raises(InputError, match="cycle"):
        _desired(root, tmp_path)


def test_dockerignored_files_are_not_inputs(tmp_path):
    context = tmp_path / "ctx"
    (context / "docs").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM x\n")
    (context / "app.py").write_text("1")
    (context / "docs/notes.md").write_text("n")
    (context / ".dockerignore").write_text("# comment\ndocs\n*.log\n")
    (context / "debug.log").write_text("l")
    record = context_record(context, context / "Dockerfile", HashCache(tmp_path / "h.json"))
    assert sorted(record) == [".dockerignore", "Dockerfile", "app.py"]


def test_the_stat_cache_skips_reading_unchanged_files(tmp_path):
    path = tmp_path / "f"
    path.write_text("aaaa")
    cache = HashCache(tmp_path / "h.json")
    cache.sha256(path, path.stat())
    cache.save()
    known = json.loads((tmp_path / "h.json").read_text())
    known[str(path)] = known[str(path)][:-64] + "f" * 64  # what the cache says, not what the file holds
    (tmp_path / "h.json").write_text(json.dumps(known))
    assert HashCache(tmp_path / "h.json").sha256(path, path.stat()) == "f" * 64


def test_a_same_size_edit_with_its_mtime_put_back_is_hashed_again(tmp_path):
    # cp -p and rsync -t restore the mtime; the ctime still moves, as git's index relies on.
    path = tmp_path / "f"
    path.write_text("aaaa")
    cache = HashCache(tmp_path / "h.json")
    assert cache.sha256(path, path.stat()) == hashlib.sha256(b"aaaa").hexdigest()
    cache.save()
    st = path.stat()
    time.sleep(0.05)  # past the kernel's coarse timestamp tick, so the edit's ctime differs
    path.write_text("bbbb")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    edited = path.stat()
    assert (edited.st_size, edited.st_mtime_ns, edited.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert HashCache(tmp_path / "h.json").sha256(path, edited) == hashlib.sha256(b"bbbb").hexdigest()


@pytest.mark.parametrize(
    "make_entry",
    [
        lambda st: [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, "f" * 64],  # the previous shape, a list
        lambda st: [st.st_size, st.st_mtime_ns, st.st_ino, "f" * 64],  # the one before, no ctime
        lambda st: f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{'f' * 64}",  # no ctime
        lambda st: f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{'f' * 63}",  # hash cut short
        lambda st: f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{'f' * 64}:",  # something after it
        lambda st: 5,
    ],
    ids=["previous-list-shape", "no-ctime-list", "no-ctime", "short-hash", "trailing", "not-a-string"],
)
def test_a_cache_entry_of_another_shape_is_a_miss(tmp_path, make_entry):
    path = tmp_path / "f"
    path.write_text("x")
    st = path.stat()
    (tmp_path / "h.json").write_text(json.dumps({str(path): make_entry(st)}))
    cache = HashCache(tmp_path / "h.json")
    assert cache.sha256(path, st) == hashlib.sha256(b"x").hexdigest()
    cache.save()
    saved = json.loads((tmp_path / "h.json").read_text())[str(path)]
    assert saved == f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{hashlib.sha256(b'x').hexdigest()}"


def test_planned_writes_count_as_context_before_they_exist(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM x\n")
    planned = {context / "conf/app.conf": "644:" + "cd" * 32}
    record = context_record(context, context / "Dockerfile", HashCache(tmp_path / "h.json"), planned)
    assert record["conf/app.conf"] == "644:" + "cd" * 32


def test_the_packed_tar_holds_exactly_the_hashed_files_without_pax_headers(tmp_path):
    context = tmp_path / "ctx"
    (context / "sub").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM x\n")
    (context / "sub/a.txt").write_text("a")
    (context / "skip.txt").write_text("s")
    (context / ".dockerignore").write_text("skip.txt\n")
    packed = pack(context, context / "Dockerfile")
    assert packed.record == context_record(context, context / "Dockerfile", HashCache(tmp_path / "h.json"))
    with tarfile.open(fileobj=packed.file) as tar:
        names = tar.getnames()
        assert all(not m.pax_headers for m in tar.getmembers())
    assert "skip.txt" not in names and "sub/a.txt" in names and packed.dockerfile == "Dockerfile"


def test_a_dockerfile_outside_its_context_travels_under_a_fixed_name(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (tmp_path / "Dockerfile.api").write_text("FROM x\n")
    packed = pack(context, tmp_path / "Dockerfile.api")
    with tarfile.open(fileobj=packed.file) as tar:
        assert tar.extractfile(packed.dockerfile).read() == b"FROM x\n"


def _field(number: int, payload: bytes) -> bytes:
    assert number < 16 and len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_buildkit_trace_messages_decode_to_steps_and_logs():
    vertex = _field(1, b"sha256:v1") + _field(3, b"[2/3] RUN make") + _field(5, b"\x08\x01")
    log = _field(1, b"sha256:v1") + bytes([3 << 3, 1]) + _field(4, b"compiling\nerror: boom\n")
    status = buildkit.decode(base64.b64encode(_field(1, vertex) + _field(3, log)).decode())
    assert [(s.name, s.started, s.completed) for s in status.steps] == [("[2/3] RUN make", True, False)]
    assert status.logs == [("sha256:v1", b"compiling\nerror: boom\n")]


def test_a_real_dockerd_trace_message_decodes():
    # Captured from dockerd 20.10's /build stream.
    aux = (
        "Cm8KR3NoYTI1NjowOGYxNGJmNDcwNDQ2MmNiM2M3MGRkMTAwMmJjMTljODU3Y2U5OWFhOGY2MWM3ZWM1MWJlNmM1ZGE4YzZhM2FjGiRb"
        "aW50ZXJuYWxdIGxvYWQgcmVtb3RlIGJ1aWxkIGNvbnRleHQ="
    )
    (step,) = buildkit.decode(aux).steps
    assert step.name == "[internal] load remote build context" and step.digest.startswith("sha256:08f14bf4")


def test_a_garbled_trace_message_reads_as_no_progress():
    assert buildkit.decode("not base64 at all!") == buildkit.Status()
    assert buildkit.decode(base64.b64encode(b"\x0a\xff").decode()) == buildkit.Status()


def test_a_hard_link_is_packed_and_recorded_as_the_file_it_is(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM x\n")
    (context / "a.txt").write_text("same bytes")
    os.link(context / "a.txt", context / "b.txt")
    packed = pack(context, context / "Dockerfile")
    assert packed.record == context_record(context, context / "Dockerfile", HashCache(tmp_path / "h.json"))
    with tarfile.open(fileobj=packed.file) as tar:
        assert tar.getmember("b.txt").isfile() and tar.extractfile("b.txt").read() == b"same bytes"


def test_a_context_file_gone_since_the_plan_is_a_clear_error_when_packing(tmp_path, monkeypatch):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM x\n")
    (context / "a.txt").write_text("a")
    import reconciler.context as ctx

    real = ctx._listing  # the walk saw a file that is gone by the time the tar is written
    monkeypatch.setattr(ctx, "_listing", lambda c, d: {**real(c, d), "vanished.txt": None})
    with pytest.raises(InputError, match="cannot read the build context"):
        pack(context, context / "Dockerfile")


def test_a_bad_dockerignore_pattern_is_a_clear_error(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM x\n")
    (context / ".dockerignore").write_text("[z-a]\n")
    with pytest.raises(InputError, match=r"bad \.dockerignore pattern") as caught:
        context_record(context, context / "Dockerfile", HashCache(tmp_path / "h.json"))
    assert caught.value.where.endswith(".dockerignore")


@pytest.mark.parametrize("content", ["[]", '{"x": 5}', "not json"])
def test_a_damaged_hash_cache_is_no_cache(tmp_path, content):
    (tmp_path / "h.json").write_text(content)
    path = tmp_path / "f"
    path.write_text("x")
    assert HashCache(tmp_path / "h.json").sha256(path, path.stat()) == builds.hashlib.sha256(b"x").hexdigest()


def test_a_file_entry_may_not_write_a_dockerignore(tmp_path):
    # A Dockerfile may be written (it is read as rendered); a .dockerignore decides the file set the plan hashes.
    root = _stack(tmp_path / "s", {"api": "FROM redis:7\n"}, '[[files]]\nsrc = "di"\ndest = "src/api/.dockerignore"\n')
    (root / "di").write_text("*.tmp\n")
    from reconciler.files import desired_files

    stack = load(root)
    overlay = {f.dest: "644:x" for f in desired_files(stack, NETWORK)}
    with pytest.raises(InputError, match=r"writes src/api/\.dockerignore, which decides what service 'api' is built"):
        builds.build_specs(stack, analyze_services(stack), overlay, HashCache(tmp_path / "h.json"))


def test_two_services_building_one_image_are_refused(tmp_path):
    root = _stack(
        tmp_path / "s",
        {"a": "FROM redis:7\n", "b": "FROM redis:7\n"},
        '[services.a]\nimage = "same"\n[services.b]\nimage = "same"\n',
    )
    with pytest.raises(InputError, match="services 'a' and 'b' both build same:v1"):
        load(root)


def test_a_malformed_parts_label_reads_as_no_parts(tmp_path):
    state = _desired(_stack(tmp_path / "s", {"api": "FROM redis:7\n"}), tmp_path)
    labels = {builds.LABEL_INPUTS: "sha256:old", builds.LABEL_PARTS: "1"}
    images = [_image(["redis:7", "localhost/redis:7"], BASE_ID), _image(["t-api:v1"], OTHER_ID, labels)]
    (action,) = plan(state, observe(images), NETWORK).actions
    assert (action.reason, action.detail) == ("inputs-changed", "inputs hash differs (no per-part record on the image)")


def test_only_build_hashes_a_context_file_as_it_is_on_disk_when_its_write_is_left_out(tmp_path, monkeypatch):
    import hashlib

    from reconciler import pipeline

    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path / "cache"))
    root = _stack(
        tmp_path / "s",
        {"web": "FROM nginx:1\nCOPY site.conf /site.conf\n"},
        '[[files]]\nsrc = "site.conf"\ndest = "src/web/site.conf"\n',
    )
    (root / "site.conf").write_text("new\n")
    (root / "src/web/site.conf").write_text("old\n")

    def recorded(only=None) -> str:
        [spec] = pipeline.prepare(str(root), network="external", only=only).desired.builds
        return spec.files["site.conf"]

    assert hashlib.sha256(b"new\n").hexdigest() in recorded()  # as the write will leave it
    assert hashlib.sha256(b"old\n").hexdigest() in recorded(["build"])  # the write will not run
    assert hashlib.sha256(b"new\n").hexdigest() in recorded(["write", "build"])
