"""A training run as its own program, for ``torchrun``: packed events in, an artefact out.

::

    torchrun --nproc-per-node 2 -m recommendations.core.training_job \\
        --data DIR --config config.json --out DIR [--stage fit|refit] [--model DIR]

``--data`` is a folder of :mod:`~recommendations.core.packed_events` (the training window), read
by every process through the page cache. ``--stage fit`` holds out each shopper's last novel event
(:func:`~recommendations.core.evaluation.holdout_last_events`, as the retrain service does) and
fits a :class:`~recommendations.core.recommender.BehaviorRecommender` on the rest, without the
propensity head; ``--stage refit`` loads the artefact in ``--model`` and continues it on every
event. Each process is one rank: it trains the network on its shard of the shoppers with
DistributedDataParallel (:mod:`~recommendations.core.distributed`), rank 0 validates, and rank 0
writes the artefact (tensors and JSON, no pickle) into ``--out``. Run without ``torchrun`` it is
one process, the same training as in the retrain service.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch.distributed as dist

from recommendations.core.config import NetworkConfig
from recommendations.core.distributed import init_from_environment
from recommendations.core.evaluation import holdout_last_events
from recommendations.core.packed_events import PackedEvents
from recommendations.core.recommender import BehaviorRecommender

__all__ = ["main", "run_stage"]

STAGES = ("fit", "refit")


def run_stage(
    stage: str, data: str | Path, config: NetworkConfig, *, model: str | Path | None = None
) -> BehaviorRecommender:
    """Fit (``"fit"``) or continue (``"refit"``, from the artefact in ``model``) on the packed events.

    Raises
    ------
    ValueError
        An unknown stage, a refit without ``model``, or too little data (from ``fit``).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    log = PackedEvents.open(data).to_event_log()
    with tempfile.TemporaryDirectory(prefix="recommender-sequences-") as workdir:
        if stage == "fit":
            train_log, _ = holdout_last_events(log)
            return BehaviorRecommender(config).fit(train_log, propensity=False, workdir=workdir)
        if model is None:
            raise ValueError("--stage refit needs --model, the artefact to continue")
        return BehaviorRecommender.load(model).refit(log, workdir=workdir)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recommendations.core.training_job", description=__doc__)
    parser.add_argument("--data", required=True, help="folder of packed events (the training window)")
    parser.add_argument("--config", required=True, help="JSON file of NetworkConfig fields")
    parser.add_argument("--out", required=True, help="folder the artefact is written to (rank 0)")
    parser.add_argument("--stage", choices=STAGES, default="fit")
    parser.add_argument("--model", help="artefact a refit continues")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stage in this process (one rank under ``torchrun``); exit status 0 on success."""
    args = _arguments(argv)
    config = NetworkConfig.from_dict(json.loads(Path(args.config).read_text(encoding="utf-8")))
    ctx = init_from_environment(config.device)
    try:
        model = run_stage(args.stage, args.data, config, model=args.model)
        if ctx.is_main:
            model.save(args.out)
            report = model.report_
            print(
                json.dumps(
                    {
                        "stage": args.stage,
                        "ranks": ctx.world_size,
                        "epochs": report.get("epochs"),
                        "interactions_per_second": report.get("interactions_per_second"),
                        "validation": report.get("validation", {}).get("network"),
                    }
                ),
                flush=True,
            )
    except ValueError as exc:
        print(f"training job: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        if ctx.active:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
