"""Fanned-out jobs: CPU per user with chunks on two single-threaded Celery workers against one process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_fanout CELERY_BROKER_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/fanout.py [--users 20000] [--events 600000] [--seed 7] [--skip-seed] \\
        [--chunk-users 5000[,1000...]] [--repeats 3] [--jobs refresh,profiles]

For ``refresh_recommendations`` (the lists) and ``rebuild_profiles --full``, in one run:

1. one single-threaded process runs the job as one chunk (every user at once);
2. the same process runs it in chunks of ``--chunk-users``, in order;
3. two ``celery worker --concurrency 1`` processes (prefork, one task at a time each, prefetch 1)
   run the same chunks, the command only planning and waiting (``--workers``).

Every run is warm (Django, torch, the active model and the job's code loaded, as in a worker that
already ran a chunk: the workers ran the job once first), so the figures are the job's own. CPU is
user + system time of the job's processes: the command process for 1 and 2; both worker process
trees plus the command process for 3 (the database server's own CPU is in none of them). Wall time
is the job's own record (planned to closed, from its ``ListRefresh`` / ``ProfileRun`` row). Every
process runs one native thread (``OMP_NUM_THREADS=1``, ``PRECOMPUTE_THREADS`` 1) at the caller's
priority. The rounds interleave the runs; the table gives medians and each round's ratio. The shop
comes from ``seed_demo``; without ``--skip-seed`` the benchmark also trains its model (``retrain``:
many minutes on a small machine).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIG = 10**9  # chunk size of "one chunk": more users than any shop here

JOBS = {
    "refresh": {
        "label": "refresh_recommendations (lists)",
        "command": ["refresh_recommendations", "--lists-only"],
        "table": "recommendations_listrefresh",
        "start": "started_at",
    },
    "profiles": {
        "label": "rebuild_profiles --full",
        "command": ["rebuild_profiles", "--full"],
        "table": "recommendations_profilerun",
        "start": "created_at",
    },
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    env.setdefault("SECRET_KEY", "bench-" + secrets.token_urlsafe(48))
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            # the benchmark's own priority for every process (the jobs lower it by default)
            "RECOMMENDER_BACKGROUND_NICENESS": "none",
            # the lists scored in the calling thread (each scoring thread would be another core)
            "RECOMMENDER_PRECOMPUTE_THREADS": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    for name, value in _env().items():
        os.environ.setdefault(name, value)
    import django

    django.setup()


def _warm_up(job: str) -> None:
    """Imports, the network and the code paths loaded before the clock (a worker that already ran a
    chunk has them), on 50 users: an incremental rebuild of them, or their lists."""
    from django.contrib.auth import get_user_model

    from recommendations.services.profiles import rebuild_profiles
    from recommendations.services.registry import get_active_model
    from recommendations.services.serving import precompute

    get_active_model()
    users = list(get_user_model()._default_manager.order_by("pk").values_list("pk", flat=True)[:50])
    if job == "profiles":
        rebuild_profiles(user_ids=users)
    else:
        precompute.refresh_recommendations(user_ids=users)


def inner(job: str, sizes: list[int], worker_pids: list[int]) -> None:
    """Run one job here once per chunk size (``--workers`` when worker pids are given, adding their
    CPU); print each run's CPU seconds and its row as JSON lines."""
    _setup()
    from django.core.management import call_command
    from django.db import connection

    _warm_up(job)
    spec = JOBS[job]
    for size in sizes:
        with open(os.devnull, "w") as quiet:
            workers_before = _tree_cpu(worker_pids)
            started = time.process_time()
            options = ["--chunk-users", str(size), *(["--workers"] if worker_pids else [])]
            call_command(*spec["command"], *options, stdout=quiet)
            command_cpu = time.process_time() - started
            workers_cpu = _tree_cpu(worker_pids) - workers_before
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, users, chunks_total, extract(epoch from finished_at - {spec['start']}) "
                f"FROM {spec['table']} ORDER BY id DESC LIMIT 1"
            )
            run_id, users, chunks, wall = cursor.fetchone()
        row = {
            "run": run_id,
            "users": users,
            "chunks": chunks,
            "wall": float(wall),
            "command_cpu": command_cpu,
        }
        print(json.dumps({**row, "cpu": command_cpu + workers_cpu, "size": size}), flush=True)


