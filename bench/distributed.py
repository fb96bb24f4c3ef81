"""Distributed training on CPU: does a two-process torchrun fit learn as well as one process?

The synthetic shop of ``bench/train.py`` is packed once (``recommendations.core.packed_events``), then
``recommendations.core.training_job --stage fit`` runs

1. as one process, with three seeds: the spread of the final validation NDCG@10 that noise alone gives;
2. under ``torchrun --nproc-per-node 2`` (gloo, DistributedDataParallel, each rank on its half of the
   shoppers, global batch unchanged), with the first seed.

Printed per run: validation NDCG@10 of the network, interactions per second (labelled next-item positions
of every epoch over the training time, all ranks together), wall and CPU seconds of the whole job
(``os.wait4``: children included, so both ranks count). The issue's check: the two-process NDCG@10 lies
within the one-process runs' [min, max]. Every process trains on one thread,
so on a two-core machine two processes are no faster: the point is correctness.

usage: nice -n 15 .venv/bin/python bench/distributed.py [--events 30000] [--epochs 8] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train import synthetic_shop  # noqa: E402
from recommendations.core.config import NetworkConfig  # noqa: E402
from recommendations.core.packed_events import pack_event_log  # noqa: E402

TORCHRUN = Path(sys.executable).with_name("torchrun")


def run_job(folder: Path, seed: int, epochs: int, processes: int) -> dict:
    """One fit stage in a subprocess; its last stdout line (rank 0's JSON) plus wall and CPU time."""
    config = NetworkConfig(
        threads=1,
        device="cpu",
        epochs=epochs,
        patience=epochs,
        dropout=0.1,
        random_seed=seed,
        refit_full=False,
        blend=False,
    )
    config_file = folder / f"config-{seed}-{processes}.json"
    config_file.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    launcher = [str(TORCHRUN), "--nproc-per-node", str(processes)] if processes > 1 else [sys.executable]
    command = [*launcher, "-m", "recommendations.core.training_job", "--data", str(folder / "data")]
    command += ["--config", str(config_file), "--out", str(folder / f"model-{seed}-{processes}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out_file, err_file = folder / "stdout.txt", folder / "stderr.txt"
    t0 = time.perf_counter()
    with out_file.open("wb") as out, err_file.open("wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        # wait4: the job's CPU time, its ranks included (torchrun waits for them)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"job failed:\n{err_file.read_text()[-2000:]}")
    report = json.loads(out_file.read_text().strip().splitlines()[-1])
    return {
        "processes": processes,
        "seed": seed,
        "valid_ndcg@10": report["validation"]["NDCG@10"],
        "epochs": report["epochs"],
        "interactions_per_second": report["interactions_per_second"],
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
    }


def main() -> int:
    """Print one JSON line per run, then the summary."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as scratch:
        folder = Path(scratch)
        pack_event_log(synthetic_shop(args.events), folder / "data")
        single = [run_job(folder, seed, args.epochs, 1) for seed in seeds]
        for row in single:
            print(json.dumps(row), flush=True)
        double = run_job(folder, seeds[0], args.epochs, 2)
        print(json.dumps(double), flush=True)
    scores = [row["valid_ndcg@10"] for row in single]
    low, high = min(scores), max(scores)
    summary = {
        "events": args.events,
        "one_process_ndcg@10": scores,
        "one_process_spread": round(high - low, 5),
        "two_process_ndcg@10": double["valid_ndcg@10"],
        "within_spread": low <= double["valid_ndcg@10"] <= high,
        "one_process_interactions_per_second": single[0]["interactions_per_second"],
        "two_process_interactions_per_second": double["interactions_per_second"],
        "one_process_cpu_seconds": single[0]["cpu_seconds"],
        "two_process_cpu_seconds": double["cpu_seconds"],
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
