"""Rendered and synced files, pure side: rendering, the sandbox, path checks, modes, the atomic write."""

import os
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import InputError
from reconciler.files import desired_files, unified_diff, write
from reconciler.network import NetworkDecision
from reconciler.stack import load

NETWORK = NetworkDecision(
    mode="internal", source="test", registry="harbor.test/aihpc", registry_source="test", alias_prefix="localhost"
)


def _stack(root: Path, entries: str, template: str | None = None) -> Path:
    (root / "src/web").mkdir(parents=True, exist_ok=True)
    (root / "src/web/Dockerfile").write_text("FROM nginx:1\n")
    if template is not None:
        (root / "templates").mkdir(exist_ok=True)
        (root / "templates/site.j2").write_text(template)
    (root / "stack.toml").write_text(
        '[stack]\nname = "demo"\ntag = "v2"\nservices = "src/*/Dockerfile"\n' + textwrap.dedent(entries)
    )
    return root


TEMPLATE_ENTRY = """
[[templates]]
src = "templates/site.j2"
dest = "src/web/site.conf"
vars = { host = "ai.example" }
"""


def _files(root: Path):
    return desired_files(load(root), NETWORK)


def test_a_template_sees_vars_the_stack_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SITE_OWNER", "ops")
    template = (
        "{{ vars.host }} {{ stack.name }}:{{ stack.tag }} {{ stack.network }} {{ stack.registry }} "
        "{{ stack.services | map(attribute='name') | join(',') }} {{ env.SITE_OWNER }}\n"
    )
    (spec,) = _files(_stack(tmp_path, TEMPLATE_ENTRY, template))
    assert spec.content == b"ai.example demo:v2 internal harbor.test/aihpc web ops\n"
    assert spec.rel == "src/web/site.conf" and spec.kind == "template"


@pytest.mark.parametrize(
    "template, message, line",
    [
        ("ok\n{{ nope }}\n", "undefined variable: 'nope' is undefined", 2),
        ("{{ ''.__class__.__mro__ }}\n", "unsafe", 1),
        ("a\nb\n{% for x in %}\n", "template syntax error", 3),
        ("{{ vars.host.missing }}\n", "undefined variable", 1),
    ],
)
def test_template_mistakes_are_one_line_errors_with_the_template_line(tmp_path, template, message, line):
    with pytest.raises(InputError) as caught:
        _files(_stack(tmp_path, TEMPLATE_ENTRY, template))
    assert message in caught.value.what
    assert caught.value.where == f"templates/site.j2:{line}"
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("dest", ["../outside.conf", "/etc/outside.conf", "src/../../outside.conf"])
def test_a_destination_outside_the_stack_folder_is_refused(tmp_path, dest):
    root = tmp_path / "stack"
    root.mkdir()
    (root / "a.txt").write_text("a")
    with pytest.raises(InputError, match="outside the stack folder") as caught:
        _files(_stack(root, f'[[files]]\nsrc = "a.txt"\ndest = "{dest}"\n'))
    assert caught.value.where == "stack.toml:7: files[0].dest"  # the dest line


def test_a_destination_escaping_through_a_symlink_is_refused(tmp_path):
    root = tmp_path / "stack"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    (root / "a.txt").write_text("a")
    with pytest.raises(InputError, match=r"outside the stack folder \(through a symlink\)"):
        _files(_stack(root, '[[files]]\nsrc = "a.txt"\ndest = "link/a.txt"\n'))


def test_two_entries_writing_one_destination_are_refused(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    entries = '[[files]]\nsrc = "a.txt"\ndest = "out.txt"\n[[files]]\nsrc = "a.txt"\ndest = "./out.txt"\n'
    with pytest.raises(InputError, match=r"files\[0\] and files\[1\] both write out.txt"):
        _files(_stack(tmp_path, entries))


def test_the_mode_is_explicit_else_kept_from_the_destination_else_the_source(tmp_path):
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "run.sh", 0o755)
    entries = (
        '[[files]]\nsrc = "run.sh"\ndest = "a.sh"\n[[files]]\nsrc = "run.sh"\ndest = "b.sh"\n'
        '[[files]]\nsrc = "run.sh"\ndest = "c.sh"\nmode = "0700"\n'
    )
    (tmp_path / "b.sh").write_text("old")
    os.chmod(tmp_path / "b.sh", 0o640)
    modes = {spec.rel: spec.mode for spec in _files(_stack(tmp_path, entries))}
    assert modes == {"a.sh": 0o755, "b.sh": 0o640, "c.sh": 0o700}


@pytest.mark.parametrize("mode", ["4755", "2755", "1777", "06755"])
def test_a_mode_with_set_uid_set_gid_or_sticky_bits_is_refused(tmp_path, mode):
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    with pytest.raises(InputError) as caught:
        _files(_stack(tmp_path, f'[[files]]\nsrc = "run.sh"\ndest = "a.sh"\nmode = "{mode}"\n'))
    assert caught.value.what == f"mode {mode!r} sets the set-uid, set-gid or sticky bit"
    assert caught.value.where == "stack.toml:8: files[0].mode"


def test_a_kept_mode_loses_its_set_uid_bit(tmp_path):
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "run.sh", 0o4755)
    (spec,) = _files(_stack(tmp_path, '[[files]]\nsrc = "run.sh"\ndest = "a.sh"\n'))
    assert spec.mode == 0o755


def test_a_write_is_atomic_and_sets_the_mode(tmp_path):
    (tmp_path / "a.txt").write_text("new\n")
    (spec,) = _files(_stack(tmp_path, '[[files]]\nsrc = "a.txt"\ndest = "conf/out.txt"\nmode = "0600"\n'))
    write(spec)
    out = tmp_path / "conf/out.txt"
    assert out.read_text() == "new\n" and out.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.txt"]  # no temp file left


def test_the_diff_is_unified_and_marks_a_new_file(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    (spec,) = _files(_stack(tmp_path, '[[files]]\nsrc = "a.txt"\ndest = "out.txt"\n'))
    assert unified_diff(spec, None).splitlines()[:3] == ["--- /dev/null", "+++ b/out.txt", "@@ -0,0 +1,2 @@"]
    changed = unified_diff(spec, b"one\nTWO")
    assert "-TWO\n\\ No newline at end of file\n+two\n" in changed


def test_a_missing_included_template_names_the_include(tmp_path):
    with pytest.raises(InputError, match=r"template parts/missing.j2 not found \(included from templates/site.j2\)"):
        _files(_stack(tmp_path, TEMPLATE_ENTRY, "{% include 'parts/missing.j2' %}\n"))
