"""Build-context walking: the file set is docker-py's, however fast we get it."""

import os
import random
from pathlib import Path

import pytest
from docker.utils.build import PatternMatcher, exclude_paths

from reconciler.context import (
    DOCKERFILE_IN_TAR,
    HashCache,
    context_paths,
    context_record,
    dockerfile_in_context,
    entry,
    ignore_matcher,
    ignore_patterns,
)

# Each one something the two walks could read differently.
PATTERN_SETS = [
    [],
    ["*"],
    ["*", "!Dockerfile"],
    ["!docs/keep.md"],  # negations alone exclude nothing
    ["**"],
    ["**/*.log"],
    ["*.LOG"],  # fnmatch lower-cases both sides
    ["docs"],
    ["docs", "!docs/keep.md"],  # excluded folder, child put back
    ["docs/", "!docs/keep.md"],  # trailing slash
    ["/docs", "!/docs/keep.md"],  # leading slash
    ["./docs", "docs/../src"],  # `.` and `..` cleaned away
    ["../sub", "."],
    ["/"],
    ["docs/**", "!docs/**/*.md"],
    ["**/node_modules"],
    ["node_modules/**", "!node_modules/keep"],
    ["*", "!**/*.md"],
    ["!**/*.md", "*"],  # a negation before the exclusion decides nothing
    ["*", "!src"],
    ["src/*", "!src/b"],
    ["s*", "!sub/keep"],  # `sub` is descended (a negation starts with its name), `src` is not
    ["su", "!sub/keep"],
    ["sub", "!**/keep"],  # docker-py never looks inside `sub`, whatever `**` could match there
    ["Dockerfile", ".dockerignore"],  # both are always sent
    ["Docker*"],
    ["Docker"],  # a folder whose name starts the Dockerfile's
    [".d*"],  # and one that starts .dockerignore's
    ["a?c", "[a-c]*", "[!a]*.txt"],
    ["[^a]*"],
    ["link*"],
    ["link-to-dir/inner"],
    ["*/"],
    ["**/", "!**/*.py"],
    ["*/*", "!*/*/"],
    ["deep/**/x", "!deep/a/b"],
    ["odd"],  # `$` also matches before a final newline: "odd\n" goes too
    ["é*"],
    ["sub/keep/*", "!sub/keep/*.md", "sub/keep/b.md"],
    ["docs   ", "  *.log"],  # spaces trimmed
]

TREE_FILES = [
    "app.py",
    "README.md",
    "readme.txt",
    "debug.log",
    "TRACE.LOG",
    "abc",
    "a.txt",
    "b.txt",
    "Dockerfile",
    "Dockerfile.api",
    ".dockerignore",
    ".env",
    "docs/keep.md",
    "docs/notes.txt",
    "docs/deeper/keep.md",
    "Docs/Other.MD",
    "src/a/app.py",
    "src/b/lib.py",
    "src/b/notes.md",
    "sub/keep/a.md",
    "sub/keep/b.md",
    "sub/keep/c.py",
    "sub/x.log",
    "sub/Dockerfile.api",
    "node_modules/pkg/index.js",
    "node_modules/keep",
    "Docker/inside.txt",
    ".d/inside.txt",
    "deep/a/b/c/x",
    "deep/a/x",
    "deep/x",
    "odd\n",
    "Éclair.txt",
    "a b/[x] ?.txt",
]


def _tree(root: Path) -> Path:
    context = root / "ctx"
    for rel in TREE_FILES:
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text(rel)
    (context / "empty").mkdir()
    (context / os.fsdecode(b"\xff-not-utf8")).write_text("x")
    (context / "link-to-file").symlink_to("app.py")
    (context / "link-to-dir").symlink_to("src")
    (context / "dangling").symlink_to("nowhere")
    (root / "outside").mkdir()
    (context / "outside-link").symlink_to(root / "outside")
    os.mkfifo(context / "fifo")
    os.chmod(context / "app.py", 0o755)
    return context


def _docker_py(context: Path, dockerfile: Path) -> list[str]:
    """What the previous version listed: docker-py's own walk."""
    return sorted(exclude_paths(str(context), ignore_patterns(context), dockerfile_in_context(context, dockerfile)))


def _agrees_with_docker_py(context: Path, dockerfile: Path, cache: HashCache) -> None:
    expected = _docker_py(context, dockerfile)
    assert context_paths(context, dockerfile) == expected
    # The record: the previous version's entry() over docker-py's list, hashes and modes alike.
    before = {rel: found for rel in expected if (found := entry(context / rel, cache)) is not None}
    assert context_record(context, dockerfile, cache) == before
    # The single-path check planned files go through: PatternMatcher.matches, excluded folders or not.
    patterns = (*ignore_patterns(context), f"!{dockerfile_in_context(context, dockerfile)}")
    theirs = PatternMatcher(list(patterns))
    ours = ignore_matcher(patterns)
    for rel in [*_docker_py_everything(context), "docs/planned.md", "new/dir/file", "odd"]:
        assert ours.matches(rel) == theirs.matches(rel), rel


