"""Compressed artefacts against float32, one fitted model, the same run.

The core is fitted once with its defaults (what ``retrain`` fits, blend included) on a shared split's
``train.csv``, saved plain and with ``compress="int8"`` (``MODEL_COMPRESSION``), and each saved copy is
loaded and measured on the split's test step: artefact size, NDCG@10 (the protocol's), precompute
users/s (every test shopper in one ``recommend`` call, the best of three), and real-time model time
per request (one shopper per call, p50 and p99 over every test shopper). The gates of the compressed
form: size <= 0.5x and NDCG@10 within 1 % (relative) of float32.

The data set is not part of this repository: name the protocol's folder and the data sets' with
``--eval-dir`` / ``--data-dir`` (or ``RECOMMENDER_EVAL_DIR`` / ``RECOMMENDER_EVAL_DATA``); without
them the benchmark prints that it skipped and exits 0.

usage: nice -n 5 .venv/bin/python bench/compression.py [--split tb2novel] [--eval-dir D] [--data-dir D]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quality import SPLITS, add_eval_arguments, eval_folders, per_user_ndcg  # noqa: E402

from recommendations.core.config import NetworkConfig  # noqa: E402
from recommendations.core.dataset import EventLog  # noqa: E402
from recommendations.core.recommender import BehaviorRecommender  # noqa: E402

SCHEMES = ("none", "int8")


def folder_bytes(folder: Path) -> int:
    """Bytes of every file of an artefact."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def measure(model: BehaviorRecommender, histories: list, exclude: list | None, mask: bool) -> dict:
    """Lists for every history, the precompute rate and per-request times of ``model``."""
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        lists = model.recommend(histories, 10, exclude=exclude, seen_excluded=mask)
        rates.append(len(histories) / (time.perf_counter() - started))
    times = []
    for k, history in enumerate(histories):
        started = time.perf_counter()
        model.recommend([history], 10, exclude=[exclude[k]] if exclude else None, seen_excluded=mask)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "lists": lists,
        "users_per_s": max(rates),
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="tb2novel", choices=sorted(SPLITS))
    add_eval_arguments(ap)
    a = ap.parse_args()
    folders = eval_folders(a)
    if folders is None:
        return 0
    _, data_dir = folders
    import pandas as pd
    import protocol
    import torch
    from convert import READERS

    torch.set_num_threads(1)  # a web worker's setting: one request, one thread
    data_name, k, mode = SPLITS[a.split]
    with tempfile.TemporaryDirectory(prefix="compression-") as tmpd:
        tmp = Path(tmpd)
        READERS[data_name](data_dir).to_csv(tmp / "data.csv", index=False)
        info = protocol.split(tmp / "data.csv", tmp / "split", k, mode)
        mask = bool(info["mask_history"])
        train = EventLog.from_csv(tmp / "split" / "train.csv")
        test = pd.read_csv(tmp / "split" / "test.csv", dtype=str)
        users, targets = list(test.user_id), dict(zip(test.user_id, test.item_id, strict=True))
        n_items = pd.read_csv(tmp / "split" / "train.csv", dtype=str).item_id.nunique()
        by_user = train.histories()
        histories = [by_user.get(u, []) for u in users]
        exclude = [{i for i, _, _ in h} for h in histories] if mask else None

        started = time.time()
        fitted = BehaviorRecommender(NetworkConfig()).fit(train)
        seconds = time.time() - started
        print(f"{a.split}: {info}; fitted with the core's defaults in {seconds:.0f} s", flush=True)
        rows = {}
        for scheme in SCHEMES:
            folder = tmp / scheme
            fitted.save(folder, compress=scheme)
            loaded = BehaviorRecommender.load(folder)
            row = measure(loaded, histories, exclude, mask)
            recs = {u: [item for item, _ in lst] for u, lst in zip(users, row.pop("lists"), strict=True)}
            row["bytes"] = folder_bytes(folder)
            row["ndcg_users"] = per_user_ndcg(recs, users, targets)
            row["ndcg"] = protocol.metrics(recs, test, n_items)["NDCG@10"]
            rows[scheme] = row

    base = rows["none"]
    print(f"\n### {a.split} ({info['users']} users, {info['items']} items, {info['train_events']} events)\n")
    print("| artefact | size | precompute users/s | real-time p50 ms | p99 ms | NDCG@10 |")
    print("|---|---|---|---|---|---|")
    for scheme, row in rows.items():
        print(
            f"| {scheme} | {row['bytes'] / 1e6:.2f} MB ({row['bytes'] / base['bytes']:.2f}x) |"
            f" {row['users_per_s']:.0f} ({row['users_per_s'] / base['users_per_s']:.2f}x) |"
            f" {row['p50_ms']:.2f} ({row['p50_ms'] / base['p50_ms']:.2f}x) |"
            f" {row['p99_ms']:.2f} ({row['p99_ms'] / base['p99_ms']:.2f}x) |"
            f" {row['ndcg']:.4f} ({(row['ndcg'] / base['ndcg'] - 1) * 100:+.2f} %) |"
        )
    compressed = rows["int8"]
    size_ok = compressed["bytes"] <= 0.5 * base["bytes"]
    ndcg_ok = abs(compressed["ndcg"] / base["ndcg"] - 1) <= 0.01
    changed = int((compressed["ndcg_users"] != base["ndcg_users"]).sum())
    print(
        f"\ngates: size <= 0.5x {'met' if size_ok else 'MISSED'}; NDCG@10 within 1 %"
        f" {'met' if ndcg_ok else 'MISSED'} ({changed} of {len(users)} shoppers' test scores changed)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
