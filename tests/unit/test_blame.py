"""Errors name the place at fault (the stack key that set a value, not the Dockerfile that
used it), and never echo hostile text raw: control characters are escaped, long values cut."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler import pipeline
from reconciler.errors import InputError, printable

HEAD = '[stack]\nname = "t"\nservices = "src/*/Dockerfile"\n'


def _error(root: Path, toml: str, dockerfile: str) -> str:
    (root / "src/app").mkdir(parents=True, exist_ok=True)
    (root / "src/app/Dockerfile").write_text(textwrap.dedent(dockerfile).lstrip())
    (root / "stack.toml").write_text(HEAD + textwrap.dedent(toml))
    with pytest.raises(InputError) as info:
        pipeline.discover(str(root), network="external")
    return str(info.value)


def test_an_unknown_target_names_the_stack_key(tmp_path):
    message = _error(tmp_path, '\n[services.app]\ntarget = "0"\n', "FROM redis:7\n")
    assert message.startswith("stack.toml:6: services.app.target: build target '0' is not a stage")
    assert "(src/app/Dockerfile)" in message


def test_a_build_arg_value_that_breaks_a_from_line_names_the_stack_key(tmp_path):
    message = _error(tmp_path, '\n[services.app]\nbuild_args = { V = "${V}" }\n', "ARG V=1\nFROM redis:${V}\n")
    assert message.startswith("stack.toml:6: services.app.build_args: build arg V = '${V}' makes invalid reference")
    assert "(src/app/Dockerfile:2)" in message


def test_a_stack_wide_build_arg_is_blamed_on_stack_build_args(tmp_path):
    message = _error(tmp_path, 'build_args = { V = "Bad Tag" }\n', "ARG V=1\nFROM redis:${V}\n")
    assert message.startswith("stack.toml:4: stack.build_args: build arg V = 'Bad Tag'")


def test_a_bad_from_line_of_the_dockerfile_itself_still_names_the_dockerfile(tmp_path):
    message = _error(tmp_path, "", "FROM Redis:7\n")
    assert message.startswith("src/app/Dockerfile:1:")


def test_control_characters_in_an_error_are_escaped_and_long_values_cut():
    message = str(InputError("tag 'v1\x1b[2J\rok\n' is bad", where="stack.toml:3", hint="fix"))
    assert message == "stack.toml:3: tag 'v1\\x1b[2J\\rok\\n' is bad; fix"
    assert len(printable("x" * 10_000, 2000)) == 2000
    assert printable("plain text") == "plain text"


def test_a_dockerignore_pattern_python_warns_about_prints_no_warning(tmp_path):
    # A fresh interpreter, as the command runs: Python shows FutureWarning by default.
    (tmp_path / "src/app").mkdir(parents=True)
    (tmp_path / "src/app/.dockerignore").write_text("[[:alpha:]]\n")
    (tmp_path / "src/app/Dockerfile").write_text("FROM redis:7\n")
    (tmp_path / "stack.toml").write_text(HEAD)
    script = f"from reconciler import pipeline; pipeline.prepare({str(tmp_path)!r}, network='external')"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent.parent,
        env={"PATH": "/usr/bin:/bin", "RECONCILE_CACHE_DIR": str(tmp_path / "cache")},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_plan_never_prints_control_characters_from_the_stack(tmp_path):
    import io

    from reconciler import output
    from reconciler.actual import ObservedImages
    from reconciler.plan import plan

    (tmp_path / "src/app").mkdir(parents=True)
    (tmp_path / "src/app/Dockerfile").write_text("FROM redis:7\n")
    (tmp_path / "evil.txt").write_text("\x1b[2J\x1b[1;1Hall good\rforged line\n")
    (tmp_path / "stack.toml").write_text(HEAD + '\n[[files]]\nsrc = "evil.txt"\ndest = "src/app/evil.txt"\n')
    run = pipeline.prepare(str(tmp_path), network="external")
    buffer = io.StringIO()
    output.render_plan(plan(run.desired, ObservedImages(), run.network, {}), stream=buffer)
    text = buffer.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert "\\x1b[2J\\x1b[1;1Hall good" in text
