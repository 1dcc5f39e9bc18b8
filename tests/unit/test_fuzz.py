"""Property: whatever the stack folder holds, reading it ends in a plan's desired state or
in one InputError line, never another exception, within a time and memory bound.

Hypothesis mutates a small valid stack (stack file, Dockerfiles, compose file,
.dockerignore, template, env file) with the characters parsers trip on; every example
runs the whole pure part of the pipeline (``pipeline.prepare``: templates, services,
compose, Dockerfiles, base images, build contexts) with no daemon.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import pipeline
from reconciler.errors import InputError

EXAMPLES = 1000
SECONDS_PER_EXAMPLE = 10  # a bound, not a benchmark: a bomb takes minutes or never ends
MAX_RSS_MB = 1024

SEED = {
    "stack.toml": (
        '[stack]\nname = "f"\ntag = "v1"\nservices = "src/*/Dockerfile"\ncompose = ["compose.yml"]\n'
        'env_file = [".env", ".env.example"]\nenv_build_args = true\nbuild_args = { B = "1" }\n\n'
        '[services.app]\ntarget = "run"\n\n[[templates]]\nsrc = "t/*.tpl"\ndest = "out/{name}"\n'
        'vars = { who = "x" }\n'
    ),
    ".env.example": "VERSION=7\nNAME=app\n",
    "src/app/Dockerfile": (
        "ARG VERSION=6\nFROM redis:${VERSION} AS build\nCOPY *.txt /x/\nRUN --mount=type=bind,source=a.txt,target=/a true\n"
        "FROM build AS run\nARG B\nCOPY --from=build /x /y\n"
    ),
    "src/app/a.txt": "a\n",
    "src/app/.dockerignore": "*.log\n!keep.log\n",
    "src/web/Dockerfile": 'FROM "nginx:1" AS base\nRUN <<EOF\necho hi\nEOF\nFROM base\n',
    "compose.yml": (
        "x: &d\n  restart: always\nservices:\n  db:\n    <<: *d\n    image: postgres:${PG:-16}\n"
        "  app:\n    build: { context: ./src/app, args: [A=1] }\n    profiles: [p]\n"
    ),
    "t/conf.tpl": "{{ NAME }} {{ vars.who }} {% for i in range(3) %}{{ i }}{% endfor %}\n",
}
ALPHABET = st.sampled_from(
    [*"${}[]()\\\"'`:=*?!#<>|/.,-_ \n\t\r", "\x00", "\x1b", "é", "€", "<<EOF", "${A:-", "{{", "{%", "&a", "*a"]
)


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    """A folder for the examples, and a cache dir of their own (prepare keeps a hash cache)."""
    root = tmp_path_factory.mktemp("fuzz")
    saved = os.environ.get("RECONCILE_CACHE_DIR")
    os.environ["RECONCILE_CACHE_DIR"] = str(root / "cache")
    yield root
    if saved is None:
        del os.environ["RECONCILE_CACHE_DIR"]
    else:
        os.environ["RECONCILE_CACHE_DIR"] = saved


def _mutate(data: st.DataObject) -> dict[str, str]:
    files = dict(SEED)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        name = data.draw(st.sampled_from(sorted(files)), label="file")
        text = files[name]
        at = data.draw(st.integers(0, len(text)), label="at")
        kind = data.draw(st.sampled_from(["insert", "delete", "replace", "random"]), label="kind")
        piece = "".join(data.draw(st.lists(ALPHABET | st.characters(), max_size=12), label="piece"))
        if kind == "insert":
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 20), label="n") :]
        elif kind == "replace":
            text = text[:at] + piece + text[at + len(piece) :]
        else:
            text = piece
        files[name] = text
    return files


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8", "surrogatepass"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # timed below, with a bound for hostile input rather than a benchmark
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples every run: CI failures reproduce
)
@given(data=st.data())
def test_any_stack_folder_is_read_or_refused_in_one_line(data, fuzz_root):
    root = Path(tempfile.mkdtemp(dir=fuzz_root))
    try:
        _write(root, _mutate(data))
        started = time.monotonic()
        try:
            pipeline.prepare(str(root), network="external")
        except InputError as exc:
            message = str(exc)
            assert message and "\n" not in message and "\r" not in message, repr(message)
            assert len(message) <= 2000
        assert time.monotonic() - started < SECONDS_PER_EXAMPLE
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_fuzzing_stayed_within_its_memory_bound():
    # ru_maxrss is the peak of this whole test process (KiB on Linux): a bomb in any example shows here.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 < MAX_RSS_MB
