"""Offline quality of what a shop gets, next to the peers, under the protocol of docs/evaluation.md.

For each split: the product path (a fresh database, ``migrate``, ``import_events --create-missing``,
every item put in stock, ``retrain --window-days 36500``, ``export_recommendations --limit 10``, with
``--exclude-seen`` where the split masks history), the behaviour network alone (the core's defaults
with ``blend=False``: the same choices ``retrain`` makes, minus the blend), and the classic peers rerun in
the same run, each tuned on ``valid.csv``. No configuration is written per data set: the product's
defaults, and the choices it makes itself on validation, are what is measured. Each of ours carries a
paired-bootstrap 90 % interval of its NDCG@10 minus the best rerun peer's (same users resampled), and
the ratio to the best peer, RecBole's SASRec figure included (from the peer results file; RecBole
needs its own environment and about an hour of CPU, so it is not rerun).

The data and the peers' code are not part of this repository (their licences forbid shipping them):
name their folders with ``--eval-dir`` / ``--data-dir`` or ``RECOMMENDER_EVAL_DIR`` /
``RECOMMENDER_EVAL_DATA``; without them the benchmark prints that it skipped and exits 0.

usage: nice -n 5 .venv/bin/python bench/quality.py --database-url postgres://.../scratch
       [--splits ml5novel,tb2novel,tb2any] [--skip-network] [--eval-dir DIR] [--data-dir DIR]
The database named by --database-url (or QUALITY_DATABASE_URL) is dropped and recreated per split.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommendations.core.config import NetworkConfig  # noqa: E402
from recommendations.core.dataset import EventLog  # noqa: E402
from recommendations.core.recommender import BehaviorRecommender  # noqa: E402

SPLITS = {
    "ml5novel": ("ml-latest-small", 5, "novel"),
    "tb2novel": ("taobao-userbehavior-head", 2, "novel"),
    "tb2any": ("taobao-userbehavior-head", 2, "any"),
}
# RecBole SASRec's NDCG@10 from the peer results file (not rerun: see the module docstring)
RECBOLE_SASREC = {"ml5novel": 0.0589, "tb2novel": 0.0310, "tb2any": 0.0496}
STOCK = (
    "from django.apps import apps; from django.conf import settings; "
    "M = apps.get_model(settings.RECOMMENDER_ITEM_MODEL); "
    "names = {f.name for f in M._meta.fields}; "
    "M.objects.update(**{k: v for k, v in (('stock', 1000), ('is_active', True), ('available', True))"
    " if k in names})"
)


def per_user_ndcg(recs: dict[str, list[str]], users: list[str], targets: dict[str, str]) -> np.ndarray:
    """NDCG@10 of each test user (0 for a miss or no list), in ``users`` order."""
    out = np.zeros(len(users))
    for k, user in enumerate(users):
        top = recs.get(user, [])[:10]
        if targets[user] in top:
            out[k] = 1.0 / math.log2(top.index(targets[user]) + 2)
    return out


def paired_interval(
    ours: np.ndarray, peer: np.ndarray, rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """90 % paired-bootstrap interval of mean(ours - peer), the same users resampled for both."""
    rng = np.random.default_rng(seed)
    diff = ours - peer
    means = diff[rng.integers(0, len(diff), size=(rounds, len(diff)))].mean(1)
    return float(np.quantile(means, 0.05)), float(np.quantile(means, 0.95))


def run_peers(split: Path, mask: bool, users: list[str], targets: dict[str, str]) -> dict[str, dict]:
    """Each classic peer tuned on valid.csv, then its per-user NDCG@10 on test.csv."""
    import anchors
    import pandas as pd

    anchors.MASK = mask
    train = pd.read_csv(split / "train.csv", dtype=str)
    tune = pd.read_csv(split / "tune_train.csv", dtype=str)
    valid = pd.read_csv(split / "valid.csv", dtype=str)
    test = pd.read_csv(split / "test.csv", dtype=str)
    user_index = {u: i for i, u in enumerate(sorted(train.user_id.unique()))}
    items = {it: i for i, it in enumerate(sorted(set(train.item_id)))}
    inv = {i: it for it, i in items.items()}
    valid = valid[valid.user_id.isin(user_index) & valid.item_id.isin(items)]
    out = {}
    for name, (fn, grid) in anchors.GRIDS.items():
        if (name == "Recent" and mask) or name in ("ALS", "BPR"):
            continue  # ALS and BPR need the optional `implicit` package and never lead these splits
        best = max(
            grid, key=lambda p: anchors.evaluate(fn, p, tune, valid, user_index, items, inv)["NDCG@10"]
        )
        x = anchors.matrix(train, user_index, items)
        scores = np.asarray(fn(x, train=train, users=user_index, items=items, **best), dtype=np.float32)
        top = anchors.topk(scores, x)
        recs = {u: [inv[j] for j in top[user_index[u]]] for u in test.user_id if u in user_index}
        out[f"{name} {best}" if best else name] = {"recs": recs, "ndcg": per_user_ndcg(recs, users, targets)}
    return out


def manage(python: str, env: dict, *args: str) -> float:
    started = time.time()
    done = subprocess.run([python, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"manage.py {args[0]} failed: {(done.stderr or done.stdout).strip()[-800:]}")
    return round(time.time() - started, 1)


def run_product_path(split: Path, mask: bool, database_url: str, work: Path) -> tuple[dict, dict]:
    """The product's own commands with their defaults, in a freshly created database."""
    import psycopg

    url = urlparse(database_url)
    name = url.path.lstrip("/")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "",
        "CACHE_URL": "",
        # timed at the benchmark's own priority, not yielding to everything else on the machine
        "RECOMMENDER_BACKGROUND_NICENESS": "none",
        "REDIS_URL": "",
    }
    py = sys.executable
    users_file, out_file = work / "users.txt", work / "recs.jsonl"
    import pandas as pd

    users_file.write_text("\n".join(pd.read_csv(split / "test.csv", dtype=str).user_id) + "\n")
    timings = {
        "migrate_s": manage(py, env, "migrate", "--noinput"),
        "import_s": manage(py, env, "import_events", str(split / "train.csv"), "--create-missing"),
        "stock_s": manage(py, env, "shell", "-c", STOCK),
        "retrain_s": manage(py, env, "retrain", "--window-days", "36500"),
    }
    export = ["export_recommendations", "--limit", "10", "--users", str(users_file), "--out", str(out_file)]
    timings["export_s"] = manage(py, env, *export, *(["--exclude-seen"] if mask else []))
    recs = {}
    for line in out_file.read_text().splitlines():
        row = json.loads(line)
        recs[str(row["user_id"])] = [str(i) for i in row["items"]]
    return recs, timings


