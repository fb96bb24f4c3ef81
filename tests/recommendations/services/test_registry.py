"""The model registry: activation, rollback, the single-active constraint and safe loading."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from recommendations.models import ModelVersion
from recommendations.services.artifact_store import manifest_digest
from recommendations.services.registry import RegistryError, activate_version, get_active_model, rollback
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def _statuses() -> list[tuple[int, str]]:
    return list(ModelVersion.objects.order_by("number").values_list("number", "status"))


def _overwrite(version: ModelVersion, name: str, payload: bytes) -> None:
    path = f"{version.artifact_path}/{name}"
    default_storage.delete(path)
    assert default_storage.save(path, ContentFile(payload)) == path


# --- activation and rollback --------------------------------------------------------------------


def test_activation_retires_the_previous_active_version(version_factory):
    # given v1 active and v2 a candidate
    first = version_factory(1, status="active")
    second = version_factory(2)

    # when v2 is activated by staff
    activated = activate_version(second, by="admin:alice")

    # then v2 is the only active version and remembers whom it replaced
    assert _statuses() == [(1, "retired"), (2, "active")]
    assert activated.promoted_by == "admin:alice"
    assert activated.promoted_at is not None
    assert activated.replaced_version_id == first.pk
    first.refresh_from_db()
    assert first.status_reason == "replaced by v2 (admin:alice)"


def test_rollback_reactivates_the_replaced_version_and_walks_back(version_factory):
    # given v1 then v2 then v3 activated in turn
    versions = [version_factory(n) for n in (1, 2, 3)]
    for version in versions:
        activate_version(version, by="test")

    # when rolled back twice, then once more with nothing left
    back_to_two = rollback(by="admin:bob")
    after_first = _statuses()
    back_to_one = rollback(by="admin:bob")
    after_second = _statuses()
    nothing = rollback(by="admin:bob")

    # then each rollback re-activates the predecessor, and the last one changes nothing
    assert back_to_two.number == 2
    assert after_first == [(1, "retired"), (2, "active"), (3, "retired")]
    assert back_to_one.number == 1
    assert after_second == [(1, "active"), (2, "retired"), (3, "retired")]
    assert nothing is None
    assert _statuses() == after_second
    third = ModelVersion.objects.get(number=3)
    assert third.status_reason == "rolled back to v2 by admin:bob"
    assert ModelVersion.objects.get(number=2).status_reason == "rolled back to v1 by admin:bob"
    assert (
        ModelVersion.objects.get(number=1).status_reason == "re-activated by a rollback from v2 (admin:bob)"
    )


def test_rollback_without_an_active_version_does_nothing(version_factory):
    # given only a candidate / when rolled back / then nothing happens
    version_factory(1)
    assert rollback(by="test") is None
    assert _statuses() == [(1, "candidate")]


def test_database_refuses_two_active_versions(version_factory):
    # given an active version and a candidate
    version_factory(1, status="active")
    second = version_factory(2)

    # when the candidate is forced active behind the services' back / then the constraint refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(status="active")
    assert _statuses() == [(1, "active"), (2, "candidate")]


def test_activating_a_corrupt_version_changes_nothing(version_factory):
    # given v1 active and v2 whose weights were damaged in the storage
    version_factory(1, status="active")
    second = version_factory(2)
    _overwrite(second, "weights.pt", b"garbage")

    # when v2 is activated / then it is refused and v1 stays active
    with pytest.raises(
        RegistryError, match=r"v2 cannot be activated: artefact file weights\.pt fails its checksum"
    ):
        activate_version(second, by="admin:alice")
    assert _statuses() == [(1, "active"), (2, "candidate")]


# --- loading --------------------------------------------------------------------------------------


def test_active_model_is_loaded_once_and_follows_activation(
    version_factory,
    django_capture_on_commit_callbacks,
):
    # given v1 active (and the default few seconds between checks of the active version)
    version_factory(1, status="active")
    second = version_factory(2)

    # when the active model is asked for twice, then after v2 is activated and committed
    first_load = get_active_model()
    again = get_active_model()
    with django_capture_on_commit_callbacks(execute=True):
        activate_version(second, by="test")
    after = get_active_model()

    # then the same loaded object serves until the version changes
    assert first_load is again
    assert first_load.version_number == 1
    assert after.version_number == 2
    assert after.recommender.recommend([[("SKU-R001", "view", 1.7e9)]], 3)[0]


def test_no_active_version_gives_none(db, fresh_registry):
    assert get_active_model() is None


def test_corrupt_artefact_is_refused_logged_once_and_recorded(version_factory, caplog):
    # given an active version whose weights no longer match their checksum
    version = version_factory(1, status="active", status_reason="promoted")
    _overwrite(version, "weights.pt", b"not the weights")

    # when the active model is asked for twice
    with caplog.at_level(logging.ERROR, logger="recommendations.services.model_fallback"):
        first = get_active_model()
        second = get_active_model()

    # then None both times, one log line, and the error is on the version
    assert first is None and second is None
    refusals = [
        r
        for r in caplog.records
        if r.name == "recommendations.services.model_fallback" and r.levelname == "ERROR"
    ]
    assert [r.getMessage() for r in refusals] == [
        "model v1 refused (unreadable): artefact file weights.pt fails its checksum "
        f"(sha256 {hashlib.sha256(b'not the weights').hexdigest()[:12]}…)"
    ]
    version.refresh_from_db()
    assert version.status_reason.startswith("Artefact refused on load (")
    assert "artefact file weights.pt fails its checksum" in version.status_reason
    assert version.status_reason.endswith("\npromoted")
    assert version.status == "active"


def test_missing_artefact_is_refused(version_factory):
    # given an active version whose files were deleted from the storage
    version = version_factory(1, status="active")
    default_storage.delete(f"{version.artifact_path}/metadata.json")

    # when / then
    assert get_active_model() is None
    version.refresh_from_db()
    assert "artefact file metadata.json is missing" in version.status_reason


class _Payload:
    """Unpickling this would create a folder: proof that the payload ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_payload_as_weights_is_refused_and_never_executed(version_factory, tmp_path):
    # given an active version whose weights were replaced by a malicious pickle, with every
    # checksum (metadata, manifest, version row) forged to match, so only the loader stands guard
    version = version_factory(1, status="active")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(str(marker)))
    digest = hashlib.sha256(payload).hexdigest()
    _overwrite(version, "weights.pt", payload)
    with default_storage.open(f"{version.artifact_path}/metadata.json") as handle:
        metadata = json.loads(handle.read())
    metadata["weights_sha256"] = digest
    forged_metadata = json.dumps(metadata).encode()
    _overwrite(version, "metadata.json", forged_metadata)
    files = {"weights.pt": digest, "metadata.json": hashlib.sha256(forged_metadata).hexdigest()}
    ModelVersion.objects.filter(pk=version.pk).update(artifact_files=files, sha256=manifest_digest(files))

    # (the payload is live: plain pickle would run it)
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(str(control))))
    assert control.is_dir()

    # when the active model is loaded
    loaded = get_active_model()

    # then it is refused, the payload did not run, and the refusal is recorded
    assert loaded is None
    assert not marker.exists()
    version.refresh_from_db()
    assert "weights.pt: refused (UnpicklingError" in version.status_reason


def test_artefact_is_copied_from_a_storage_without_local_paths(version_factory, settings, tmp_path):
    # given a remote-like storage (no local path) holding an active version
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    version = version_factory(1, status="active")

    # when the active model is loaded
    loaded = get_active_model()

    # then it came from a verified copy in the local cache folder
    assert loaded.version_number == 1
    cached = Path(settings.RECOMMENDER["MODEL_CACHE_DIR"]) / f"v00001-{version.sha256[:16]}"
    assert sorted(p.name for p in cached.iterdir()) == ["metadata.json", "weights.pt"]
