"""A fleet through Ansible: three private engines as three inventory hosts.

Each host is a daemon of its own (own root, containerd and dockerd; the suite's two
registries are shared, as a fleet shares its Harbor) reached with
``ansible_connection=local``, and ``ansible-playbook`` runs the module in
ansible/library against each host's ``docker_host``.  The images are read back
through docker-py, not through reconcile.  Also here: the docker context and
``--host`` choosing the daemon for the CLI, as for the docker CLI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reconciler
from reconciler.lock import hold
from tests import harness, seeding
from tests.conftest import tags

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "ansible" / "library"
EXAMPLES = REPO / "ansible" / "examples"
HOSTS = ("fleet-a", "fleet-b", "fleet-c")
PLAYBOOK_TIMEOUT = 300  # a hung run fails the test instead of hanging it
# What the stack makes on each host, by its tags.
CONVERGED = {
    "redis:7-alpine",
    "localhost/redis:7-alpine",
    "busybox:1.36",
    "localhost/busybox:1.36",
    "fleet-motd:v1",
}

STACK_TOML = """\
[stack]
name = "fleet"
tag = "v1"
image_prefix = "fleet-"
services = "src/*/Dockerfile"
images = ["redis:7-alpine"]
build_network = "none"

[[templates]]
src = "templates/motd.j2"
dest = "src/motd/motd"
vars = { greeting = "hello" }
"""

PLAYBOOK = """\
- name: Converge every host
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Reconcile
      block:
        - name: Plan or apply
          reconcile:
            stack: "{{ reconcile_stack }}"
            docker_host: "{{ reconcile_docker_host }}"
            network: external
            lock_timeout: "{{ lock_timeout | default(30) }}"
          register: result
      always:
        - name: Keep the result for the test
          ansible.builtin.copy:
            content: "{{ result | to_json }}"
            dest: "{{ results_dir }}/{{ inventory_hostname }}.json"
            mode: "0644"
          check_mode: false
          changed_when: false
"""


@pytest.fixture(scope="module")
def fleet(engine) -> dict[str, harness.Engine]:
    """Three more daemons beside the suite's engine, sharing its registries; stopped after."""
    daemons = {
        name: dataclasses.replace(
            engine, root=f"{engine.root}-{name}", docker_host=f"unix://{engine.root}-{name}/docker.sock"
        )
        for name in HOSTS
    }
    try:
        for daemon in daemons.values():
            harness.ensure_up(daemon)
        yield daemons
    finally:
        for daemon in daemons.values():
            harness.down(daemon)


@pytest.fixture
def hosts(fleet, engine, tmp_path) -> Fleet:
    """Every daemon emptied, each host with its own copy of the stack (a host has its own disk)."""
    for daemon in fleet.values():
        harness.reset_images(daemon)
    stacks = {}
    for name in HOSTS:
        stack = tmp_path / f"stack-{name}"
        (stack / "src" / "motd").mkdir(parents=True)
        (stack / "templates").mkdir()
        (stack / "stack.toml").write_text(STACK_TOML)
        (stack / "src" / "motd" / "Dockerfile").write_text("FROM busybox:1.36\nCOPY motd /etc/motd\n")
        (stack / "templates" / "motd.j2").write_text("{{ greeting }} from {{ stack.name }}\n")
        stacks[name] = stack
    seeding.seed_stack(engine, str(stacks[HOSTS[0]]))  # the hub registry serves both base images
    inventory = tmp_path / "inventory.ini"
    lines = ["[fleet]"]
    for name in HOSTS:
        lines.append(
            f"{name} ansible_connection=local ansible_python_interpreter={sys.executable} "
            f"reconcile_stack={stacks[name]} reconcile_docker_host={fleet[name].docker_host}"
        )
    inventory.write_text("\n".join(lines) + "\n")
    (tmp_path / "converge.yml").write_text(PLAYBOOK)
    return Fleet(fleet, stacks, inventory, tmp_path)


