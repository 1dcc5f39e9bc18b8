"""The command line as a new user meets it: help without arguments, --version, colors that
respect NO_COLOR / TERM=dumb / --no-color, debug logging, choices and metavars in help."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import __version__, output
from reconciler.network import NetworkDecision, decide
from reconciler.plan import Plan, PullAction
from reconciler.refs import parse
from reconciler.stack import NetworkSection

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
    )


def test_no_arguments_prints_help_and_exits_0():
    result = _run()
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("Usage: reconcile [OPTIONS] COMMAND [ARGS]...")
    assert "rendered files and service builds" in result.stdout


def test_version():
    result = _run("--version")
    assert (result.returncode, result.stdout) == (0, f"reconcile {__version__}\n")


def test_help_shows_choices_and_metavars_as_words():
    text = _run("plan", "--help").stdout
    assert "--network [internal|external]" in text or "--network <internal|external>" in text
    assert "--stack STACK" in text and "--target TARGET" in text and "--replace SERVICE" in text
    assert "<str>" not in text and "list[str]" not in text


def test_a_mistyped_option_suggests_the_closest_one():
    result = _run("plan", "--stak", "x")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "No such option: --stak" in line and "--stack" in line


def test_debug_logging_goes_to_stderr(tmp_path):
    (tmp_path / "stack.toml").write_text('[stack]\nname = "s"\n')
    result = _run("env", "--network", "external", "-s", str(tmp_path), env={"RECONCILE_LOG": "debug"})
    assert result.returncode == 0
    quiet = _run("env", "--network", "external", "-s", str(tmp_path))
    assert quiet.stderr == ""
    # the same through --debug
    assert _run("--debug", "env", "--network", "external", "-s", str(tmp_path)).returncode == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _plan_text(monkeypatch, **env: str) -> str:
    for key in ("NO_COLOR", "TERM"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    network = NetworkDecision(
        mode="external", source="t", registry="r/p", registry_source="t", alias_prefix="localhost"
    )
    terminal = _Terminal()
    pull = PullAction(address="pull[redis:7]", reason="missing", detail="not present", image=parse("redis:7"))
    output.render_plan(Plan(network=network, actions=[pull]), stream=terminal)
    return terminal.getvalue()


def test_colors_on_a_terminal_and_none_with_no_color_or_a_dumb_terminal(monkeypatch):
    assert "\x1b[" in _plan_text(monkeypatch, TERM="xterm")
    assert "\x1b[" not in _plan_text(monkeypatch, NO_COLOR="1", TERM="xterm")
    assert "\x1b[" not in _plan_text(monkeypatch, TERM="dumb")


@pytest.mark.parametrize(
    "section, env, source",
    [
        (NetworkSection(), {}, "built-in default"),
        (NetworkSection(internal_registry="h.example/p"), {}, "stack network.internal_registry"),
        (NetworkSection(), {"INTERNAL_REGISTRY": "h.example/q"}, "INTERNAL_REGISTRY"),
    ],
)
def test_env_names_where_the_registry_came_from(section, env, source):
    decision = decide(section, cli_mode="external", environ=env)
    assert decision.registry_source == source


def test_probe_urls_take_ports_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(tmp_path))
    section = NetworkSection(
        external_probes=["http://127.0.0.1:${HUB_PORT:-1}/v2/"], internal_probes=["http://127.0.0.1:${NOPE:-9}/v2/"]
    )
    decision = decide(section, environ={"HUB_PORT": "9"}, use_cache=False)  # port 9: nothing answers, at once
    assert [p.url for p in decision.probes] == ["http://127.0.0.1:9/v2/", "http://127.0.0.1:9/v2/"]


def test_a_pull_and_its_tags_read_as_one_block_and_compact_is_one_line_each():
    from reconciler.actual import observe
    from reconciler.desired import BaseImage, desired_state
    from reconciler.plan import plan

    network = NetworkDecision(
        mode="internal", source="t", registry="h.example/p", registry_source="t", alias_prefix="localhost"
    )
    desired = desired_state([BaseImage(parse(f"img{n}:1"), ()) for n in range(200)], network)
    the_plan = plan(desired, observe([]), network)
    assert len(the_plan.actions) == 600  # 200 pulls, 400 tags
    full, compact = io.StringIO(), io.StringIO()
    output.render_plan(the_plan, stream=full)
    output.render_plan(the_plan, stream=compact, compact=True)
    lines = full.getvalue().splitlines()
    block = lines[lines.index("  + pull h.example/p/img0:1") :][:4]
    assert block == [
        "  + pull h.example/p/img0:1",
        "      missing: not present locally; provides img0:1",
        "      + tag img0:1",
        "      + tag localhost/img0:1",
    ]
    assert len(lines) < 900  # was 1,206 lines for 600 actions
    assert len(compact.getvalue().splitlines()) < 620 and "missing:" not in compact.getvalue()
    assert "Plan: 200 to pull, 400 to tag." in full.getvalue()


def test_the_apply_summary_counts_what_was_already_right():
    from reconciler.apply import ApplyResult

    buffer = io.StringIO()
    output.render_apply(ApplyResult(), buffer, already=48)
    assert "0 unchanged, 0 total; ok=48 (48 already right before apply)." in buffer.getvalue()


def test_apply_progress_without_a_terminal_is_one_line_per_start_and_finish():
    from reconciler.apply import Outcome
    from reconciler.plan import PullAction

    pipe = io.StringIO()
    reporter = output.ProgressReporter(pipe, total=1)
    pull = PullAction(address="pull[redis:7]", reason="missing", detail="", image=parse("redis:7"))
    reporter.started(pull)
    reporter.progress(pull, {"status": "Pull complete", "id": "abc"})
    reporter.progress(pull, {"status": "Downloading", "id": "abc", "progress": "[==>  ]"})
    reporter.progress(pull, {"status": "attempt 1 failed, retrying", "error": "EOF"})
    reporter.finished(Outcome(pull, "succeeded", "pulled redis:7 as sha256:aaaa"))
    reporter.close()
    assert pipe.getvalue().splitlines() == [
        "pull[redis:7]: pulling…",
        "pull[redis:7]: attempt 1 failed, retrying: EOF",
        "pull[redis:7]: ✓ pulled redis:7 as sha256:aaaa",
    ]