def run_network_alone(split: Path, mask: bool) -> tuple[dict, float]:
    """The core's defaults with the blend switched off: the network's own ranking."""
    import pandas as pd

    train = EventLog.from_csv(split / "train.csv")
    started = time.time()
    model = BehaviorRecommender(NetworkConfig(blend=False)).fit(train, propensity=False)
    seconds = time.time() - started
    test = pd.read_csv(split / "test.csv", dtype=str)
    by_user = train.histories()
    users = list(test.user_id)
    histories = [by_user.get(u, []) for u in users]
    exclude = [{i for i, _, _ in h} for h in histories] if mask else None
    lists = model.recommend(histories, 10, exclude=exclude, seen_excluded=mask)
    return {u: [item for item, _ in lst] for u, lst in zip(users, lists, strict=True)}, seconds


def add_eval_arguments(ap: argparse.ArgumentParser) -> None:
    """``--eval-dir`` and ``--data-dir``, defaulting to their environment variables."""
    ap.add_argument("--eval-dir", default=os.environ.get("RECOMMENDER_EVAL_DIR"))
    ap.add_argument("--data-dir", default=os.environ.get("RECOMMENDER_EVAL_DATA"))


def eval_folders(args: argparse.Namespace) -> tuple[Path, Path] | None:
    """The protocol's and the data sets' folders, on ``sys.path`` first; None (and a line) when absent."""
    eval_dir = Path(args.eval_dir) if args.eval_dir else None
    data_dir = Path(args.data_dir) if args.data_dir else None
    if not eval_dir or not (eval_dir / "protocol.py").is_file() or not data_dir or not data_dir.is_dir():
        print("skipped: name the protocol's folder (--eval-dir) and the data sets' (--data-dir)")
        return None
    sys.path.insert(0, str(eval_dir))
    return eval_dir, data_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--database-url", default=os.environ.get("QUALITY_DATABASE_URL"))
    add_eval_arguments(ap)
    ap.add_argument("--skip-network", action="store_true")
    a = ap.parse_args()
    folders = eval_folders(a)
    if folders is None:
        return 0
    _, data_dir = folders
    if not a.database_url:
        raise SystemExit("--database-url (or QUALITY_DATABASE_URL) must name a Postgres database to recreate")
    import pandas as pd
    import protocol
    from convert import READERS

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="quality-") as tmpd:
        tmp = Path(tmpd)
        converted: dict[str, Path] = {}
        for split_name in [x for x in a.splits.split(",") if x]:
            data_name, k, mode = SPLITS[split_name]
            if data_name not in converted:
                converted[data_name] = tmp / f"{data_name}.csv"
                READERS[data_name](data_dir).to_csv(converted[data_name], index=False)
            split = tmp / split_name
            info = protocol.split(converted[data_name], split, k, mode)
            mask = bool(info["mask_history"])
            test = pd.read_csv(split / "test.csv", dtype=str)
            users, targets = list(test.user_id), dict(zip(test.user_id, test.item_id, strict=True))
            n_items = pd.read_csv(split / "train.csv", dtype=str).item_id.nunique()
            log(f"{split_name}: {info}")
            rows: dict[str, dict] = {}
            recs, timings = run_product_path(split, mask, a.database_url, split)
            rows["product path (import_events, retrain, export_recommendations)"] = {
                "recs": recs,
                "seconds": timings["retrain_s"],
            }
            log(f"  product path {timings}")
            if not a.skip_network:
                recs, seconds = run_network_alone(split, mask)
                rows["behaviour network alone (core defaults, blend off)"] = {
                    "recs": recs,
                    "seconds": seconds,
                }
            peers = run_peers(split, mask, users, targets)
            best_peer = max(peers, key=lambda n: float(peers[n]["ndcg"].mean()))
            print(
                f"\n### {split_name} ({info['users']} users, {info['items']} items,"
                f" {info['train_events']} events)\n"
            )
            print(
                "| model | NDCG@10 | HR@10 | cov@10 | vs best rerun peer: ratio, 90 % interval of the"
                " difference | vs RecBole SASRec | s |"
            )
            print("|---|---|---|---|---|---|---|")
            for name, row in {**rows, **peers}.items():
                m = protocol.metrics(row["recs"], test, n_items)
                ndcg = per_user_ndcg(row["recs"], users, targets)
                ours = name in rows
                versus, recbole = "", ""
                if ours:
                    low, high = paired_interval(ndcg, peers[best_peer]["ndcg"])
                    ratio = ndcg.mean() / max(peers[best_peer]["ndcg"].mean(), 1e-12)
                    versus = f"{ratio:.2f}x {best_peer}, [{low:+.4f}, {high:+.4f}]"
                    recbole = f"{ndcg.mean() / RECBOLE_SASREC[split_name]:.2f}x"
                seconds = f"{row['seconds']:.0f}" if "seconds" in row else ""
                print(
                    f"| {name} | {m['NDCG@10']:.4f} | {m['HR@10']:.4f} | {m['coverage@10']:.3f} | {versus} |"
                    f" {recbole} | {seconds} |"
                )
            recbole = RECBOLE_SASREC[split_name]
            print(f"| RecBole SASRec (peer results file, not rerun) | {recbole:.4f} | | | | | |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
