"""Every `reconcile …` command shown in README.md and docs/*.md, run as written (in a copy
of the example stack, in document order) against the private engine: each exits as the
docs say (0; 0 or 2 for `--detailed-exitcode`).  A doc that shows a command that no longer
works fails here."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests import seeding
from tests.conftest import internal_env, on_terminal

ROOT = Path(__file__).resolve().parents[2]
NEEDS_ELSEWHERE = {"ssh://": "an ssh server"}  # shown for remote hosts: none runs here


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for every line in a fenced block that runs reconcile."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        fenced = False
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                fenced = not fenced
                continue
            text = line.strip().removeprefix("$ ").split("#", 1)[0].strip()
            if fenced and re.match(r"reconcile (plan|apply|show|images|env|tag-localhost|schema)\b", text):
                if "──►" in text:  # the pipeline diagram, not a command
                    continue
                found.append((doc.name, text.replace("[IMAGE...]", "").strip()))
    return found


def test_every_documented_command_exits_as_documented(cli, daemon, tmp_path):
    work = tmp_path / "docs"
    shutil.copytree(ROOT / "desired", work / "desired")
    seeding.seed_stack(daemon, str(work / "desired"))
    env = {**os.environ, **internal_env(daemon)}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        DOCKER_HOST=daemon.docker_host,
        RECONCILE_CACHE_DIR=str(tmp_path / "cache"),
        RECONCILE_STACK="desired",
        NO_COLOR="1",
    )
    ran, skipped = [], []
    for doc, command in documented_commands():
        if any(marker in command for marker in NEEDS_ELSEWHERE):
            skipped.append(command)
            continue
        asks = command.startswith("reconcile apply") and "--auto-approve" not in command and ".plan" not in command
        if asks:
            code, output = on_terminal(["bash", "-c", command], env, answer="yes", cwd=work)
        else:
            proc = subprocess.run(shlex.split(command), cwd=work, env=env, capture_output=True, text=True, timeout=300)
            code, output = proc.returncode, proc.stdout + proc.stderr
        allowed = {0, 2} if "--detailed-exitcode" in command else {0}
        assert code in allowed, f"{doc}: `{command}` exited {code}:\n{output[-3000:]}"
        ran.append(command)
    assert len(ran) >= 12, ran
    assert skipped == ["reconcile plan --host ssh://deploy@node-07 --stack desired"]
