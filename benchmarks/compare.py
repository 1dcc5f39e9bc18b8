"""reconcile against the shell loop it replaces, on the private engine (make bench).

    .venv/bin/python benchmarks/compare.py [--runs N]

Each case is timed end to end (process start included) as the median of N runs, and
its ratio to the yardstick printed next to the goal from the issue that set them.
The package is byte-compiled first, as an installed one is.
Everything runs against the private engine and its loopback registries only.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from reconciler.refs import parse  # noqa: E402
from tests import harness, seeding  # noqa: E402

RECONCILE = [sys.executable, "-m", "reconciler"]
SHELL_LOOP = str(ROOT / "benchmarks" / "shell_loop.sh")


def timed(command: list[str], env: dict[str, str], runs: int, setup=None) -> float:
    times = []
    for _ in range(runs):
        if setup:
            setup()
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if proc.returncode not in (0, 2):
            raise SystemExit(f"{' '.join(command[:4])}… failed: {proc.stderr[-500:]}")
    return statistics.median(times)


def base_stack(folder: Path, images: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    listed = ", ".join(f'"{i}"' for i in images)
    (folder / "stack.toml").write_text(f'[stack]\nname = "bench"\nimages = [{listed}]\n')
    return folder


def present(engine, images: list[str]) -> None:
    """Every image present locally (as tags of one seeded image): only aliases are ever in question."""
    api = engine.api()
    try:
        source = next(t for i in api.images() for t in i.get("RepoTags") or [] if t.startswith("busybox:"))
        for image in images:
            ref = parse(image)
            api.tag(source, ref.familiar_name, ref.tag)
    finally:
        api.close()


def drop_aliases(engine, images: list[str]) -> None:
    api = engine.api()
    try:
        for image in images:
            for name in (f"localhost/{image}",):
                try:
                    api.remove_image(name)
                except Exception:
                    pass
    finally:
        api.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    # Bytecode as an installed package has it (pip compiles on install): an editable checkout
    # run with PYTHONDONTWRITEBYTECODE would otherwise compile every changed module on each start.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "reconciler")], check=True, capture_output=True
    )
    engine = harness.ensure_up()
    harness.seed(engine, seeding.targets_for(engine, [parse("busybox:1.36")]))
    api = engine.api()
    api.pull(f"{engine.hub}/library/busybox", tag="1.36")
    api.tag(f"{engine.hub}/library/busybox:1.36", "busybox", "1.36")
    api.close()
    work = Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
    env = {**os.environ, "DOCKER_HOST": engine.docker_host, "RECONCILE_CACHE_DIR": str(work / "cache")}
    env.update(AI_INFRA_NETWORK_ENV="external", NO_COLOR="1")
    rows = []
    try:
        for count in (8, 200):
            images = [f"bench/image-{n}:1" for n in range(count)]
            present(engine, images)
            stack = base_stack(work / f"bases-{count}", images)
            subprocess.run([*RECONCILE, "apply", "--auto-approve", "-s", str(stack)], env=env, capture_output=True)
            ours = timed([*RECONCILE, "plan", "-s", str(stack)], env, runs)
            theirs = timed([SHELL_LOOP, "localhost", *images], env, runs)
            rows.append((f"no-op plan, {count} base images", ours, theirs, {8: 0.5, 200: 0.03}[count]))
            if count == 200:
                ours = timed(
                    [*RECONCILE, "apply", "--auto-approve", "-s", str(stack)],
                    env,
                    runs,
                    setup=lambda images=images: drop_aliases(engine, images),
                )
                rows.append((f"apply from no aliases, {count} images", ours, theirs, 0.10))

        # 50 services, all built and current: a no-op apply against 50 cached `docker build`s
        # (the classic builder: the docker CLI here has no buildx plugin).
        services = work / "services"
        for n in range(50):
            (services / "src" / f"s{n}").mkdir(parents=True)
            (services / "src" / f"s{n}" / "Dockerfile").write_text(f"FROM busybox:1.36\nRUN echo {n} > /n\n")
        (services / "stack.toml").write_text(
            '[stack]\nname = "bench"\nservices = "src/*/Dockerfile"\nbuild_network = "none"\n'
        )
        subprocess.run([*RECONCILE, "apply", "--auto-approve", "-s", str(services)], env=env, capture_output=True)
        ours = timed([*RECONCILE, "apply", "--auto-approve", "-s", str(services)], env, runs)
        builds = [
            "bash",
            "-c",
            " && ".join(
                f"docker build -q --network none -t bench-s{n} {services}/src/s{n} >/dev/null" for n in range(50)
            ),
        ]
        subprocess.run(builds, env={**env, "DOCKER_BUILDKIT": "0"}, capture_output=True)
        theirs = timed(builds, {**env, "DOCKER_BUILDKIT": "0"}, runs)
        rows.append(("no-op apply, 50 services (vs 50 cached docker builds)", ours, theirs, 0.05))

        floor = timed([sys.executable, str(ROOT / "benchmarks" / "floor.py"), "plan", "--stack", "x"], env, runs)

        help_time = timed([str(Path(sys.executable).parent / "reconcile"), "--help"], env, max(runs, 5))
        rows.append(("reconcile --help", help_time, None, 0.10))

        # One Dockerfile of ~33 MB (a long RUN of ARG lines): time and peak memory of `images`.
        big = work / "big"
        (big / "src" / "app").mkdir(parents=True)
        line = "RUN echo " + "x" * 100 + "\n"
        (big / "src" / "app" / "Dockerfile").write_text("FROM busybox:1.36\n" + line * (33 * 1024 * 1024 // len(line)))
        (big / "stack.toml").write_text('[stack]\nname = "bench"\nservices = "src/*/Dockerfile"\n')
        started = time.perf_counter()
        proc = subprocess.run(
            [*RECONCILE, "images", "--network", "external", "-s", str(big)], env=env, capture_output=True, text=True
        )
        took = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-500:])
        rows.append((f"images, 33 MB Dockerfile (peak {peak:.0f} MB, goal 200 MB)", took, None, 2.0))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # The floor: a typer command that does nothing but validate one pydantic model
    # (benchmarks/floor.py). Its ratio is the least any typer command can reach.
    print(f"{'case':58} {'reconcile':>10} {'shell':>8} {'ratio':>7} {'goal':>7}  {'':6} {'floor':>7}")
    for name, ours, theirs, goal in rows:
        if theirs is None:
            print(f"{name:58} {ours:9.3f}s {'':>8} {'':>7} {f'{goal:.2f} s':>7}  {'ok' if ours <= goal else 'MISSED'}")
        else:
            ratio = ours / theirs
            verdict = "ok" if ratio <= goal else "MISSED"
            print(
                f"{name:58} {ours:9.3f}s {theirs:7.2f}s {ratio:6.3f}x {goal:6.2f}x  {verdict:6} {floor / theirs:6.3f}x"
            )
    print(f"floor: benchmarks/floor.py, a typer command validating one pydantic model, {floor:.3f}s")


if __name__ == "__main__":
    main()
