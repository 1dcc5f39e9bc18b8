"""Reads stay in the stack folder: a source, an included template, a Dockerfile or a build
context leading out (absolute, ``..`` or a symlink) is a one-line error naming the key or
file and the path, unless ``[stack] allow_outside`` lists the folder it leads to."""

import textwrap
from pathlib import Path

import pytest

from reconciler import pipeline
from reconciler.errors import InputError
from reconciler.files import desired_files
from reconciler.network import NetworkDecision
from reconciler.stack import load

NETWORK = NetworkDecision(
    mode="internal", source="test", registry="harbor.test/aihpc", registry_source="test", alias_prefix="localhost"
)
HEAD = '[stack]\nname = "s"\n'


@pytest.fixture
def layout(tmp_path):
    """``stack/`` with a Dockerfile, and beside it ``outside/`` and ``shared/`` holding files."""
    root = tmp_path / "stack"
    (root / "src/web").mkdir(parents=True)
    (root / "src/web/Dockerfile").write_text("FROM nginx:1\n")
    for folder in ("outside", "shared"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "secret.txt").write_text(f"{folder} secret\n")
        (tmp_path / folder / "part.j2").write_text(f"{folder} part\n")
        (tmp_path / folder / "Dockerfile").write_text("FROM alpine:3\n")
    return root


def _stack(root: Path, text: str) -> Path:
    (root / "stack.toml").write_text(HEAD + textwrap.dedent(text))
    return root


