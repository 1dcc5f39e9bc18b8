"""What a Dockerfile build reads, declares and needs.

Most behaviour is data: one folder per case under tests/cases/dockerfiles/,
holding a ``Dockerfile`` and a ``case.toml``::

    build_args = { NAME = "value" }      # optional
    target = "stage"                     # optional
    expect = [["redis:7-alpine", 3]]     # familiar ref and line, in the order returned
    args = ["NAME"]                      # optional: every ARG name declared, sorted
    sources = [["src", 4, "COPY"]]       # optional: pattern, line, instruction, in order
    sources_unknown = true               # optional, instead of sources: "cannot tell"
    heredocs = [5]                       # optional: lines of instructions using a heredoc
    syntax = "docker/dockerfile:1"       # optional: the syntax directive ("" for none)
    # or
    error = "part of the message"
    error_line = 3                       # optional: "Dockerfile:3" must be in the message
"""

import os
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

from reconciler.dockerfiles import (
    EXPANSION_BUDGET,
    Source,
    analyze,
    escape_char,
    external_images,
    platform_args,
    select,
)
from reconciler.errors import InputError

CASES = Path(__file__).parent.parent / "cases" / "dockerfiles"


def _case_names():
    return sorted(p.name for p in CASES.iterdir() if (p / "case.toml").is_file())


@pytest.mark.parametrize("name", _case_names())
def test_dockerfile_case(name):
    folder = CASES / name
    case = tomllib.loads((folder / "case.toml").read_text(encoding="utf-8"))
    info_keys = {"args", "sources", "sources_unknown", "heredocs", "syntax"}
    assert set(case) <= {"build_args", "target", "expect", "error", "error_line", *info_keys}, (
        "unknown key in case.toml"
    )
    assert ("expect" in case) != ("error" in case), "a case has either expect or error"
    assert not ("sources" in case and "sources_unknown" in case), "sources or sources_unknown, not both"
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
    info = analyze(
        dockerfile.read_text(encoding="utf-8"),
        case.get("build_args"),
        case.get("target"),
        path=dockerfile,
        shown_as="Dockerfile",
    )
    assert info.uses == uses
    if "args" in case:
        assert sorted(info.args) == case["args"]
    if "sources" in case:
        assert info.sources == [Source(*s) for s in case["sources"]]
    if "sources_unknown" in case:
        assert (info.sources is None) == case["sources_unknown"]
    if "heredocs" in case:
        assert info.heredocs == case["heredocs"]
    if "syntax" in case:
        assert info.syntax == (case["syntax"] or None)


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


def _analyze(text, build_args=None, target=None):
    return analyze(text, build_args, target, path=Path("Dockerfile"), shown_as="Dockerfile")


def _one_line_error(text, build_args=None):
    with pytest.raises(InputError) as info:
        _analyze(text, build_args)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 1000
    return message


def test_analyze_reads_text_that_is_not_on_disk(tmp_path):
    info = analyze("FROM redis:7\nCOPY conf /etc/redis\n", None, None, path=tmp_path / "nowhere", shown_as="tpl")
    assert [(u.ref.familiar, u.file) for u in info.uses] == [("redis:7", tmp_path / "nowhere")]
    assert info.sources == [Source("conf", 2, "COPY")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('FROM "alpine:3"\n', "alpine:3"),
        ("FROM 'alpine:3' AS x\n", "alpine:3"),
        ('ARG T=3\nFROM "alpine:$T"\n', "alpine:3"),
        ("ARG T=3\nFROM 'alpine:$T'\n", None),  # single quotes keep `$T`: not a reference
        ('ARG B="alpine:3"\nFROM $B\n', "alpine:3"),
    ],
)
def test_quoted_from_words_lose_their_quotes_as_in_buildkit(text, expected):
    if expected is None:
        assert "invalid reference 'alpine:$T'" in _one_line_error(text)
    else:
        assert [u.ref.familiar for u in _analyze(text).uses] == [expected]


@pytest.mark.parametrize(
    "text", ["FROM busybox:1.36\n\\\n", "FROM busybox:1.36\n\\", "FROM busybox:1.36\n   \\\n  \n", "FROM x\n\\\n# c\n"]
)
def test_trailing_line_continuation_is_a_one_line_error(text):
    message = _one_line_error(text)
    assert message.startswith("Dockerfile:2: ")
    assert "line continuation" in message


