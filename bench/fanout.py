"""Fanned-out jobs: CPU per user with chunks on two single-threaded Celery workers against one process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_fanout CELERY_BROKER_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/fanout.py [--users 5000] [--events 150000] [--seed 7] [--skip-seed] \\
        [--chunk-users 1000] [--jobs refresh,profiles]

For ``refresh_recommendations`` (the lists) and ``rebuild_profiles --full``, in one run:

1. one single-threaded process runs the job as one chunk (every user at once);
2. the same process runs it in chunks of ``--chunk-users``, in order;
3. two ``celery worker --concurrency 1`` processes (prefork, one task at a time each, prefetch 1)
   run the same chunks, the command only planning and waiting (``--workers``).

Each is run after a warm-up in the same processes (Django, torch and the active model loaded; the
workers each took a chunk), so the figures are the job's own. CPU is user + system time: of the
command process for 1 and 2, of both worker process trees plus the command process for 3. Wall
time is the job's own record (planned to closed, from its ``ListRefresh`` / ``ProfileRun`` row).
Every process runs one native thread (``OMP_NUM_THREADS=1``, ``PRECOMPUTE_THREADS`` 1) at the
caller's priority. The shop comes from ``seed_demo``; without an active model the benchmark trains
one first (``retrain``: minutes). The figures are printed as one table, the ratios against 1 from
the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
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


def inner(job: str, chunk_users: int, workers: bool) -> None:
    """Run one job in this process (after a warm-up) and print its CPU seconds and row as JSON."""
    _setup()
    from django.core.management import call_command

    from recommendations.services.profiles import rebuild  # noqa: F401  (import cost before the clock)
    from recommendations.services.registry import get_active_model
    from recommendations.services.serving import precompute  # noqa: F401

    get_active_model()  # the network loaded before the clock, as in a worker that already ran a chunk
    with open(os.devnull, "w") as quiet:
        if not workers:  # a first, unmeasured run: the code paths and the catalogue warmed up
            call_command(*JOBS[job]["command"], "--chunk-users", str(BIG), stdout=quiet)
        started = time.process_time()
        options = ["--chunk-users", str(chunk_users), *(["--workers"] if workers else [])]
        call_command(*JOBS[job]["command"], *options, stdout=quiet)
    cpu = time.process_time() - started
    from django.db import connection

    spec = JOBS[job]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, users, chunks_total, extract(epoch from finished_at - {spec['start']}) "
            f"FROM {spec['table']} ORDER BY id DESC LIMIT 1"
        )
        run_id, users, chunks, wall = cursor.fetchone()
    print(json.dumps({"cpu": cpu, "run": run_id, "users": users, "chunks": chunks, "wall": float(wall)}))


def _run_inner(job: str, chunk_users: int, workers: bool) -> dict:
    command = [sys.executable, __file__, "--inner", job, "--chunk-users", str(chunk_users)]
    done = subprocess.run(
        [*command, *(["--workers"] if workers else [])], env=_env(), cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tree_cpu(pids: list[int]) -> float:
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
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-seed", action="store_true", help="reuse the shop (and model) in the database")
    parser.add_argument("--chunk-users", type=int, default=1000)
    parser.add_argument("--jobs", default="refresh,profiles")
    parser.add_argument("--inner", choices=list(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--workers", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.inner, args.chunk_users, args.workers)
        return 0
    if not os.environ.get("CELERY_BROKER_URL"):
        parser.error("CELERY_BROKER_URL must name a Redis database the workers share")
    jobs = [job for job in args.jobs.split(",") if job]
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=_env(), cwd=ROOT, check=True)
    if not args.skip_seed:
        subprocess.run(
            [
                *manage,
                "seed_demo",
                "--users",
                str(args.users),
                "--events",
                str(args.events),
                "--seed",
                str(args.seed),
                "--flush",
            ],
            env=_env(),
            cwd=ROOT,
            check=True,
        )
        subprocess.run([*manage, "retrain"], env=_env(), cwd=ROOT, check=True)
    sys.path.insert(0, str(HERE))
    from machine import describe, measure

    speed_before = measure()
    rows: dict[str, dict[str, dict]] = {}
    log_dir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"bench-fanout-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        rows[job] = {
            "one": _run_inner(job, BIG, False),
            "chunks": _run_inner(job, args.chunk_users, False),
        }
        print(f"{job}: one process done: {rows[job]}", flush=True)
    workers = _start_workers(log_dir)
    try:
        pids = [w.pid for w in workers]
        for job in jobs:
            _run_inner(job, args.chunk_users, True)  # warm-up: each worker loads torch and the model
            before = _tree_cpu(pids)
            measured = _run_inner(job, args.chunk_users, True)
            measured["command_cpu"] = measured["cpu"]
            measured["cpu"] += _tree_cpu(pids) - before
            rows[job]["workers"] = measured
            print(f"{job}: two workers done: {measured}", flush=True)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    speed_after = measure()
    print()
    print(f"machine: {describe(speed_before, speed_after)}")
    print("| job | users | run | chunks | CPU s | CPU ms per user | vs one process | wall s | wall vs one |")
    print("|---|---|---|---|---|---|---|---|---|")
    names = {
        "one": "one process, one chunk",
        "chunks": "one process, chunks in order",
        "workers": "two workers (`--concurrency 1`)",
    }
    for job in jobs:
        base = rows[job]["one"]
        base_per_user = base["cpu"] / max(base["users"], 1)
        for key, name in names.items():
            row = rows[job][key]
            per_user = row["cpu"] / max(row["users"], 1)
            print(
                f"| {JOBS[job]['label']} | {row['users']} | {name} | {row['chunks']} | {row['cpu']:.1f} | "
                f"{1000 * per_user:.2f} | {per_user / base_per_user:.2f}x | {row['wall']:.1f} | "
                f"{row['wall'] / base['wall']:.2f}x |"
            )
    for job in jobs:
        workers_row = rows[job]["workers"]
        ratio = (workers_row["cpu"] / workers_row["users"]) / (
            rows[job]["one"]["cpu"] / rows[job]["one"]["users"]
        )
        verdict = "met" if ratio <= 1.10 else "missed"
        print(
            f"{job}: CPU per user on two workers {ratio:.2f}x one process (goal <= 1.10: {verdict}); "
            f"the command process {workers_row['command_cpu']:.1f} s of it"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