@dataclasses.dataclass
class Played:
    code: int
    out: str
    seconds: float
    recap: dict[str, dict[str, int]]  # host -> ok, changed, failed, ...
    results: dict[str, dict]  # host -> the module's registered result


@dataclasses.dataclass
class Fleet:
    daemons: dict[str, harness.Engine]
    stacks: dict[str, Path]
    inventory: Path
    folder: Path

    def play(self, *args: str, playbook: str = "converge.yml", inventory: Path | None = None) -> Played:
        results = self.folder / "results"
        shutil.rmtree(results, ignore_errors=True)
        results.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "DOCKER_", "AI_INFRA"))}
        env.update(
            # The module imports the reconciler this test runs, wherever it is installed.
            PYTHONPATH=str(Path(reconciler.__file__).resolve().parents[1]),
            ANSIBLE_LIBRARY=str(LIBRARY),
            ANSIBLE_HOME=str(self.folder / "ansible-home"),
            ANSIBLE_LOCAL_TEMP=str(self.folder / "ansible-tmp"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_FORKS="5",
            LC_ALL="C.UTF-8",
            RECONCILE_CACHE_DIR=str(self.folder / "cache"),
            NO_COLOR="1",
        )
        command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory or self.inventory)]
        started = time.monotonic()
        proc = subprocess.run(
            [*command, *args, "-e", f"results_dir={results}", playbook],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT,
        )
        seconds = time.monotonic() - started
        out = proc.stdout + proc.stderr
        found = {p.stem: json.loads(p.read_text()) for p in results.glob("*.json")}
        return Played(proc.returncode, out, seconds, recap(proc.stdout), found)

    def images(self, name: str) -> set[str]:
        return set(tags(self.daemons[name]))