@pytest.mark.parametrize("levels", [26, 39])
@pytest.mark.parametrize("in_stage", [False, True], ids=["meta", "stage"])
def test_arg_doubling_chain_stops_at_the_cap_quickly(levels, in_stage):
    chain = "ARG A0=x\n" + "".join(f"ARG A{i}=${{A{i - 1}}}${{A{i - 1}}}\n" for i in range(1, levels + 1))
    text = f"FROM alpine:3\n{chain}" if in_stage else f"{chain}FROM alpine:3\n"
    started = time.perf_counter()
    message = _one_line_error(text)
    assert time.perf_counter() - started < 1
    line = 18 + in_stage  # A17 is the first value over 65,536 characters
    assert message.startswith(f"Dockerfile:{line}: ARG A17: value longer than 65536 characters")


def test_env_doubling_and_oversized_sources_read_as_unknown_quickly():
    # ENV values only decide which files are read: past the cap they are unknown, not an
    # error (a certificate bundle passed through ENV is legitimate), and stop growing.
    env = "FROM alpine:3\nENV E0=x\n" + "".join(f"ENV E{i}=$E{i - 1}$E{i - 1}\n" for i in range(1, 40))
    started = time.perf_counter()
    assert _analyze(env + "COPY $E39 /\n").sources is None
    assert time.perf_counter() - started < 1
    copy = "FROM alpine:3\nARG A=" + "x" * 40_000 + "\nCOPY $A$A /\n"
    assert _analyze(copy).sources is None
    cert = "-----BEGIN CERTIFICATE-----" + "x" * 200_000
    info = _analyze("FROM alpine:3\nARG CERT\nENV CERT=$CERT\nCOPY app /\n", {"CERT": cert})
    assert info.sources == [Source("app", 4, "COPY")]


def test_many_large_expansions_hit_the_total_budget():
    text = "ARG A=" + "x" * 30_000 + "\n" + "".join(f"ARG B{i}=$A$A\n" for i in range(200)) + "FROM alpine:3\n"
    started = time.perf_counter()
    message = _one_line_error(text)
    assert time.perf_counter() - started < 5
    assert f"more than {EXPANSION_BUDGET} characters in total" in message


def test_deeply_nested_substitution_is_a_one_line_error():
    text = "ARG A=" + "${B:-" * 3000 + "x" + "}" * 3000 + "\nFROM alpine:3\n"
    assert "nested deeper than" in _one_line_error(text)


def test_errors_echo_long_values_cut_and_control_characters_escaped():
    message = _one_line_error("ARG T='a\x1b" + "b" * 5000 + "'\nFROM $T\n")
    assert message.startswith("Dockerfile:2: invalid reference 'a\\x1bbbb")
    assert "\x1b" not in message
    message = _one_line_error("FROM alpine:3\nFROM alpine:3 AS " + "\x07" * 5000 + "\n")
    assert "invalid stage name '\\x07" in message and "(5000 characters)" in message


def test_huge_stage_index_is_not_an_int_conversion_error():
    message = _one_line_error("FROM alpine:3\nCOPY --from=" + "9" * 5000 + " /a /b\n")
    assert "does not name an earlier stage" in message


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        ("# syntax=docker/dockerfile:1\nFROM a\n", "docker/dockerfile:1"),
        ("#!/usr/bin/env buildctl\n# syntax = example/fe:2 \nFROM a\n", "example/fe:2"),
        ("\ufeff# syntax=x/y\nFROM a\n", "x/y"),
        ("# escape=`\n# syntax=x/y\nFROM a\n", "x/y"),
        ("# note=1\n# syntax=x/y\nFROM a\n", None),  # an unknown directive ends the directives
        ("FROM a\n# syntax=x/y\n", None),
        ("# a comment\n# syntax=x/y\nFROM a\n", None),
    ],
)
def test_syntax_directive_only_at_the_top(text, syntax):
    assert _analyze(text).syntax == syntax


def test_escape_after_unknown_directive_is_a_comment():
    assert escape_char("# note=1\n# escape=`\nFROM a\n") == "\\"


def test_sources_keep_heredoc_looking_names_without_a_heredoc():
    info = _analyze('FROM a\nCOPY ["<<EOF", "/x"]\n')
    assert info.sources == [Source("<<EOF", 2, "COPY")]
    assert info.heredocs == []


@pytest.mark.parametrize(
    ("word", "pattern"),
    [
        ("app", "app"),
        ("./app/", "app"),
        ("/app", "app"),
        ("//app//x/./y", "app/x/y"),
        ("../x", "x"),
        ("a/../../b", "b"),
        ("..", "."),
        (".", "."),
        ("./", "."),
        ('""', "."),
        ("src/*.py", "src/*.py"),
    ],
)
def test_source_paths_are_cleaned_and_clamped_to_the_context(word, pattern):
    assert _analyze(f"FROM a\nCOPY {word} /dst/\n").sources == [Source(pattern, 2, "COPY")]


