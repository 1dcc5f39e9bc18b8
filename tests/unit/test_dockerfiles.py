"""Which external images a Dockerfile build needs.

Most behaviour is data: one folder per case under tests/cases/dockerfiles/,
holding a ``Dockerfile`` and a ``case.toml``::

    build_args = { NAME = "value" }      # optional
    target = "stage"                     # optional
    expect = [["redis:7-alpine", 3]]     # familiar ref and line, in the order returned
    # or
    error = "part of the message"
    error_line = 3                       # optional: "Dockerfile:3" must be in the message
"""

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from reconciler.dockerfiles import escape_char, external_images, platform_args
from reconciler.errors import InputError

CASES = Path(__file__).parent.parent / "cases" / "dockerfiles"


def _case_names():
    return sorted(p.name for p in CASES.iterdir() if (p / "case.toml").is_file())


@pytest.mark.parametrize("name", _case_names())
def test_dockerfile_case(name):
    folder = CASES / name
    case = tomllib.loads((folder / "case.toml").read_text(encoding="utf-8"))
    assert set(case) <= {"build_args", "target", "expect", "error", "error_line"}, "unknown key in case.toml"
    assert ("expect" in case) != ("error" in case), "a case has either expect or error"
    dockerfile = folder / "Dockerfile"
    run = lambda: external_images(  # noqa: E731
        dockerfile, case.get("build_args"), case.get("target"), shown_as="Dockerfile"
    )
    if "error" in case:
        with pytest.raises(InputError) as info:
            run()
        message = str(info.value)
        assert case["error"] in message
        assert "\n" not in message
        assert message.startswith("Dockerfile")
        if "error_line" in case:
            assert f"Dockerfile:{case['error_line']}:" in message
        return
    uses = run()
    assert [[u.ref.familiar, u.line] for u in uses] == case["expect"]
    assert all(u.file == dockerfile for u in uses)


def test_external_images_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read Dockerfile") as info:
        external_images(tmp_path / "Dockerfile", shown_as="src/app/Dockerfile")
    assert str(info.value).startswith("src/app/Dockerfile: ")
    assert "\n" not in str(info.value)


def test_external_images_labels_errors_with_path_by_default(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text("FROM Redis\n")
    with pytest.raises(InputError) as info:
        external_images(path)
    assert str(info.value).startswith(f"{path}:1: ")


def test_external_images_build_args_do_not_change_input(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text("ARG V=6\nFROM redis:$V\n")
    args = {"V": "7"}
    assert [u.ref.familiar for u in external_images(path, args)] == ["redis:7"]
    assert args == {"V": "7"}


def test_external_images_expands_automatic_platform_args(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text("FROM --platform=$BUILDPLATFORM example/tool:${TARGETOS}-${TARGETARCH}\n")
    plat = platform_args()
    [use] = external_images(path)
    assert use.ref.familiar == f"example/tool:linux-{plat['TARGETARCH']}"


def test_platform_args_describe_a_linux_build():
    plat = platform_args()
    assert plat["BUILDOS"] == plat["TARGETOS"] == "linux"
    assert plat["BUILDPLATFORM"] == f"linux/{plat['BUILDARCH']}"
    assert plat["TARGETPLATFORM"] == f"linux/{plat['TARGETARCH']}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM alpine\n", "\\"),
        ("# escape=`\nFROM alpine\n", "`"),
        ("#escape = `\nFROM alpine\n", "`"),
        ("# ESCAPE=`\nFROM alpine\n", "`"),
        ("# syntax=docker/dockerfile:1\n# escape=`\nFROM alpine\n", "`"),
        ("FROM alpine\n# escape=`\n", "\\"),
        ("# a comment\n# escape=`\nFROM alpine\n", "\\"),
    ],
)
def test_escape_char_reads_only_leading_directives(text, expected):
    assert escape_char(text) == expected


_ORDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from reconciler.dockerfiles import external_images
    print(" ".join(u.ref.familiar for u in external_images(Path(sys.argv[1]))))
    """
)


def test_external_images_on_one_line_keep_file_order_whatever_the_hash_seed(tmp_path):
    # Several images on one line (one RUN with several mounts) must come back in
    # the order written, not in set-iteration order (which depends on PYTHONHASHSEED).
    path = tmp_path / "Dockerfile"
    path.write_text(
        "FROM scratch\n"
        "RUN --mount=type=bind,from=alpine:3,target=/a"
        " --mount=type=bind,from=busybox:1,target=/b"
        " --mount=type=bind,from=debian:12,target=/c true\n"
    )
    expected = "alpine:3 busybox:1 debian:12"
    for seed in ("0", "1", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _ORDER_SCRIPT, str(path)], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected, f"PYTHONHASHSEED={seed}"
