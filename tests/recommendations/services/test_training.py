"""The training service, its lock, its task, the admin's retrain action and the commands."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from behavior.items import item_key
from recommendations.models import ModelVersion, TrainingRun
from recommendations.services.promotion import decide_promotion
from recommendations.services.registry import get_active_model
from recommendations.services.training import ALREADY_RAN_THIS_PERIOD, ANOTHER_TRAINING_RUNNING, train_model
from recommendations.services.training_guard import abandon_stale_runs, training_lock
from tests import factories
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def _stored_files() -> list[str]:
    """Every file under the artefact prefix of the default storage."""
    found: list[str] = []

    def walk(folder: str) -> None:
        try:
            folders, files = default_storage.listdir(folder)
        except FileNotFoundError:
            return
        found.extend(f"{folder}/{name}" for name in files)
        for sub in folders:
            walk(f"{folder}/{sub}")

    walk("recommender/models")
    return sorted(found)


# --- outcomes of a run ------------------------------------------------------------------------


def test_empty_event_table_ends_with_not_enough_data(tiny_network, fresh_registry):
    # given no events at all / when a training runs
    run = train_model(triggered_by="test")

    # then the run says why, and no version exists
    assert run.status == TrainingRun.Status.NOT_ENOUGH_DATA
    assert run.error == "0 usable events; MIN_TRAINING_EVENTS is 50"
    assert run.event_count == 0
    assert run.finished_at is not None
    assert ModelVersion.objects.count() == 0


@pytest.mark.swappable
def test_too_little_data_leaves_the_active_model_in_place(tiny_network, version_factory, ring_events):
    # given an active version and only 3 shoppers' events (below MIN_TRAINING_USERS = 5)
    active = version_factory(1, status="active")
    ring_events(users=3, steps=20)

    # when a training runs
    run = train_model()

    # then nothing is registered and the active version is untouched
    assert run.status == TrainingRun.Status.NOT_ENOUGH_DATA
    assert run.error == "3 shoppers; MIN_TRAINING_USERS is 5"
    assert list(ModelVersion.objects.values_list("number", "status")) == [(1, "active")]
    assert get_active_model().version_id == active.pk


@pytest.mark.swappable
def test_successful_run_registers_an_active_version_with_metrics(tiny_network, fresh_registry, ring_events):
    # given 20 shoppers walking a ring of 30 items
    ring_events()

    # when a training runs
    run = train_model(triggered_by="test")

    # then the run succeeded and produced version 1, active, with metrics on the same holdout
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert (run.event_count, run.user_count, run.item_count) == (160, 20, 27)  # items 0..26 are walked
    assert set(run.timings) == {"load", "holdout", "fit", "evaluate", "refit", "save", "register"}
    assert run.worker_pid is not None and run.worker_host
    version = run.model_version
    assert version.number == 1
    assert version.status == ModelVersion.Status.ACTIVE
    assert version.promoted_by == f"training run {run.pk}"
    assert version.status_reason.endswith("no version was active")
    assert set(version.metrics) == {"HR@10", "NDCG@10", "MRR@10", "coverage@10", "users"}
    assert version.metrics["users"] == 20
    assert set(version.baseline_metrics) == {"popularity", "covisitation"}
    assert version.metrics["NDCG@10"] > version.baseline_metrics["popularity"]["NDCG@10"]
    assert version.active_metrics is None
    assert version.hyperparameters["embedding_dim"] == 16
    assert version.report
    # and the artefact is complete in the storage, listed with its checksums
    assert sorted(version.artifact_files) == ["metadata.json", "weights.pt"]
    assert _stored_files() == sorted(f"{version.artifact_path}/{name}" for name in version.artifact_files)
    # and the serving side can load it
    loaded = get_active_model()
    assert (loaded.version_id, loaded.version_number) == (version.pk, 1)


def test_a_compressed_version_is_stored_compressed_and_serves(
    tiny_network, fresh_registry, ring_events, settings
):
    # given MODEL_COMPRESSION int8
    settings.RECOMMENDER = {**settings.RECOMMENDER, "MODEL_COMPRESSION": "int8"}
    ring = ring_events()

    # when a training runs
    run = train_model(triggered_by="test")

    # then the stored metadata says int8, and the active model loads from it and recommends
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    version = run.model_version
    with default_storage.open(f"{version.artifact_path}/metadata.json") as fh:
        meta = json.load(fh)
    assert meta["compression"]["scheme"] == "int8"
    assert "torch.float32" in meta["compression"]["dtypes"].values()
    served = get_active_model()
    assert served.version_number == version.number
    history = [(item_key(ring["items"][0]), "view", timezone.now().timestamp())]
    assert len(served.recommender.recommend([history], n=5)[0]) == 5


def test_the_served_model_also_learns_each_shoppers_newest_step(
    tiny_network, fresh_registry, ring_events, item_factory
):
    # given the ring walk, and three shoppers whose newest step is an item nobody touched before
    # (three: enough shoppers for any rare-item filter the search may choose)
    ring = ring_events()
    newcomer = item_factory()
    for shopper in ring["users"][:3]:
        factories.EventFactory(user=shopper, item=newcomer, occurred_at=timezone.now() - timedelta(hours=1))

    # when a training runs (its promotion holdout is each shopper's newest novel step)
    run = train_model(triggered_by="test")

    # then the holdout scored the model without that step, and the served model knows the item
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    served = get_active_model().recommender
    assert item_key(newcomer) in served.item_ids_
    assert run.model_version.report["n_events"] == run.event_count


def test_promotion_guard_keeps_a_worse_model_as_candidate(
    tiny_network,
    fresh_registry,
    ring_events,
    recommender_settings_override,
):
    # given version 1 trained and active
    ring_events()
    first = train_model().model_version
    assert first.status == ModelVersion.Status.ACTIVE

    # when a second run must beat the active version by 50% (a negative tolerance makes it unbeatable:
    # the same data and seed give the same score)
    with recommender_settings_override(**tiny_network, PROMOTION_TOLERANCE=-0.5):
        run = train_model()

    # then version 2 is a candidate, with the reason and the active version's score on the same holdout
    second = run.model_version
    first.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED
    assert second.status == ModelVersion.Status.CANDIDATE
    assert second.compared_with_id == first.pk
    assert second.active_metrics["users"] == second.metrics["users"] == 20
    assert f"is worse than the active v1 ({second.active_metrics['NDCG@10']:.4f})" in second.status_reason
    assert "beyond the tolerance of -50.0%" in second.status_reason
    assert first.status == ModelVersion.Status.ACTIVE
    assert get_active_model().version_number == 1


@pytest.mark.parametrize(
    ("metrics", "active_metrics", "active_number", "promote", "reason"),
    [
        (
            {"NDCG@10": 0.3},
            None,
            None,
            True,
            "NDCG@10 0.3000 beats popularity (0.2000); no version was active",
        ),
        (
            {"NDCG@10": 0.2},
            None,
            None,
            False,
            "NDCG@10 0.2000 does not beat the popularity baseline (0.2000)",
        ),
        (
            {"NDCG@10": 0.392},
            {"NDCG@10": 0.4},
            3,
            True,
            "NDCG@10 0.3920 beats popularity (0.2000) and is not worse than the active v3 "
            "(0.4000, tolerance 2.0%)",
        ),
        (
            {"NDCG@10": 0.39},
            {"NDCG@10": 0.4},
            3,
            False,
            "NDCG@10 0.3900 is worse than the active v3 (0.4000) beyond the tolerance of 2.0% "
            "(needs at least 0.3920)",
        ),
        (
            {"NDCG@10": 0.3},
            None,
            3,
            True,
            "NDCG@10 0.3000 beats popularity (0.2000); the active v3 could not be scored (broken)",
        ),
        ({}, None, None, False, "the new model has no NDCG@10"),
    ],
)
def test_promotion_decision(metrics, active_metrics, active_number, promote, reason):
    # given the scores of one holdout / when the guard decides
    decision = decide_promotion(
        metrics=metrics,
        baseline_metrics={"popularity": {"NDCG@10": 0.2}},
        active_metrics=active_metrics,
        active_number=active_number,
        active_error="broken" if active_number and active_metrics is None else "",
        metric="NDCG@10",
        tolerance=0.02,
    )

    # then
    assert (decision.promote, decision.reason) == (promote, reason)


def test_failure_while_storing_fails_the_run_and_leaves_no_partial_artefact(
    tiny_network,
    version_factory,
    ring_events,
    monkeypatch,
):
    # given an active version, enough events, and a storage that breaks on the second file
    active = version_factory(1, status="active")
    files_before = _stored_files()
    ring_events()
    real_save = default_storage.save
    calls = []

    def failing_save(name, content, **kwargs):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save(name, content, **kwargs)

    monkeypatch.setattr(default_storage, "save", failing_save)

    # when a training runs
    run = train_model()

    # then the run failed with the error, the first copied file is gone and v1 is still active
    assert run.status == TrainingRun.Status.FAILED
    assert run.error.startswith("OSError: disk full")
    assert run.model_version is None
    assert _stored_files() == files_before
    assert list(ModelVersion.objects.values_list("number", "status")) == [(1, "active")]
    assert get_active_model().version_id == active.pk


# --- one run at a time --------------------------------------------------------------------------


def test_second_concurrent_training_returns_at_once_without_training(
    tiny_network, fresh_registry, ring_events
):
    # given enough events and another training holding the lock
    ring_events()
    with training_lock() as held:
        assert held is not None

        # when a second training is asked for
        run = train_model(triggered_by="second")

    # then it was skipped without loading or training anything
    assert run.status == TrainingRun.Status.SKIPPED
    assert run.error == ANOTHER_TRAINING_RUNNING
    assert run.timings == {}
    assert run.event_count is None
    assert ModelVersion.objects.count() == 0


def test_a_second_delivery_of_the_same_period_is_skipped_and_the_next_period_trains(
    tiny_network, fresh_registry, ring_events
):
    # given enough events and a scheduled run that succeeded just now
    ring_events()
    first = train_model(triggered_by="schedule", once_within_seconds=60)
    assert first.status == TrainingRun.Status.SUCCEEDED

    # when the same schedule's task arrives again within the guard (a racing beat), and a
    # run of another trigger asks at the same time
    duplicate = train_model(triggered_by="schedule", once_within_seconds=60)
    manual = train_model(triggered_by="manual", once_within_seconds=60)

    # then only the duplicate is skipped, with the reason; nothing was trained for it
    assert duplicate.status == TrainingRun.Status.SKIPPED
    assert duplicate.error == ALREADY_RAN_THIS_PERIOD
    assert duplicate.timings == {}
    assert manual.status == TrainingRun.Status.SUCCEEDED

    # when the first run lies further back than the guard (the next period)
    TrainingRun.objects.filter(pk=first.pk).update(started_at=timezone.now() - timedelta(seconds=61))
    TrainingRun.objects.filter(pk=manual.pk).update(triggered_by="manual-done")
    later = train_model(triggered_by="schedule", once_within_seconds=60)

    # then it trains
    assert later.status == TrainingRun.Status.SUCCEEDED
    assert ModelVersion.objects.count() == 3


def test_a_failed_run_does_not_count_as_the_period_s_run(tiny_network, fresh_registry, ring_events):
    # given a scheduled run of this period that failed
    ring_events()
    TrainingRun.objects.create(
        triggered_by="schedule", status=TrainingRun.Status.FAILED, finished_at=timezone.now()
    )

    # when the period's other delivery arrives / then it trains
    assert train_model(triggered_by="schedule", once_within_seconds=60).status == TrainingRun.Status.SUCCEEDED


def test_lock_is_released_after_a_run(tiny_network, fresh_registry):
    # given a finished run / when the lock is taken again
    train_model()
    with training_lock() as held:
        # then it is free
        assert held is not None


def test_stale_running_runs_are_abandoned_at_the_next_start(tiny_network, fresh_registry):
    # given a run whose heartbeat stopped an hour ago and one that beat a minute ago
    stale = TrainingRun.objects.create(heartbeat_at=timezone.now() - timedelta(hours=1))
    alive = TrainingRun.objects.create(heartbeat_at=timezone.now() - timedelta(minutes=1))

    # when the next training starts
    train_model()

    # then only the stale one is abandoned, with the reason
    stale.refresh_from_db()
    alive.refresh_from_db()
    assert stale.status == TrainingRun.Status.ABANDONED
    assert stale.error.startswith("no heartbeat for more than 30 minutes")
    assert stale.finished_at is not None
    assert alive.status == TrainingRun.Status.RUNNING
    assert abandon_stale_runs() == 0


# --- the task and the admin ---------------------------------------------------------------------


def test_retrain_task_calls_the_training_service(tiny_network, fresh_registry):
    # given no events / when the task runs (eagerly, as in the embedded setup)
    from recommendations.tasks import retrain_model

    result = retrain_model.apply(kwargs={"triggered_by": "schedule"}).get()

    # then one run was recorded by the service and summarised by the task
    run = TrainingRun.objects.get()
    assert result == {"run": run.pk, "status": "not_enough_data", "version": None, "version_status": None}
    assert run.triggered_by == "schedule"


def test_retrain_task_is_registered_with_its_permanent_name_and_limits():
    # given the task / then its name, delivery guarantees and limits come from the contract
    from recommendations.tasks import retrain_model

    assert retrain_model.name == "recommendations.retrain_model"
    assert retrain_model.acks_late is True
    assert retrain_model.reject_on_worker_lost is True
    assert retrain_model.soft_time_limit == 3 * 3600
    assert retrain_model.time_limit == 3 * 3600 + 300
    assert retrain_model.max_retries == 3


def test_admin_retrain_action_only_enqueues_after_commit(
    client,
    staff_user,
    tiny_network,
    version_factory,
    django_capture_on_commit_callbacks,
):
    # given a version to select in the admin's change list
    version = version_factory(1)
    client.force_login(staff_user)

    # when staff run the "retrain" action
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/admin/recommendations/modelversion/",
            {"action": "retrain", "_selected_action": [version.pk]},
        )

    # then nothing trained inside the request: one task is queued for after the commit
    assert response.status_code == 302
    assert TrainingRun.objects.count() == 0
    assert len(callbacks) == 1
    callbacks[0]()
    assert TrainingRun.objects.get().triggered_by == f"admin:{staff_user.username}"


def test_admin_lists_runs_and_versions(client, staff_user, version_factory):
    # given a run with an error and a version / when staff open the lists and the run's page
    run = TrainingRun.objects.create(status="failed", error="ValueError: boom", timings={"load": 0.5})
    version_factory(1, status="active", training_run=run)
    client.force_login(staff_user)

    runs = client.get("/admin/recommendations/trainingrun/?status__exact=failed")
    versions = client.get("/admin/recommendations/modelversion/")
    detail = client.get(f"/admin/recommendations/trainingrun/{run.pk}/change/")

    # then they render the error, timings and metric columns
    assert runs.status_code == versions.status_code == detail.status_code == 200
    assert "ValueError: boom" in runs.content.decode()
    assert "<th>load</th><td>0.5</td>" in detail.content.decode()
    page = versions.content.decode()
    assert "0.5000" in page and "0.1000" in page and "0.4000" in page


def test_admin_shows_each_choice_the_training_made_with_its_validation_figures(
    client, staff_user, tiny_network, fresh_registry, ring_events
):
    # given a training with the default search (filters and repeats open)
    ring_events()
    run = train_model(triggered_by="test")
    version = run.model_version
    choices = version.report["choices"]

    # when staff open the version's page
    client.force_login(staff_user)
    page = client.get(f"/admin/recommendations/modelversion/{version.pk}/change/").content.decode()

    # then each choice is a row with its value, how it was made and the candidates' figures
    assert "Rare-item and short-history filters" in page
    filters = choices["filters"]
    assert filters["searched"] is True
    for candidate, figure in filters["validation"].items():
        assert f"{candidate}: {figure:.4f}" in page
    assert f"min_item_users {filters['value']['min_item_users']}" in page
    assert "Weight of the shopper&#x27;s own recent items (repeats)" in page
    assert "chosen on validation" in page
    # the hyperparameters stored are the resolved ones, not the open settings
    assert version.hyperparameters["min_item_users"] == filters["value"]["min_item_users"]


# --- commands -------------------------------------------------------------------------------------


def test_retrain_command_prints_the_metrics_table_and_the_promotion(
    tiny_network, fresh_registry, ring_events
):
    # given enough events
    ring_events()
    out = StringIO()

    # when the command runs
    call_command("retrain", stdout=out)

    # then it shows the new model next to both baselines and says it was promoted
    text = out.getvalue()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    assert header.split() == ["model", "NDCG@10", "HR@10", "MRR@10", "coverage@10"]
    assert any(line.startswith("new model v1 ") for line in lines)
    assert any(line.startswith("popularity ") for line in lines)
    assert any(line.startswith("covisitation ") for line in lines)
    assert "Promoted: v1 is active." in text
    assert ModelVersion.objects.get().status == "active"


def test_retrain_command_exits_non_zero_without_a_version(tiny_network, fresh_registry):
    # given no events / when the command runs / then it fails with the reason and exit status 3
    with pytest.raises(CommandError) as error:
        call_command("retrain", stdout=StringIO())
    assert str(error.value) == "No new version: 0 usable events; MIN_TRAINING_EVENTS is 50"
    assert error.value.returncode == 3


def _write_ring_csv(path, *, users=20, items=30, steps=8):
    lines = ["user_id,item_id,event_type,timestamp"]
    for u in range(users):
        for step in range(steps):
            lines.append(f"u{u},i{(u + step) % items},view,{1_700_000_000 + u * 3600 + step * 60}")
    path.write_text("\n".join(lines) + "\n")


def test_evaluate_command_prints_one_table(tiny_network, tmp_path):
    # given a small events CSV
    csv_path = tmp_path / "events.csv"
    _write_ring_csv(csv_path)
    out = StringIO()

    # when it is evaluated on the 2-core of the log (--k-core 2)
    call_command("evaluate", str(csv_path), "--k-core", "2", "--mode", "novel", stdout=out)

    # then one table lists the network and both baselines with the four metrics
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model"))
    assert lines[start].split() == ["model", "NDCG@10", "HR@10", "MRR@10", "coverage@10"]
    assert [line.split("  ")[0] for line in lines[start + 1 : start + 4]] == [
        "behaviour network",
        "popularity",
        "covisitation",
    ]
    for line in lines[start + 1 : start + 4]:
        values = [float(cell) for cell in line.split()[-4:]]
        assert all(0.0 <= value <= 1.0 for value in values)
    assert lines[start + 4] == "(20 test users, full ranking)"


def test_evaluate_command_rejects_a_missing_file_and_a_bad_header(tmp_path):
    # given no file, and a file with a wrong header
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,type,ts\nu1,i1,view,1\n")

    # when / then each is a clear error naming the file (and line)
    with pytest.raises(CommandError, match="no such file"):
        call_command("evaluate", str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match=r"bad\.csv:1: header lacks column\(s\) user_id, item_id"):
        call_command("evaluate", str(bad))


@pytest.mark.swappable
def test_export_recommendations_writes_json_lines(tiny_network, fresh_registry, ring_events, tmp_path):
    # given a trained, active model over 20 shoppers
    data = ring_events()
    train_model()
    out_path = tmp_path / "recs.jsonl"

    # when every user's top 5 are exported, seen items excluded
    call_command(
        "export_recommendations", "--limit", "5", "--out", str(out_path), "--exclude-seen", stdout=StringIO()
    )

    # then one JSON line per user with items, scores and the model version, never a seen item
    lines = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [line["user_id"] for line in lines] == sorted(user.username for user in data["users"])
    seen = {}
    for event in data["events"]:
        seen.setdefault(event.user.username, set()).add(item_key(event.item))
    for line in lines:
        assert set(line) == {"user_id", "items", "scores", "model_version"}
        assert line["model_version"] == 1
        assert len(line["items"]) == len(line["scores"]) == 5
        assert line["scores"] == sorted(line["scores"], reverse=True)
        assert not set(line["items"]) & seen[line["user_id"]]
        assert set(line["items"]) <= set(data["keys"])


def test_export_recommendations_for_listed_users_and_unknown_user(
    tiny_network, fresh_registry, ring_events, tmp_path
):
    # given events but no trained model, and a users file naming one known user
    ring_events(users=3)
    users_file = tmp_path / "users.txt"
    users_file.write_text("ring001\n")
    out_path = tmp_path / "recs.jsonl"

    # when exported for that user through the serving fallback
    call_command(
        "export_recommendations",
        "--limit",
        "3",
        "--out",
        str(out_path),
        "--users",
        str(users_file),
        stdout=StringIO(),
    )

    # then one line, from the serving service (no model version)
    lines = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [(line["user_id"], line["model_version"]) for line in lines] == [("ring001", None)]
    assert len(lines[0]["items"]) == len(lines[0]["scores"]) <= 3
    # and an unknown username is an error naming the line
    users_file.write_text("ring001\nnobody\n")
    with pytest.raises(CommandError, match=r"users\.txt:2: unknown user 'nobody'"):
        call_command("export_recommendations", "--out", str(out_path), "--users", str(users_file))


def test_retrain_command_prints_training_progress(tiny_network, fresh_registry, ring_events):
    # given enough events
    ring_events()
    out, err = StringIO(), StringIO()
    # when the command runs
    call_command("retrain", stdout=out, stderr=err)
    # then each training stage is reported on stderr while the report stays on stdout
    progress = err.getvalue().splitlines()
    assert progress[0] == "  prepare: 0%"
    # the dropout candidates train in the "search" stage, the refit on every event in "refit"
    assert "  search: 100%" in progress
    assert "  refit: 100%" in progress
    assert progress[-1] == "  done: 100%"
    assert "train:" not in out.getvalue()
    assert "Promoted: v1 is active." in out.getvalue()