def test_copy_from_a_stage_named_in_a_variable_reads_no_context():
    text = "ARG S=build\nFROM a AS build\nFROM b\nARG S\nCOPY --from=$S /x /y\n"
    info = _analyze(text)
    assert info.sources == []
    assert [u.ref.familiar for u in info.uses] == ["a:latest", "b:latest"]


def test_many_stages_of_one_name_stay_fast():
    text = "FROM alpine:3 AS s\n" + "FROM s AS s\nCOPY --from=s /a /b\nCOPY f /f\n" * 3000
    started = time.perf_counter()
    info = _analyze(text)
    assert time.perf_counter() - started < 5
    assert len(info.sources) == 3000


# --- select: which context files the sources name ------------------------------------------

CONTEXT = [
    "Dockerfile",
    "app.py",
    "README.md",
    ".hidden",
    "src/main.py",
    "src/util.py",
    "src/data.json",
    "src/pkg/mod.py",
    "src/pkg/deep/x.py",
    "lib/a1.txt",
    "lib/b2.txt",
    "lib/c3.txt",
    "lib/z.txt",
    "docs/a b.md",
    "weird/a*b",
    "weird/a\\*b",
    "weird/]",
    "weird/!",
    "srcx/other.py",
]


@pytest.mark.parametrize(
    ("patterns", "read", "unmatched"),
    [
        ([], [], []),
        (["."], CONTEXT, []),
        (["app.py"], ["app.py"], []),
        (["src"], ["src/main.py", "src/util.py", "src/data.json", "src/pkg/mod.py", "src/pkg/deep/x.py"], []),
        (["src/pkg"], ["src/pkg/mod.py", "src/pkg/deep/x.py"], []),
        (["*.py"], ["app.py"], []),
        (["src/*.py"], ["src/main.py", "src/util.py"], []),
        (["*/*.py"], ["src/main.py", "src/util.py", "srcx/other.py"], []),
        (["src/*"], ["src/main.py", "src/util.py", "src/data.json", "src/pkg/mod.py", "src/pkg/deep/x.py"], []),
        (["s?c"], ["src/main.py", "src/util.py", "src/data.json", "src/pkg/mod.py", "src/pkg/deep/x.py"], []),
        (["*"], CONTEXT, []),
        (["lib/[ab]?.txt"], ["lib/a1.txt", "lib/b2.txt"], []),
        (["lib/[a-b]*"], ["lib/a1.txt", "lib/b2.txt"], []),
        (["lib/[^a-b]*.txt"], ["lib/c3.txt", "lib/z.txt"], []),
        (["lib/[\\]a]1.txt"], ["lib/a1.txt"], []),
        (["weird/[]]"], [], ["weird/[]]"]),  # Go: `[]` opens no class; a bad pattern matches nothing
        (["lib/[a-]1.txt"], [], ["lib/[a-]1.txt"]),
        (["weird/a\\*b"], ["weird/a\\*b"], []),  # no wildcard: a plain name, backslash and all
        (["weird/a\\**"], ["weird/a*b"], []),  # a wildcard: `\*` is a literal star
        (["weird/[!]"], ["weird/!"], []),  # Go negates with `^` only
        (["docs/a b.md"], ["docs/a b.md"], []),
        (["src/**/*.py"], ["src/main.py", "src/util.py", "src/pkg/mod.py", "src/pkg/deep/x.py"], []),
        (["nothing", "src/*.go", "app.py"], ["app.py"], ["nothing", "src/*.go"]),
        (["app.py/x"], [], ["app.py/x"]),
        (["Src"], [], ["Src"]),
    ],
)
def test_select_matches_like_buildkit_copy(patterns, read, unmatched):
    sources = [Source(p, i + 1, "COPY") for i, p in enumerate(patterns)]
    got_read, got_unmatched = select(CONTEXT, sources)
    assert got_read == set(read)
    assert [s.pattern for s in got_unmatched] == unmatched


def test_select_dot_matches_an_empty_context():
    assert select([], [Source(".", 1, "COPY")]) == (set(), [])


def test_select_reports_each_unmatched_source_once_per_instruction():
    sources = [Source("gone", 2, "COPY"), Source("gone", 5, "ADD"), Source("app.py", 5, "ADD")]
    assert select(CONTEXT, sources)[1] == sources[:2]


def test_select_backtracking_stays_bounded():
    paths = ["a" * 250 + "b", "/".join(["a"] * 60) + "/c"] * 50
    sources = [Source("*a*a*a*a*a*a*a*a*a*a*a*a*c", 1, "COPY"), Source("**/a/**/a/**/a/**/a/**/a/**/b", 2, "COPY")]
    assert _timed(select, paths, sources) < 5  # a bound against catastrophic backtracking, not a benchmark
    assert select(paths, sources) == (set(), sources)


def _timed(fn, *args):
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started