def _docker_py_everything(context: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), context) for d, ds, fs in os.walk(context) for n in ds + fs)


@pytest.mark.parametrize("patterns", PATTERN_SETS, ids=[repr(p) for p in PATTERN_SETS])
@pytest.mark.parametrize("dockerfile", ["Dockerfile", "sub/Dockerfile.api", "../Dockerfile.out"])
def test_the_context_walk_lists_what_docker_py_lists(tmp_path, patterns, dockerfile):
    context = _tree(tmp_path)
    (context / ".dockerignore").write_text("\n".join(["# a comment", *patterns, ""]))
    (tmp_path / "Dockerfile.out").write_text("FROM x\n")
    _agrees_with_docker_py(context, (context / dockerfile), HashCache(tmp_path / "h.json"))


def test_the_context_walk_lists_what_docker_py_lists_for_random_patterns(tmp_path):
    context = _tree(tmp_path)
    (tmp_path / "Dockerfile.out").write_text("FROM x\n")
    cache = HashCache(tmp_path / "h.json")
    pieces = ["*", "**", "src", "sub", "keep", "docs", "deep", "a", "b", "*.md", "*.LOG", "?", "[a-d]*", "Docker*"]
    pieces += [".d*", "link*", "..", ".", "node_modules", "x", "é*"]
    chosen = random.Random(20240611)  # fixed: a failure names a case that can be run again
    for _ in range(150):
        lines = []
        for _ in range(chosen.randint(1, 5)):
            body = "/".join(chosen.choice(pieces) for _ in range(chosen.randint(1, 3)))
            lines.append(chosen.choice(["", "", "!", "/", "!/", "./"]) + body + chosen.choice(["", "", "/"]))
        (context / ".dockerignore").write_text("\n".join(lines) + "\n")
        dockerfile = context / chosen.choice(["Dockerfile", "sub/Dockerfile.api", "../Dockerfile.out"])
        try:
            _agrees_with_docker_py(context, dockerfile, cache)
        except AssertionError as failed:
            raise AssertionError(f".dockerignore {lines!r}, Dockerfile {dockerfile.name}: {failed}") from None


def test_a_dockerfile_outside_the_context_is_matched_under_its_tar_name(tmp_path):
    context = _tree(tmp_path)
    (context / ".dockerignore").write_text("*\n")
    (tmp_path / "Dockerfile.out").write_text("FROM x\n")
    (context / DOCKERFILE_IN_TAR).write_text("a file of that name is put back, as docker-py does")
    assert context_paths(context, tmp_path / "Dockerfile.out") == [".dockerignore", DOCKERFILE_IN_TAR]


def test_the_same_patterns_reuse_one_compiled_matcher(tmp_path):
    unique = f"only-here-{os.getpid()}-{id(tmp_path)}/*.tmp"  # first seen by this test, whatever ran before
    first = ignore_matcher(tuple([unique, "!keep.tmp", "!Dockerfile"]))
    assert ignore_matcher(tuple([unique, "!keep.tmp", "!Dockerfile"])) is first

    before = ignore_matcher.cache_info()
    for name in ["api", "web", "worker"]:  # three services sharing one .dockerignore
        context = tmp_path / name
        context.mkdir()
        (context / "Dockerfile").write_text("FROM x\n")
        (context / ".dockerignore").write_text(f"{unique}\n!keep.tmp\n")
        context_record(context, context / "Dockerfile", HashCache(tmp_path / "h.json"))
    after = ignore_matcher.cache_info()
    assert (after.misses, after.hits - before.hits) == (before.misses, 3)


def test_without_a_dockerignore_a_path_costs_no_pattern_match():
    # The patterns every context has (the Dockerfile's and .dockerignore's own) only ever put paths back.
    matcher = ignore_matcher(("!Dockerfile",))
    assert matcher.in_folder([], 1) == ([], False)
    assert matcher.in_folder(["src", "deep"], 3) == ([], False)


def test_a_pattern_that_matches_a_folder_decides_for_its_files_without_a_match_each():
    assert ignore_matcher(("docs", "!Dockerfile")).in_folder(["docs", "deeper"], 3) == ([], True)


@pytest.mark.parametrize(
    ("pattern", "tried"),
    [("*.log", False), ("*/*/*.log", True), ("**/*.log", True), ("[!a]*", True)],
)
def test_a_pattern_is_tried_only_where_it_can_match(pattern, tried):
    # `*` and `?` stop at '/': "*.log" cannot match anything two folders down; `**` and [...] can.
    to_try, otherwise = ignore_matcher((pattern,)).in_folder(["a", "a"], 3)
    assert (len(to_try) == 1, otherwise) == (tried, False)


def test_a_context_reached_through_a_symlink_is_read(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "Dockerfile").write_text("FROM x\n")
    (real / "app.py").write_text("x")
    (tmp_path / "ctx").symlink_to(real)
    record = context_record(tmp_path / "ctx", tmp_path / "ctx/Dockerfile", HashCache(tmp_path / "h.json"))
    assert sorted(record) == ["Dockerfile", "app.py"]
