"""Run every benchmark in sequence (``make bench``); each prints its own table.

The full set takes well over an hour on a small machine (the 1M-event import, 100k
profiles, the quality splits and a 10-minute soak). ``--quick`` runs the small variants.
Benchmarks need the local Postgres and Redis; the quality benchmark skips unless
RECOMMENDER_EVAL_DIR and RECOMMENDER_EVAL_DATA name the protocol's code and the data sets.

usage: python bench/run_all.py [--quick] [--only NAME[,NAME...]]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "ingest": (["--events", "100000", "--naive", "1000", "--max-seconds", "60"], ["--quick"]),
    "partitions": (["--rows", "1000000"], ["--rows", "50000", "--repeat", "1"]),
    "pages": (["--requests", "200"], ["--requests", "50"]),
    "train": (["--threads", "2"], ["--threads", "2", "--skip-growth"]),
    "quality": ([], ["--splits", "tb2novel", "--skip-network"]),
    "serve": ([], ["--quick"]),
    "profiles": (["--users", "100000", "--events", "1500000"], ["--users", "5000", "--events", "75000"]),
    "soak": (["--minutes", "10"], ["--quick"]),
    # needs CELERY_BROKER_URL (a Redis database for its two workers); seeds and trains first
    "fanout": ([], ["--users", "5000", "--events", "150000", "--repeats", "1"]),
    # in process, no database: the replay estimate against the served rate on simulated shoppers
    "replay": ([], ["--lists", "50000", "--seeds", "2"]),
    # a Redis broker (its --broker-db) so each sampled request publishes its task for real
    "shadow": ([], ["--requests", "300", "--rounds", "3"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small variants of every benchmark")
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    selected = [name for name in args.only.split(",") if name] or list(BENCHMARKS)
    unknown = sorted(set(selected) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failures = []
    for name in selected:
        full, quick = BENCHMARKS[name]
        command = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full)]
        print(f"\n### {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        code = subprocess.call(command)
        print(f"### {name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failures.append(name)
    if failures:
        print(f"failed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
