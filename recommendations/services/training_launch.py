"""Where the retrain service's fits run: in its own process, or handed to a training job.

With ``RECOMMENDER["TRAINING_LAUNCHER"]`` empty, :func:`fit_recommender` and
:func:`refit_recommender` train in the calling process, the network reading its sequences from
memory-mapped files in the run's scratch folder. With a launcher, e.g. ``"torchrun
--nproc-per-node 2"``, each is a job of its own,
``<launcher> -m recommendations.core.training_job --data ... --config ... --out ...``, that reads
the packed events the service streamed into the scratch folder, trains with DistributedDataParallel
and writes the artefact; the service loads it (tensors and JSON, never pickle) and goes on as
before: the registry, the promotion guard and the training lock do not know where the fit ran.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
from pathlib import Path

from recommendations.conf import recommender_settings
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import EventLog
from recommendations.core.progress import Progress
from recommendations.core.recommender import BehaviorRecommender

logger = logging.getLogger(__name__)

__all__ = ["EVENTS_FOLDER", "TrainingJobError", "fit_recommender", "launcher_command", "refit_recommender"]

#: folder of the scratch directory holding the packed training window (read by a launched job)
EVENTS_FOLDER = "events"
JOB_MODULE = "recommendations.core.training_job"
# lines of a failed job's output kept in the run's error
_ERROR_LINES = 20


class TrainingJobError(RuntimeError):
    """A launched training job exited with an error; the message ends with its last output lines."""


def launcher_command() -> list[str]:
    """The configured launcher as words (empty: fit in process)."""
    return shlex.split(recommender_settings.TRAINING_LAUNCHER or "")


def fit_recommender(
    train_log: EventLog, config: NetworkConfig, *, scratch: Path, progress: Progress | None = None
) -> BehaviorRecommender:
    """A recommender fitted on ``train_log`` without its propensity head (a refit adds it).

    Launched, the job rebuilds ``train_log`` from the packed events in ``scratch`` with the same
    holdout, so both ways fit the same events.
    """
    if not launcher_command():
        return BehaviorRecommender(config).fit(
            train_log, progress=progress, propensity=False, workdir=scratch / "fit"
        )
    return _run_job("fit", config, scratch=scratch, progress=progress)


def refit_recommender(
    recommender: BehaviorRecommender,
    log: EventLog,
    *,
    scratch: Path,
    progress: Progress | None = None,
) -> BehaviorRecommender:
    """``recommender`` continued on every event of ``log`` (the packed window of ``scratch``)."""
    if not launcher_command():
        return recommender.refit(log, progress=progress, workdir=scratch / "refit")
    fitted = scratch / "fitted-model"
    if not fitted.exists():
        recommender.save(fitted)
    return _run_job("refit", recommender.config_, scratch=scratch, progress=progress, model=fitted)


def _run_job(
    stage: str,
    config: NetworkConfig,
    *,
    scratch: Path,
    progress: Progress | None,
    model: Path | None = None,
) -> BehaviorRecommender:
    """Launch one stage of the training job and load the artefact it wrote."""
    config_file = scratch / f"{stage}-config.json"
    config_file.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    out = scratch / f"{stage}-model"
    command = [
        *launcher_command(),
        # torchrun and a Python interpreter both run a module given as ``-m``
        "-m",
        JOB_MODULE,
        "--data",
        str(scratch / EVENTS_FOLDER),
        "--config",
        str(config_file),
        "--out",
        str(out),
        "--stage",
        stage,
    ]
    if model is not None:
        command += ["--model", str(model)]
    logger.info("training job: %s", shlex.join(command))
    if progress:
        progress(stage, 0.0)
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        tail = "\n".join((finished.stdout + finished.stderr).strip().splitlines()[-_ERROR_LINES:])
        raise TrainingJobError(f"the {stage} job exited with status {finished.returncode}:\n{tail}")
    if progress:
        progress(stage, 1.0)
    return BehaviorRecommender.load(out)
