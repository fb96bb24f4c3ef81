"""Model files across releases: an artefact that does not load never stops serving or a start-up."""

from __future__ import annotations

import json
import shutil

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from recommendations.core.artifacts import FORMAT_VERSION, METADATA
from recommendations.models import ModelVersion, TrainingRun
from recommendations.services import model_fallback
from recommendations.services.artifact_store import store_artifact
from recommendations.services.registry import clear_model_cache, get_active_model
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def future_version(saved_model_dir, tmp_path):
    """``future_version(number, **fields)``: an active version whose artefact a newer release wrote."""

    def make(number: int, **fields) -> ModelVersion:
        folder = tmp_path / f"future-{number}"
        shutil.copytree(saved_model_dir, folder)
        meta = json.loads((folder / METADATA).read_text())
        meta["format_version"] = FORMAT_VERSION + 1
        (folder / METADATA).write_text(json.dumps(meta))
        stored = store_artifact(folder, number=number)
        return ModelVersion.objects.create(
            number=number,
            status="active",
            promoted_at=timezone.now(),
            artifact_path=stored.path,
            artifact_files=stored.files,
            sha256=stored.sha256,
            **fields,
        )

    return make


def _failures(kind: str) -> float:
    return model_fallback.LOAD_FAILURES.labels(kind)._value.get()


def test_a_newer_format_serves_the_newest_older_version_and_queues_one_retrain(
    version_factory, future_version, django_capture_on_commit_callbacks
):
    # given v1 and v2 that served before, v3 a candidate never promoted, and an active v4 of a newer release
    version_factory(1, status="retired", promoted_at=timezone.now())
    version_factory(2, status="retired", promoted_at=timezone.now())
    version_factory(3)
    broken = future_version(4, status_reason="promoted")
    failures = _failures("newer_format")
    # when two processes ask for the active model
    with django_capture_on_commit_callbacks() as queued:
        first = get_active_model()
        again = get_active_model()
        clear_model_cache()  # another process
        other = get_active_model()
    # then each serves v2, the newest promoted version that loads, and the failure is noted and counted
    assert first is again and first is not None and first.version_number == 2
    assert other is not None and other.version_number == 2
    broken.refresh_from_db()
    assert broken.status == "active"
    assert "newer_format" in broken.status_reason and "written by a newer release" in broken.status_reason
    assert broken.status_reason.endswith("\npromoted")
    assert _failures("newer_format") == failures + 2  # once per process
    # and one retrain was queued, by the first process only
    assert len(queued) == 1


def test_a_corrupt_active_artefact_with_nothing_older_falls_back_to_popularity_and_retrains(
    version_factory, django_capture_on_commit_callbacks
):
    # given the only version, active, whose metadata was damaged in storage
    version = version_factory(1, status="active")
    path = f"{version.artifact_path}/{METADATA}"
    default_storage.delete(path)
    default_storage.save(path, ContentFile(b"{not json"))
    failures = _failures("unreadable")
    # when the active model is asked for, and the queued retrain runs (eager Celery)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        served = get_active_model()
        again = get_active_model()
    # then popularity serves (no model), the failure is counted once, one retrain ran
    assert served is None and again is None
    assert _failures("unreadable") == failures + 1
    assert len(queued) == 1
    assert list(TrainingRun.objects.values_list("triggered_by", flat=True)) == ["load-failure:v1"]


def test_a_retrain_is_not_queued_again_within_the_guard(version_factory, django_capture_on_commit_callbacks):
    # given a retrain already queued for an unloadable version
    first = version_factory(1, status="active")
    assert model_fallback.request_retrain(first)
    # when another version fails to load within the guard period
    with django_capture_on_commit_callbacks() as queued:
        queued_again = model_fallback.request_retrain(first)
    # then nothing more is queued
    assert queued_again is False
    assert queued == []


def test_start_up_and_checks_do_not_touch_an_unloadable_model(future_version, capsys):
    # given an active version that this release cannot read
    future_version(1)
    # when the system checks run and the WSGI application is imported
    call_command("check")
    from shop.wsgi import application

    # then neither raised nor loaded the model
    assert application is not None
    assert "System check identified no issues" in capsys.readouterr().out
    assert ModelVersion.objects.get(number=1).status_reason == ""
