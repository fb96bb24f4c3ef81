"""The training job: one stage per launch, under torchrun on two gloo processes or on a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recommendations.core.packed_events import pack_event_log
from recommendations.core.recommender import BehaviorRecommender
from recommendations.core.trainer import training_precision
from recommendations.core.training_job import main, run_stage
from tests.recommendations.core.conftest import T0, fast_config, planted_log

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def job_folder(tmp_path_factory):
    """The planted cycles packed, and a small configuration as JSON."""
    folder = tmp_path_factory.mktemp("job")
    pack_event_log(planted_log(), folder / "data")
    config = fast_config(blend=False, epochs=8, repeat_head=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
    return folder


def _job(folder: Path, out: str, *, stage: str = "fit", model: str | None = None, processes: int = 1) -> str:
    command = [str(TORCHRUN), "--nproc-per-node", str(processes)] if processes > 1 else [sys.executable]
    command += ["-m", "recommendations.core.training_job", "--data", str(folder / "data")]
    command += ["--config", str(folder / "config.json"), "--out", str(folder / out), "--stage", stage]
    if model:
        command += ["--model", str(folder / model)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stdout


def _next_item_of_cycle(model: BehaviorRecommender) -> str:
    history = [("sku-004", "view", T0), ("sku-005", "view", T0 + 60)]
    return model.recommend([history], n=1, exclude=[{"sku-004", "sku-005"}])[0][0][0]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is installed with torch")
def test_two_processes_train_a_network_as_good_as_one_that_loads_and_recommends(job_folder):
    # given / when: the fit on one process, then fit and refit on two gloo processes
    single = json.loads(_job(job_folder, "single").strip().splitlines()[-1])
    double = json.loads(_job(job_folder, "double", processes=2).strip().splitlines()[-1])
    _job(job_folder, "double-final", stage="refit", model="double", processes=2)

    # then: rank 0 alone wrote each artefact; the quality is that of one process on these cycles
    assert (single["ranks"], double["ranks"]) == (1, 2)
    assert single["validation"]["HR@10"] >= 0.95
    assert double["validation"]["HR@10"] >= 0.95
    final = BehaviorRecommender.load(job_folder / "double-final")
    assert "propensity" in final.report_  # the refit finished the model
    assert final.network_.repeat is not None
    assert _next_item_of_cycle(final) == "sku-006"


def test_a_stage_runs_in_process_without_torchrun(job_folder):
    # given / when
    fitted = run_stage("fit", job_folder / "data", fast_config(blend=False, epochs=8))

    # then: the holdout is left out of the fit, as the retrain service leaves it out
    assert fitted.report_["n_events"] < len(planted_log())
    assert _next_item_of_cycle(fitted) == "sku-006"


def test_bad_stages_are_refused(job_folder, capsys):
    # given
    arguments = ["--data", str(job_folder / "data"), "--config", str(job_folder / "config.json")]

    # when / then
    with pytest.raises(ValueError, match="stage must be one of fit, refit"):
        run_stage("tune", job_folder / "data", fast_config())
    assert main([*arguments, "--out", str(job_folder / "x"), "--stage", "refit"]) == 2
    assert "--stage refit needs --model" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_on_cuda_trains_the_network(precision):
    # given
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    config = fast_config(blend=False, device="cuda", train_precision=precision, epochs=15)

    # when
    model = BehaviorRecommender(config).fit(planted_log())

    # then: weights stay float32, the loss is finite and the cycles are learnt
    assert training_precision(config, torch.device("cuda")) == precision
    assert model.report_["validation"]["network"]["HR@10"] >= 0.9
    assert {p.dtype for p in model.network_.parameters()} == {torch.float32}
    assert _next_item_of_cycle(model) == "sku-006"
