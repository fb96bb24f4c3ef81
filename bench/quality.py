"""Offline quality of the behaviour recommender next to the peers, under /work/shared/eval/PROTOCOL.md.

One run: converts the shared data sets (never into the repo: splits go to a temporary folder), makes the
protocol splits, reruns the classic peers of anchors.py (tuned on valid), fits our BehaviorRecommender
(its configuration chosen on tune_train -> valid only, never on test), scores both on test with full
ranking, and prints one markdown table per split. Then the purchase-propensity comparison of
propensity_anchor.py (same cut, same peers, same features), our ROC-AUC over several seeds.

usage: nice -n 5 .venv/bin/python bench/quality.py [--splits ml5novel,tb2novel,tb2any] [--no-peers]
       [--no-propensity] [--seeds 5] [--threads 2] [--recbole VENV_PYTHON] [--grid]
Skips cleanly (exit 0) when /work/shared/eval or /work/shared/data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL = Path(os.environ.get("SHARED_EVAL", "/work/shared/eval"))
DATA = Path(os.environ.get("SHARED_DATA", "/work/shared/data"))

from recommendations.core.config import NetworkConfig  # noqa: E402
from recommendations.core.dataset import EventLog  # noqa: E402
from recommendations.core.evaluation import evaluate  # noqa: E402
from recommendations.core.metrics import pr_auc, roc_auc  # noqa: E402
from recommendations.core.recommender import BehaviorRecommender  # noqa: E402

SPLITS = {
    "ml5novel": ("ml-latest-small", 5, "novel"),
    "tb2novel": ("taobao-userbehavior-head", 2, "novel"),
    "tb2any": ("taobao-userbehavior-head", 2, "any"),
}
# RESULTS.md figures for RecBole SASRec (used unless --recbole reruns it)
RECBOLE = {
    "ml5novel": (0.0589, 0.1082, 0.0442, 0.458, 2168),
    "tb2novel": (0.0310, 0.0422, 0.0274, 0.630, 678),
    "tb2any": (0.0496, 0.0975, None, None, 726),
}
GOALS = {"ml5novel": 0.065, "tb2novel": 0.0310, "tb2any": 0.0848}


def base_config(split: str, threads: int) -> dict:
    """Per-data-set starting point (long histories on MovieLens, short sparse ones on Taobao)."""
    common = dict(threads=threads, device="cpu", min_item_users=1, min_user_events=1)
    if split.startswith("ml"):
        # long histories: 100-step windows, few epochs suffice; no refit (each user keeps ~150 steps)
        # the 3,650-way softmax dominates the cost: 1,000 shared sampled negatives keep epochs short
        return dict(
            common,
            max_sequence_length=100,
            dropout=0.2,
            windows_per_user=4,
            mode="novel",
            batch_size=64,
            epochs=12,
            patience=3,
            refit_full=False,
            learning_rate=2e-3,
            sampled_softmax_threshold=1000,
            num_negatives=1000,
        )
    # sparse log: strong dropout; 1,000 shared sampled negatives instead of the 5,700-way softmax
    return dict(
        common,
        max_sequence_length=50,
        dropout=0.5,
        mode=SPLITS[split][2],
        batch_size=128,
        epochs=30,
        patience=6,
        sampled_softmax_threshold=1000,
        num_negatives=1000,
    )


def grid(split: str, threads: int, full: bool) -> list[dict]:
    base = base_config(split, threads)
    if not full:
        return [base]
    # training all positions in one pass leaves few optimizer steps per epoch on small logs (758 users
    # = 6 batches of 128): the second candidate takes 4x more, smaller steps
    return [base, dict(base, batch_size=32, learning_rate=2e-3, patience=max(base["patience"], 5))]


def load_split(d: Path) -> dict:
    import pandas as pd

    out = {"train": EventLog.from_csv(d / "train.csv"), "tune": EventLog.from_csv(d / "tune_train.csv")}
    for name in ("test", "valid"):
        df = pd.read_csv(d / f"{name}.csv", dtype=str)
        out[name] = dict(zip(df.user_id, df.item_id, strict=True))
    out["info"] = json.loads((d / "split.json").read_text())
    return out


def run_peers(d: Path, mask: bool) -> list[dict]:
    import anchors
    import pandas as pd

    anchors.MASK = mask
    train = pd.read_csv(d / "train.csv", dtype=str)
    tune = pd.read_csv(d / "tune_train.csv", dtype=str)
    test = pd.read_csv(d / "test.csv", dtype=str)
    valid = pd.read_csv(d / "valid.csv", dtype=str)
    users = {u: i for i, u in enumerate(sorted(train.user_id.unique()))}
    items = {it: i for i, it in enumerate(sorted(set(train.item_id)))}
    inv = {i: it for it, i in items.items()}
    test = test[test.user_id.isin(users)]
    valid = valid[valid.user_id.isin(users) & valid.item_id.isin(items)]
    try:
        import implicit  # noqa: F401

        has_implicit = True
    except ImportError:
        has_implicit = False
    rows = []
    for name, (fn, params) in anchors.GRIDS.items():
        if (name == "Recent" and mask) or (name in ("ALS", "BPR") and not has_implicit):
            continue
        best = max(params, key=lambda p: anchors.evaluate(fn, p, tune, valid, users, items, inv)["NDCG@10"])
        t1 = time.time()
        res = anchors.evaluate(fn, best, train, test, users, items, inv)
        rows.append({"model": f"{name} {best}" if best else name, **res, "fit_s": round(time.time() - t1, 1)})
    if not has_implicit:
        rows.append({"model": "ALS/BPR skipped: the implicit package is not installed"})
    return rows


def run_ours(split: str, data: dict, threads: int, full_grid: bool, log) -> dict:
    mask = data["info"]["mask_history"]
    configs = grid(split, threads, full_grid)
    chosen, tune_scores = configs[0], []
    if len(configs) > 1:
        for cfg in configs:
            rec = BehaviorRecommender(NetworkConfig(**cfg)).fit(data["tune"])
            res = evaluate(
                lambda h, n, ex, r=rec: r.recommend(h, n, exclude=ex),
                data["tune"],
                data["valid"],
                mask_history=mask,
            )
            tune_scores.append(res["NDCG@10"])
            log(f"  tune {split} {cfg} -> valid NDCG@10 {res['NDCG@10']}")
        chosen = configs[int(np.argmax(tune_scores))]
    t0 = time.time()
    rec = BehaviorRecommender(NetworkConfig(**chosen)).fit(
        data["train"], progress=lambda stage, f: log(f"    {split} {stage} {f:.2f} {time.time() - t0:.0f}s")
    )
    fit_s = time.time() - t0
    res = evaluate(
        lambda h, n, ex: rec.recommend(h, n, exclude=ex), data["train"], data["test"], mask_history=mask
    )
    rep = rec.report_
    log("    epochs: " + json.dumps([(h["epoch"], h.get("valid_ndcg@10")) for h in rep["train_history"]]))
    log(
        f"  ours {split}: selected={rep['selected']} weights={rep['blend_weights']} epochs={rep['epochs']} "
        f"ips={rep['interactions_per_second']} internal validation={json.dumps(rep.get('validation'))}"
    )
    return {
        "model": f"**BehaviorRecommender** ({rep['selected']})",
        **res,
        "fit_s": round(fit_s, 1),
        "config": {k: v for k, v in chosen.items() if k not in ("threads", "device")},
        "report": rep,
    }


def table(split: str, rows: list[dict]) -> str:
    head = "| model | NDCG@10 | HR@10 | MRR@10 | cov@10 | fit s |\n|---|---|---|---|---|---|"
    lines = [head]
    for r in rows:
        if "NDCG@10" not in r:
            lines.append(f"| {r['model']} | | | | | |")
            continue

        def f(v):
            return "–" if v is None else v

        lines.append(
            f"| {r['model']} | {r['NDCG@10']} | {r['HR@10']} | {f(r.get('MRR@10'))} | "
            f"{f(r.get('coverage@10'))} | {f(r.get('fit_s'))} |"
        )
    return "\n".join(lines)


def propensity(tmp: Path, seeds: int, threads: int, log, epochs: int = 3) -> dict:
    import pandas as pd
    import propensity_anchor as pa
    from convert import taobao

    df = taobao(DATA)
    csv = tmp / "taobao.csv"
    df.to_csv(csv, index=False)
    ev = pd.read_csv(csv, dtype={"user_id": str, "item_id": str})
    ev = ev[(ev.timestamp >= pa.CUT - 7 * pa.DAY) & (ev.timestamp < pa.END)]
    # peers, exactly as propensity_anchor.main
    xtr = pa.features(ev, pa.CUT - 2 * pa.DAY)
    ytr = pa.labels(ev, xtr.index, pa.CUT - 2 * pa.DAY, pa.CUT)
    xte = pa.features(ev, pa.CUT)
    yte = pa.labels(ev, xte.index, pa.CUT, pa.END)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict = {"test_users": len(xte), "test_pos_rate": round(float(yte.mean()), 3), "peers": {}}
    for name, m in {
        "HistGradientBoosting": HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=0
        ),
        "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    }.items():
        m.fit(xtr, ytr)
        p = m.predict_proba(xte)[:, 1]
        out["peers"][name] = {
            "roc_auc": round(roc_auc(yte.values, p), 4),
            "pr_auc": round(pr_auc(yte.values, p), 4),
        }
    out["peers"]["recency_only"] = {"roc_auc": round(roc_auc(yte.values, -xte.recency_h.values), 4)}
    # ours: fit on every event before CUT (the same 7-day window), predict at CUT for the same users
    past = ev[ev.timestamp < pa.CUT]
    log_ = EventLog(
        past.user_id.to_numpy(object),
        past.item_id.astype(str).to_numpy(object),
        past.event_type.to_numpy(object),
        past.timestamp.to_numpy(float),
    )
    by_user = log_.histories()
    users = list(xte.index)
    hist = [by_user.get(u, []) for u in users]
    y = yte.loc[users].values
    aucs, praucs, secs = [], [], []
    for seed in range(seeds):
        cfg = NetworkConfig(
            **dict(
                base_config("tb2novel", threads),
                random_seed=seed,
                # the propensity head needs the encoder's summary, not a tuned next-item ranking
                epochs=epochs,
                refit_full=False,
                propensity_horizon_days=(pa.END - pa.CUT) / pa.DAY,
            )
        )
        t0 = time.time()
        rec = BehaviorRecommender(cfg).fit(log_)
        secs.append(time.time() - t0)
        p = rec.propensity(hist, now=float(pa.CUT))
        aucs.append(roc_auc(y, p))
        praucs.append(pr_auc(y, p))
        log(
            f"  propensity seed {seed}: ROC-AUC {aucs[-1]:.4f} PR-AUC {praucs[-1]:.4f}"
            f" head {rec.report_['propensity']}"
        )
    out["ours"] = {
        "roc_auc_mean": round(float(np.mean(aucs)), 4),
        "roc_auc_std": round(float(np.std(aucs)), 4),
        "roc_auc_min": round(float(np.min(aucs)), 4),
        "roc_auc_max": round(float(np.max(aucs)), 4),
        "pr_auc_mean": round(float(np.mean(praucs)), 4),
        "seeds": seeds,
        "fit_s_mean": round(float(np.mean(secs)), 1),
    }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-propensity", action="store_true")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--propensity-epochs", type=int, default=3)
    ap.add_argument(
        "--grid", action="store_true", help="choose between two configurations on tune_train/valid"
    )
    ap.add_argument("--recbole", metavar="PYTHON", help="python of a numpy<2 venv with RecBole: rerun SASRec")
    a = ap.parse_args()
    if not (EVAL / "protocol.py").is_file() or not DATA.is_dir():
        print(f"skipped: {EVAL} or {DATA} is absent")
        return 0
    sys.path.insert(0, str(EVAL))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    import protocol
    from convert import READERS

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = {}
    with tempfile.TemporaryDirectory(prefix="quality-") as tmpd:
        tmp = Path(tmpd)
        converted: dict[str, Path] = {}
        for split in [x for x in a.splits.split(",") if x]:
            name, k, mode = SPLITS[split]
            if name not in converted:
                converted[name] = tmp / f"{name}.csv"
                READERS[name](DATA).to_csv(converted[name], index=False)
            d = tmp / split
            info = protocol.split(converted[name], d, k, mode)
            log(f"{split}: {info}")
            data = load_split(d)
            rows = []
            t0 = time.time()
            ours = run_ours(split, data, a.threads, a.grid, log)
            log(f"  ours done in {time.time() - t0:.0f}s: NDCG@10 {ours['NDCG@10']}")
            rows.append(ours)
            if not a.no_peers:
                rows += run_peers(d, info["mask_history"])
            if a.recbole:
                import subprocess

                proc = subprocess.run(
                    [a.recbole, str(EVAL / "recbole_anchor.py"), str(d), "SASRec"],
                    capture_output=True,
                    text=True,
                )
                rows.append({"model": "RecBole SASRec (rerun)", "raw": proc.stdout[-500:]})
            else:
                nd, hr, mrr, cov, fs = RECBOLE[split]
                rows.append(
                    {
                        "model": "RecBole SASRec (RESULTS.md figure, not rerun)",
                        "NDCG@10": nd,
                        "HR@10": hr,
                        "MRR@10": mrr,
                        "coverage@10": cov,
                        "fit_s": fs,
                    }
                )
            results[split] = rows
            print(
                f"\n### {split} ({info['users']} users, {info['items']} items,"
                f" {info['train_events']} train events;"
                f" goal NDCG@10 >= {GOALS[split]})\n"
            )
            print(table(split, rows), flush=True)
            print(
                f"\nour configuration: {json.dumps(ours['config'])}; selected {ours['report']['selected']}: "
                f"{ours['report']['reason']}",
                flush=True,
            )
        if not a.no_propensity:
            prop = propensity(tmp, a.seeds, a.threads, log, a.propensity_epochs)
            results["propensity"] = prop
            print(
                "\n### Purchase propensity, Taobao"
                " (features before 1512144000, label purchase until 1512316800)\n"
            )
            print(json.dumps(prop, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
