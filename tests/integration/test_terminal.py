"""apply on a terminal, through a pseudo-terminal against the real engine: a live footer
([done/total], elapsed, what runs) over the finished lines, colors only when allowed."""

from __future__ import annotations

import os
import re
import sys

from tests.conftest import on_terminal

SGR_COLOR = re.compile(r"\x1b\[[0-9;]*(3[0-7]|9[0-7])m")  # a foreground color, not cursor movement


def _apply_on_terminal(engine, stack, cache, **env: str) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("AI_INFRA_NETWORK_ENV", "INTERNAL_REGISTRY", "NO_COLOR")}
    base.update(DOCKER_HOST=engine.docker_host, AI_INFRA_NETWORK_ENV="external", RECONCILE_CACHE_DIR=str(cache))
    base.update(TERM="xterm", **env)
    return on_terminal([sys.executable, "-m", "reconciler", "apply", "--auto-approve", "-s", str(stack)], base)


STACK = {"app": "FROM busybox:1.36\nRUN sleep 1\n", "web": "FROM nginx:stable\n"}


def test_a_terminal_gets_the_live_footer_and_colors(daemon, make_stack, tmp_path):
    stack = make_stack(STACK, toml='build_network = "none"\n')
    code, screen = _apply_on_terminal(daemon, stack, tmp_path / "cache")
    assert code == 0, screen
    assert re.search(r"\[\d+/6\] \d+s", screen), screen  # the footer: done/total and elapsed
    assert "build[app]" in screen and "Apply complete!" in screen
    assert SGR_COLOR.search(screen)  # ✓ lines and the plan in color


def test_no_color_on_a_terminal_means_no_color_sequences(daemon, make_stack, tmp_path):
    stack = make_stack(STACK, toml='build_network = "none"\n')
    code, screen = _apply_on_terminal(daemon, stack, tmp_path / "cache", NO_COLOR="1")
    assert code == 0, screen
    assert not SGR_COLOR.search(screen), [m.group() for m in SGR_COLOR.finditer(screen)][:5]
    assert "Apply complete!" in screen
