"""The drift check from docs/drift.md, run as cron runs it (``env -i``, cron's PATH, no
AI_INFRA_NETWORK_ENV nor INTERNAL_REGISTRY): after a deploy that chose the internal network
and a registry by environment, the check decides as the deploy did and finds no drift."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import internal_env

DOCS = Path(__file__).resolve().parents[2] / "docs" / "drift.md"


def _cron_line() -> str:
    """The command of the crontab line in the docs, verbatim (after the schedule and user)."""
    line = next(line for line in DOCS.read_text().splitlines() if line.startswith("*/15 "))
    return line.split(None, 6)[6]


def test_the_documented_cron_check_sees_what_the_deploy_decided(cli, daemon, make_stack, tmp_path):
    # The fresh probe would say external (the Docker Hub stand-in answers); the deploy said internal.
    stack = make_stack(
        {"app": "FROM redis:7-alpine\n"},
        toml=f'\n[network]\nexternal_probes = ["http://{daemon.hub}/v2/"]\ninternal_probes = []\n',
    )
    deploy = cli("apply", "--auto-approve", "-s", str(stack), env=internal_env(daemon))
    assert deploy.code == 0, deploy.out + deploy.err

    command = _cron_line()
    reconcile = Path(sys.executable).parent / "reconcile"
    metrics, log = tmp_path / "reconcile.prom", tmp_path / "drift.log"
    command = (
        command.replace("/srv/ai-infra", str(stack))
        .replace("/usr/local/bin/reconcile", str(reconcile))
        .replace("/var/lib/node_exporter/textfile/reconcile.prom", str(metrics))
        .replace("/var/log/reconcile-drift.log", str(log))
    )
    cron_env = {
        "PATH": "/usr/bin:/bin",  # cron's
        "DOCKER_HOST": daemon.docker_host,  # what the deploy set, as the docs say to
        "RECONCILE_CACHE_DIR": str(tmp_path / "cache"),  # the deploying user's cache (the cli fixture's)
    }
    result = subprocess.run(["env", "-i", *[f"{k}={v}" for k, v in cron_env.items()], "sh", "-c", command], timeout=120)
    text = log.read_text()
    assert result.returncode == 0, text  # converged: no drift
    assert re.search(r"^Network: internal \(from the last apply \(AI_INFRA_NETWORK_ENV, ", text, re.M), text
    assert "a fresh probe says external; using internal as the last apply did" in text
    assert f"internal registry {daemon.harbor}/aihpc" in text
    assert "reconcile_check_success" in metrics.read_text()


def test_an_explicit_choice_still_wins_over_the_record(cli, daemon, make_stack):
    stack = make_stack({"app": "FROM redis:7-alpine\n"})
    assert cli("apply", "--auto-approve", "-s", str(stack), env=internal_env(daemon)).code == 0
    result = cli("plan", "-s", str(stack), "--network", "external")
    assert "Network: external (from --network)" in result.out