def _error(root: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        desired_files(load(root), NETWORK)
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize("kind", ["files", "templates"])
@pytest.mark.parametrize(
    "src, message",
    [
        ("../outside/secret.txt", "../outside/secret.txt is outside the stack folder"),
        ("src/../../outside/secret.txt", "src/../../outside/secret.txt is outside the stack folder"),
        ("{outside}/secret.txt", "{outside}/secret.txt is outside the stack folder"),
        ("link.txt", "link.txt leads outside the stack folder through a symlink (to {outside}/secret.txt)"),
        (
            "linked/secret.txt",
            "linked/secret.txt leads outside the stack folder through a symlink (to {outside}/secret.txt)",
        ),
        (
            "linked/*.txt",
            "linked/secret.txt leads outside the stack folder through a symlink (to {outside}/secret.txt)",
        ),
    ],
)
def test_a_source_leading_out_of_the_stack_folder_is_refused(layout, kind, src, message):
    outside = layout.parent / "outside"
    (layout / "link.txt").symlink_to(outside / "secret.txt")
    (layout / "linked").symlink_to(outside)
    src, message = src.format(outside=outside), message.format(outside=outside)
    error = _error(_stack(layout, f'\n[[{kind}]]\nsrc = "{src}"\ndest = "copy.txt"\n'))
    assert error.what == message
    assert error.where == f"stack.toml:5: {kind}[0].src"
    assert "stack.allow_outside" in error.hint


def test_allow_outside_lets_sources_and_symlinks_into_the_listed_folder_be_read(layout):
    (layout / "link.txt").symlink_to(layout.parent / "shared/secret.txt")
    entries = """
    allow_outside = ["../shared"]

    [[files]]
    src = "../shared/secret.txt"
    dest = "a.txt"

    [[files]]
    src = "link.txt"
    dest = "b.txt"

    [[templates]]
    src = "../shared/part.j2"
    dest = "c.txt"
    """
    specs = desired_files(load(_stack(layout, entries)), NETWORK)
    assert [(s.rel, s.content) for s in specs] == [
        ("c.txt", b"shared part\n"),
        ("a.txt", b"shared secret\n"),
        ("b.txt", b"shared secret\n"),
    ]
    (layout / "other.txt").symlink_to(layout.parent / "outside/secret.txt")  # the allowance is that folder only
    (layout / "stack.toml").write_text(
        HEAD + 'allow_outside = ["../shared"]\n[[files]]\nsrc = "other.txt"\ndest = "d"\n'
    )
    assert "other.txt leads outside the stack folder through a symlink" in _error(layout).what


TEMPLATE = '\n[[templates]]\nsrc = "templates/site.j2"\ndest = "site.conf"\n'


@pytest.mark.parametrize(
    "include, message",
    [
        (
            "templates/parts/linked.j2",
            "template templates/parts/linked.j2 leads outside the stack folder (to {outside}/part.j2)",
        ),
        ("../outside/part.j2", "template ../outside/part.j2 leads outside the stack folder (to {outside}/part.j2)"),
        ("{outside}/part.j2", "template {outside}/part.j2 leads outside the stack folder"),
    ],
)
@pytest.mark.parametrize("statement", ["{{% include '{}' %}}", "{{% import '{}' as p %}}"])
def test_an_include_or_import_leading_out_is_refused_naming_the_template_line(layout, include, message, statement):
    outside = layout.parent / "outside"
    (layout / "templates/parts").mkdir(parents=True)
    (layout / "templates/parts/linked.j2").symlink_to(outside / "part.j2")
    include, message = include.format(outside=outside), message.format(outside=outside)
    (layout / "templates/site.j2").write_text("first line\n" + statement.format(include) + "\n")
    error = _error(_stack(layout, TEMPLATE))
    assert error.what.startswith(message) and error.what.endswith("(included from templates/site.j2)")
    assert error.where == "templates/site.j2:2"


def test_an_include_inside_the_stack_or_an_allowed_folder_renders(layout):
    (layout / "templates/parts").mkdir(parents=True)
    (layout / "templates/parts/own.j2").write_text("own part\n")
    (layout / "templates/parts/shared.j2").symlink_to(layout.parent / "shared/part.j2")
    (layout / "templates/site.j2").write_text(
        "{% include 'templates/parts/own.j2' %}{% include 'templates/parts/shared.j2' %}"
        "{% include '../shared/part.j2' %}"
    )
    (spec,) = desired_files(load(_stack(layout, 'allow_outside = ["../shared"]\n' + TEMPLATE)), NETWORK)
    assert spec.content == b"own part\nshared part\nshared part\n"


def test_a_dockerfile_symlinked_out_of_the_stack_folder_is_refused(layout):
    outside = layout.parent / "outside"
    (layout / "src/web/Dockerfile").unlink()
    (layout / "src/web/Dockerfile").symlink_to(outside / "Dockerfile")
    root = _stack(layout, 'services = "src/*/Dockerfile"\n')
    with pytest.raises(InputError) as caught:
        load(root)
    assert caught.value.what == (
        f"service 'web': Dockerfile src/web/Dockerfile leads outside the stack folder (to {outside}/Dockerfile)"
    )
    assert caught.value.where == "stack.toml:3: stack.services"
    (root / "stack.toml").write_text(HEAD + 'services = "src/*/Dockerfile"\nallow_outside = ["../outside"]\n')
    assert [s.name for s in load(root).services] == ["web"]


@pytest.mark.parametrize(
    "text, where",
    [
        ('\n[services.api]\ncontext = "../outside"\n', "stack.toml:5: services.api.context"),
        ('\n[services.api]\ncontext = "src/web"\ndockerfile = "../../../outside/Dockerfile"\n', "services.api"),
        ('services = "src/*/Dockerfile"\ncontext = ".."\n', "stack.toml:4: stack.context"),
    ],
)
def test_a_build_context_or_dockerfile_outside_the_stack_folder_is_refused(layout, text, where):
    root = _stack(layout, text)
    with pytest.raises(InputError) as caught:
        load(root)
    assert "is outside the stack folder" in caught.value.what
    assert caught.value.where.endswith(where) and "\n" not in str(caught.value)


def test_allow_outside_admits_a_build_context_beside_the_stack(layout):
    root = _stack(layout, 'allow_outside = ["../outside"]\n\n[services.api]\ncontext = "../outside"\n')
    (service,) = load(root).services
    assert service.context == layout.parent / "outside"


def test_discover_refuses_a_symlinked_dockerfile_before_reading_it(layout):
    (layout / "src/web/Dockerfile").unlink()
    (layout / "src/web/Dockerfile").symlink_to("/etc/hostname")
    _stack(layout, 'services = "src/*/Dockerfile"\n')
    with pytest.raises(InputError, match=r"Dockerfile src/web/Dockerfile leads outside the stack folder \(to /etc/"):
        pipeline.discover(str(layout), network="external")


@pytest.mark.parametrize(
    "compose, message",
    [
        (
            "include:\n  - ../outside/compose.yml\n",
            "outside/compose.yml: it is outside the stack folder; list its folder in stack.allow_outside",
        ),
        (
            "services:\n  web:\n    extends:\n      file: ../outside/compose.yml\n      service: db\n",
            "outside/compose.yml: it is outside the stack folder; list its folder in stack.allow_outside",
        ),
    ],
)
def test_a_compose_include_or_extends_leading_out_is_refused_unless_allowed(layout, compose, message):
    (layout.parent / "outside/compose.yml").write_text("services:\n  db:\n    image: redis:7\n")
    (layout / "compose.yml").write_text(compose)
    root = _stack(layout, 'compose = ["compose.yml"]\n')
    with pytest.raises(InputError) as caught:
        pipeline.discover(str(root), network="external")
    assert message in caught.value.what and "\n" not in str(caught.value)
    assert caught.value.where.startswith("compose.yml:")
    _stack(layout, 'compose = ["compose.yml"]\nallow_outside = ["../outside"]\n')
    assert "redis:7" in {base.ref.familiar for base in pipeline.discover(str(root), network="external").bases}


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_compose_file_that_is_a_fifo_or_a_device_is_refused_at_once(layout, special):
    """Neither waits for a writer nor reads without end: only regular files are read."""
    import os

    target = layout / "compose.yml"
    if special == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(special)
    root = _stack(layout, 'compose = ["compose.yml"]\nallow_outside = ["/dev"]\n')
    with pytest.raises(InputError, match="cannot read compose file: not a regular file"):
        pipeline.discover(str(root), network="external")


def test_a_stack_file_over_the_size_bound_is_refused(tmp_path):
    from reconciler.tree import read_regular

    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    assert read_regular(big, limit=2048) == b"x" * 2048
    with pytest.raises(OSError, match="larger than"):
        read_regular(big, limit=2047)