def _run_inner(job: str, sizes: list[int], worker_pids: list[int] | None = None) -> list[dict]:
    command = [sys.executable, __file__, "--inner", job, "--chunk-users", ",".join(map(str, sizes))]
    if worker_pids:
        command += ["--worker-pids", ",".join(map(str, worker_pids))]
    done = subprocess.run(command, env=_env(), cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _tree_cpu(pids: list[int]) -> float:
    """User + system seconds of the processes ``pids`` and all their children so far."""
    import psutil

    total = 0.0
    for pid in pids:
        process = psutil.Process(pid)
        for member in [process, *process.children(recursive=True)]:
            times = member.cpu_times()
            total += times.user + times.system
    return total


def _start_workers(log_dir: Path) -> list[subprocess.Popen]:
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    subprocess.run([celery, "-A", "shop", "purge", "-f"], env=_env(), cwd=ROOT, capture_output=True)
    workers = []
    for name in ("bench-w1", "bench-w2"):
        log = (log_dir / f"{name}.log").open("w")
        workers.append(
            subprocess.Popen(
                [
                    celery,
                    "-A",
                    "shop",
                    "worker",
                    "--concurrency",
                    "1",
                    "--pool",
                    "prefork",
                    "--prefetch-multiplier",
                    "1",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"{name}@%h",
                    "--loglevel",
                    "INFO",
                ],
                env=_env(),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 180
    while not all("ready." in (log_dir / f"{n}.log").read_text() for n in ("bench-w1", "bench-w2")):
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not start within 3 minutes")
        time.sleep(1)
    return workers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-seed", action="store_true", help="reuse the shop (and model) in the database")
    parser.add_argument("--chunk-users", default="5000", help="users per chunk (the inner runs: a list)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every run; the table gives medians")
    parser.add_argument("--jobs", default="refresh,profiles")
    parser.add_argument("--inner", choices=list(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-pids", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(size) for size in args.chunk_users.split(",") if size]
    if args.inner:
        inner(args.inner, sizes, [int(pid) for pid in args.worker_pids.split(",") if pid])
        return 0
    if not os.environ.get("CELERY_BROKER_URL"):
        parser.error("CELERY_BROKER_URL must name a Redis database the workers share")
    jobs = [job for job in args.jobs.split(",") if job]
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=_env(), cwd=ROOT, check=True)
    if not args.skip_seed:
        seed = [
            "seed_demo",
            "--users",
            str(args.users),
            "--events",
            str(args.events),
            "--seed",
            str(args.seed),
        ]
        subprocess.run([*manage, *seed, "--flush"], env=_env(), cwd=ROOT, check=True)
        subprocess.run([*manage, "retrain"], env=_env(), cwd=ROOT, check=True)
    sys.path.insert(0, str(HERE))
    from machine import describe, measure

    speed_before, load_before = measure(), os.getloadavg()[0]
    log_dir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"bench-fanout-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = _start_workers(log_dir)
    runs: dict[tuple[str, str, int], list[dict]] = {}
    try:
        pids = [w.pid for w in workers]
        for job in jobs:  # warm-up: each worker loads torch, the model and the job's code
            _run_inner(job, sizes[:1], pids)
        # rounds interleave the runs, so that a slower or faster spell of a shared machine falls
        # on every kind of run
        for round_ in range(args.repeats):
            for job in jobs:
                for row in _run_inner(job, [BIG, *sizes]):
                    runs.setdefault((job, "one" if row["size"] == BIG else "chunks", row["size"]), []).append(
                        row
                    )
                for row in _run_inner(job, sizes, pids):
                    runs.setdefault((job, "workers", row["size"]), []).append(row)
                print(f"round {round_ + 1}, {job}: done", flush=True)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    speed_after, load_after = measure(), os.getloadavg()[0]
    machine = f"{describe(speed_before, speed_after)}; load average {load_before:.1f} -> {load_after:.1f}"
    _print_table(jobs, sizes, runs, machine, args.repeats)
    return 0


def _print_table(jobs: list[str], sizes: list[int], runs: dict, machine: str, repeats: int) -> None:
    print()
    print(f"machine: {machine}")
    print(f"medians of {repeats} rounds; CPU = user + system seconds of the job's processes")
    print(
        "| job | users | run | chunks | CPU s | CPU ms/user | vs one process (rounds) | wall s | wall ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    names = {
        "one": "one process, one chunk",
        "chunks": "one process, chunks in order",
        "workers": "two workers",
    }
    for job in jobs:
        base = runs[(job, "one", BIG)]
        base_cpu = [row["cpu"] / row["users"] for row in base]
        base_wall = statistics.median(row["wall"] for row in base)
        for kind, size in [("one", BIG), *[(k, s) for s in sizes for k in ("chunks", "workers")]]:
            rows = runs[(job, kind, size)]
            per_user = [row["cpu"] / row["users"] for row in rows]
            ratios = [mine / theirs for mine, theirs in zip(per_user, base_cpu, strict=True)]
            wall = statistics.median(row["wall"] for row in rows)
            cpu = statistics.median(row["cpu"] for row in rows)
            print(
                f"| {JOBS[job]['label']} | {rows[0]['users']} | {names[kind]} | {rows[0]['chunks']} | "
                f"{cpu:.1f} | {1000 * statistics.median(per_user):.3f} | "
                f"{statistics.median(ratios):.2f}x ({', '.join(f'{r:.2f}' for r in ratios)}) | {wall:.1f} | "
                f"{wall / base_wall:.2f}x |"
            )
    for job in jobs:
        for size in sizes:
            rows = runs[(job, "workers", size)]
            ratios = [
                (mine["cpu"] / mine["users"]) / (one["cpu"] / one["users"])
                for mine, one in zip(rows, runs[(job, "one", BIG)], strict=True)
            ]
            ratio = statistics.median(ratios)
            verdict = "met" if ratio <= 1.10 else "missed"
            command = statistics.median(row["command_cpu"] for row in rows)
            print(
                f"{job}, chunks of {size}: CPU per user on two workers {ratio:.2f}x one process "
                f"(goal <= 1.10: {verdict}); the command process (plans, waits) {command:.2f} s of it"
            )


if __name__ == "__main__":
    raise SystemExit(main())
