"""The metrics file is valid text exposition, complete, and replaced atomically."""

from __future__ import annotations

import re
import stat

import pytest

from reconciler.errors import ReconcileError
from reconciler.metrics import render_metrics, write_metrics

SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>.*)\} (?P<value>\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(?:,|$)')
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """A small exposition-format reader: every sample, keyed by name and labels; checks HELP/TYPE come first."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind == "gauge"
            typed.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.fullmatch(line)
        assert match, line
        assert match["name"] in typed, f"{match['name']} sampled before its TYPE line"
        labels, rest = {}, match["labels"]
        while rest:
            label = LABEL.match(rest)
            assert label, rest
            labels[label[1]] = re.sub(r'\\[\\"n]', lambda m: UNESCAPE[m[0]], label[2])
            rest = rest[label.end() :]
        samples[(match["name"], frozenset(labels.items()))] = float(match["value"])
    return samples


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


def write(path, **overrides):
    args = dict(
        drift={"pull": 2, "build": 1},
        success=True,
        duration_seconds=1.25,
        network_mode="internal",
        stack="prod",
        timestamp=1_800_000_000.5,
    )
    args.update(overrides)
    write_metrics(path, **args)
    return parse(path.read_text())


def test_every_metric_with_its_value(tmp_path):
    samples = write(tmp_path / "reconcile.prom")
    assert samples == {
        key("reconcile_drift_actions", stack="prod", kind="pull"): 2,
        key("reconcile_drift_actions", stack="prod", kind="tag"): 0,
        key("reconcile_drift_actions", stack="prod", kind="build"): 1,
        key("reconcile_drift_actions", stack="prod", kind="write"): 0,
        key("reconcile_drift_total", stack="prod"): 3,
        key("reconcile_last_check_timestamp_seconds", stack="prod"): 1_800_000_000.5,
        key("reconcile_check_duration_seconds", stack="prod"): 1.25,
        key("reconcile_check_success", stack="prod"): 1,
        key("reconcile_network_mode_info", stack="prod", mode="internal"): 1,
    }


def test_every_family_has_help_and_type(tmp_path):
    text = render_metrics(drift={}, success=True, duration_seconds=0, network_mode=None, stack="s", timestamp=0)
    names = {line.split("{")[0] for line in text.splitlines() if not line.startswith("#")}
    for name in names:
        assert f"# HELP {name} " in text and f"# TYPE {name} gauge\n" in text


def test_no_drift_is_zero_for_every_kind(tmp_path):
    samples = write(tmp_path / "m.prom", drift={})
    for kind in ("pull", "tag", "build", "write"):
        assert samples[key("reconcile_drift_actions", stack="prod", kind=kind)] == 0
    assert samples[key("reconcile_drift_total", stack="prod")] == 0


def test_failed_check_reports_failure_not_zero_drift(tmp_path):
    samples = write(tmp_path / "m.prom", drift={}, success=False, network_mode=None)
    assert samples[key("reconcile_check_success", stack="prod")] == 0
    assert samples[key("reconcile_network_mode_info", stack="prod", mode="unknown")] == 1
    assert not any(name.startswith("reconcile_drift") for name, _ in samples)


def test_label_values_are_escaped(tmp_path):
    stack = 'a"b\\c\nd'
    text = render_metrics(drift={}, success=True, duration_seconds=0, network_mode='x"y', stack=stack, timestamp=0)
    assert 'stack="a\\"b\\\\c\\nd"' in text
    plain = render_metrics(drift={}, success=True, duration_seconds=0, network_mode="x", stack="s", timestamp=0)
    assert len(text.splitlines()) == len(plain.splitlines())  # the newline did not split a sample
    samples = parse(text)
    assert samples[key("reconcile_network_mode_info", stack=stack, mode='x"y')] == 1


def test_replaces_the_old_file_atomically_and_readable(tmp_path):
    path = tmp_path / "reconcile.prom"
    path.write_text("old\n")
    path.chmod(0o600)
    samples = write(path)
    assert key("reconcile_drift_total", stack="prod") in samples
    assert [p.name for p in tmp_path.iterdir()] == ["reconcile.prom"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_timestamp_defaults_to_now(tmp_path):
    import time

    before = time.time()
    samples = write(tmp_path / "m.prom", timestamp=None)
    assert before <= samples[key("reconcile_last_check_timestamp_seconds", stack="prod")] <= time.time()


def test_unwritable_directory_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "reconcile.prom"
    with pytest.raises(ReconcileError) as caught:
        write(target)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{target}: cannot write the metrics file: ")
    assert "--metrics-file" in message
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
