"""The retrain service handing its fits to a training job (torchrun, two CPU processes)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from recommendations.models import ModelVersion, TrainingRun
from recommendations.services.registry import get_active_model
from recommendations.services.training import train_model
from recommendations.services.training_launch import launcher_command
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def test_the_launcher_setting_is_split_like_a_shell_command(recommender_settings_override):
    # given / when / then
    with recommender_settings_override(TRAINING_LAUNCHER=""):
        assert launcher_command() == []
    launcher = "torchrun --nproc-per-node 2 --rdzv-endpoint 'h:29400'"
    with recommender_settings_override(TRAINING_LAUNCHER=launcher):
        assert launcher_command() == ["torchrun", "--nproc-per-node", "2", "--rdzv-endpoint", "h:29400"]


@pytest.mark.skipif(not Path(TORCHRUN).exists(), reason="torchrun is installed with torch")
def test_a_run_launched_on_two_processes_registers_a_version_that_recommends(
    tiny_network, fresh_registry, ring_events, recommender_settings_override
):
    # given: 20 shoppers walking a ring, and fits handed to torchrun with two gloo processes
    ring = ring_events()

    # when
    with recommender_settings_override(TRAINING_LAUNCHER=f"{TORCHRUN} --nproc-per-node 2"):
        run = train_model(triggered_by="test")

    # then: the run went through the guard and the registry as an in-process one does
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    version = run.model_version
    assert version.status == ModelVersion.Status.ACTIVE
    assert version.metrics["users"] == 20
    assert version.hyperparameters["embedding_dim"] == 16
    assert version.report["refit_epochs"] >= 1
    # and the served model (loaded from tensors and JSON) puts the ring's next item first
    served = get_active_model()
    assert served.version_number == version.number
    keys = ring["keys"]
    history = [(keys[k], "view", 1_700_000_000.0 + k) for k in (3, 4, 5)]
    top = served.recommender.recommend([history], n=3, exclude=[set(keys[3:6])])[0]
    assert keys[6] in [item for item, _ in top]


def test_a_failing_job_fails_the_run_and_keeps_the_registry_empty(
    tiny_network, fresh_registry, ring_events, recommender_settings_override
):
    # given: a launcher that exits with an error
    ring_events()
    false = shutil.which("false")
    assert false is not None

    # when
    with recommender_settings_override(TRAINING_LAUNCHER=false):
        run = train_model(triggered_by="test")

    # then
    assert run.status == TrainingRun.Status.FAILED
    assert "the fit job exited with status 1" in run.error
    assert not ModelVersion.objects.exists()