def recap(out: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP's counts by host: ``fleet-a : ok=1 changed=1 unreachable=0 failed=0 ...``."""
    found = {}
    for line in out[out.rindex("PLAY RECAP") :].splitlines()[1:]:
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            found[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return found


def test_check_mode_plans_apply_converges_and_a_second_run_changes_nothing(hosts):
    timings = {}

    # 1. Check mode: every host reports its plan as a change, and nothing is changed.
    checked = hosts.play("--check", "--diff")
    timings["check"] = checked.seconds
    assert checked.code == 0, checked.out
    for name in HOSTS:
        assert checked.recap[name]["changed"] == 1 and checked.recap[name]["failed"] == 0, checked.out
        result = checked.results[name]
        assert [a["address"] for a in result["actions"]] == [
            "pull[busybox:1.36]",
            "pull[redis:7-alpine]",
            "tag[localhost/busybox:1.36]",
            "tag[localhost/redis:7-alpine]",
            "write[src/motd/motd]",
            "build[motd]",
        ]
        assert result["summary"] == {
            **{kind: 0 for kind in ("push", "mirror", "untag", "remove")},
            **{"pull": 2, "tag": 2, "write": 1, "build": 1, "total": 6},
        }
        assert result["network"] == {
            "mode": "external",
            "source": "--network",
            "registry": result["network"]["registry"],
        }
        assert result["outcomes"] == [] and result["docker_host"] == hosts.daemons[name].docker_host
        assert result["diff"]["prepared"].count("reconcile will perform the following actions") == 1
        assert hosts.images(name) == set()
        assert not (hosts.stacks[name] / "src" / "motd" / "motd").exists()
    assert checked.out.count("reconcile will perform the following actions") == 3  # --diff shows each plan

    # 2. A real run converges every host.
    applied = hosts.play()
    timings["apply"] = applied.seconds
    assert applied.code == 0, applied.out
    for name in HOSTS:
        assert applied.recap[name]["changed"] == 1 and applied.recap[name]["failed"] == 0, applied.out
        result = applied.results[name]
        assert {o["status"] for o in result["outcomes"]} == {"succeeded"}
        assert result["summary"]["succeeded"] == result["summary"]["total"] == 6
        assert result["remaining"] == []
        assert hosts.images(name) == CONVERGED
        assert (hosts.stacks[name] / "src" / "motd" / "motd").read_text() == "hello from fleet\n"

    # 3. The same run again: changed=0 on every host, and so in check mode.
    again = hosts.play()
    timings["apply again"] = again.seconds
    assert again.code == 0, again.out
    checked_again = hosts.play("--check")
    timings["check again"] = checked_again.seconds
    assert checked_again.code == 0, checked_again.out
    for name in HOSTS:
        for run in (again, checked_again):
            assert run.recap[name]["changed"] == 0 and run.recap[name]["failed"] == 0, run.out
            assert run.results[name]["actions"] == [] and run.results[name]["changed"] is False
        assert hosts.images(name) == CONVERGED
    print("3-host playbook runs:", ", ".join(f"{step} {took:.1f} s" for step, took in timings.items()))


def test_a_stopped_daemon_fails_its_host_only_and_the_others_converge(hosts):
    stopped = hosts.daemons["fleet-c"]
    harness.down(stopped)
    try:
        played = hosts.play()
        print(f"3-host apply with one daemon down: {played.seconds:.1f} s")
        assert played.code == 2, played.out  # ansible-playbook's "a host failed"
        assert played.recap["fleet-c"]["failed"] == 1 and played.recap["fleet-c"]["changed"] == 0
        message = played.results["fleet-c"]["msg"]
        assert message.startswith(f"cannot reach the Docker daemon at {stopped.docker_host} (")
        assert "\n" not in message
        for name in ("fleet-a", "fleet-b"):
            assert played.recap[name]["failed"] == 0 and played.recap[name]["changed"] == 1, played.out
            assert hosts.images(name) == CONVERGED

        # The nightly check names the host it could not check, apart from those that drifted.
        report = hosts.folder / "drift.json"
        checked = hosts.play(
            "-e",
            f"drift_report={report}",
            "-e",
            "reconcile_network=external",
            playbook=str(EXAMPLES / "drift-check.yml"),
        )
        assert checked.code == 2, checked.out
        found = json.loads(report.read_text())
        assert (found["drifted"], found["not_checked"]) == ([], ["fleet-c"])
        assert found["hosts"]["fleet-c"]["error"] == message
    finally:
        harness.ensure_up(stopped)
    # Back up, the host converges with the next run and the others report nothing to do.
    again = hosts.play()
    assert again.code == 0, again.out
    assert {name: again.recap[name]["changed"] for name in HOSTS} == {"fleet-a": 0, "fleet-b": 0, "fleet-c": 1}
    assert hosts.images("fleet-c") == CONVERGED


def test_a_daemon_locked_by_another_apply_fails_its_host_only(hosts, monkeypatch):
    """The module takes the CLI's lock: keyed by the daemon's ID, in the cache dir of whoever applies."""
    monkeypatch.setenv("RECONCILE_CACHE_DIR", str(hosts.folder / "cache"))  # the playbook's, see Fleet.play
    api = hosts.daemons["fleet-a"].api()
    try:
        daemon_id = api.info()["ID"]
    finally:
        api.close()
    with hold(daemon_id, "reconcile apply (a person at a terminal)"):
        played = hosts.play("-e", "lock_timeout=0")
    assert played.code == 2, played.out
    assert played.recap["fleet-a"]["failed"] == 1 and hosts.images("fleet-a") == set()
    message = played.results["fleet-a"]["msg"]
    assert message.startswith(f"the daemon is locked by pid {os.getpid()} (") and "reconcile apply (a person" in message
    for name in ("fleet-b", "fleet-c"):
        assert played.recap[name]["changed"] == 1 and played.recap[name]["failed"] == 0, played.out
    # Released, the next run applies there.
    again = hosts.play()
    assert again.recap["fleet-a"]["changed"] == 1 and hosts.images("fleet-a") == CONVERGED


def test_the_example_drift_check_reports_the_hosts_that_drifted(hosts):
    playbook = str(EXAMPLES / "drift-check.yml")
    report = hosts.folder / "drift.json"
    assert hosts.play(playbook="converge.yml").code == 0
    clean = hosts.play("-e", f"drift_report={report}", "-e", "reconcile_network=external", playbook=playbook)
    assert clean.code == 0, clean.out
    assert json.loads(report.read_text())["drifted"] == []

    # Someone moves an alias on one host: the next night's check names that host alone.
    api = hosts.daemons["fleet-b"].api()
    try:
        api.tag("redis:7-alpine", "localhost/busybox", "1.36", force=True)
    finally:
        api.close()
    drifted = hosts.play("-e", f"drift_report={report}", "-e", "reconcile_network=external", playbook=playbook)
    assert drifted.code == 2, drifted.out  # the report play fails, so cron mails it
    found = json.loads(report.read_text())
    assert found["drifted"] == ["fleet-b"] and found["not_checked"] == []
    assert found["hosts"]["fleet-b"]["actions"] == ["tag[localhost/busybox:1.36]"]
    assert "drift on 1 host(s): fleet-b; not checked: -" in drifted.out
    assert drifted.recap["fleet-b"]["changed"] == 1 and drifted.recap["fleet-a"]["changed"] == 0
    assert hosts.images("fleet-b") == CONVERGED  # check mode moved nothing back


def test_the_docker_context_and_host_option_choose_the_daemon_for_every_command(hosts, tmp_path):
    """Contexts made by the docker CLI itself, in a DOCKER_CONFIG of the test's own."""
    config = tmp_path / "docker-config"
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "AI_INFRA_NETWORK_ENV")}
    env.update(DOCKER_CONFIG=str(config), RECONCILE_CACHE_DIR=str(tmp_path / "cache"), NO_COLOR="1")
    for name in ("fleet-a", "fleet-b"):
        created = subprocess.run(
            ["docker", "context", "create", name, "--docker", f"host={hosts.daemons[name].docker_host}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert created.returncode == 0, created.stderr
    stack = str(hosts.stacks["fleet-a"])

    def reconcile(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args, "-s", stack, "--network", "external"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT,
        )

    # DOCKER_CONTEXT: apply converges fleet-b's daemon, and only it.
    applied = reconcile("apply", "--auto-approve", DOCKER_CONTEXT="fleet-b")
    assert applied.returncode == 0, applied.stderr
    assert hosts.images("fleet-b") == CONVERGED and hosts.images("fleet-a") == set()

    # `docker context use`: plan reads fleet-b's daemon, converged; fleet-a's still has everything to do.
    subprocess.run(["docker", "context", "use", "fleet-b"], env=env, check=True, capture_output=True, timeout=30)
    assert reconcile("plan", "--detailed-exitcode").returncode == 0
    assert reconcile("plan", "--detailed-exitcode", DOCKER_CONTEXT="fleet-a").returncode == 2
    # --host wins over the context, as for the docker CLI.
    assert reconcile("plan", "--detailed-exitcode", "--host", hosts.daemons["fleet-a"].docker_host).returncode == 2

    # A context whose daemon is down: one line naming the context.
    harness.down(hosts.daemons["fleet-a"])
    try:
        failed = reconcile("plan", DOCKER_CONTEXT="fleet-a")
    finally:
        harness.ensure_up(hosts.daemons["fleet-a"])
    assert failed.returncode == 1
    (line,) = failed.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the Docker daemon at {hosts.daemons['fleet-a'].docker_host} (")
    assert "from docker context fleet-a)" in line


def test_the_example_playbooks_pass_ansible_syntax_check(tmp_path):
    """Run from their folder, as docs/fleet.md says: its ansible.cfg names the inventory and the module."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_HOME=str(tmp_path / "ansible-home"), LC_ALL="C.UTF-8", ANSIBLE_NOCOLOR="1")
    checked = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check", "site.yml", "drift-check.yml"],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "playbook: site.yml" in checked.stdout and "playbook: drift-check.yml" in checked.stdout
