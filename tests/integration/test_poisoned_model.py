"""A model file replaced by a malicious pickle is refused unexecuted; serving falls back."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from recommendations.models import ModelVersion
from recommendations.services import artifact_store, registry

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


class _Payload:
    """Unpickling this runs ``os.system('touch MARKER')``: what an attacker would ship."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _poison(path: Path, marker: Path) -> None:
    torch.save({"item_embedding.weight": _Payload(marker)}, path)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _register(folder: Path, number: int) -> ModelVersion:
    stored = artifact_store.store_artifact(folder, number=number)
    version = ModelVersion.objects.create(
        number=number, artifact_path=stored.path, artifact_files=stored.files, sha256=stored.sha256
    )
    return version


def _stored_path(version: ModelVersion, name: str) -> Path:
    from django.core.files.storage import default_storage

    return Path(default_storage.path(f"{version.artifact_path}/{name}"))


@pytest.mark.parametrize("checksums_match", [False, True], ids=["file-swapped", "checksums-forged"])
def test_poisoned_weights_are_refused_not_executed_and_serving_falls_back(
    checksums_match, trained_folder, shop_items, tmp_path, client
):
    # given: an active version whose weights file is replaced by a malicious pickle
    marker = tmp_path / "pwned"
    weights = trained_folder / "weights.pt"
    if checksums_match:
        # the attacker also rewrote metadata.json and the registry row: only weights_only stands
        _poison(weights, marker)
        meta = json.loads((trained_folder / "metadata.json").read_text())
        for key in [k for k in meta if "sha256" in k]:
            meta[key] = _sha(weights)
        (trained_folder / "metadata.json").write_text(json.dumps(meta))
        version = _register(trained_folder, 1)
    else:
        version = _register(trained_folder, 1)
        _poison(_stored_path(version, "weights.pt"), marker)
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.ACTIVE)
    registry.clear_model_cache()

    # when
    loaded = registry.get_active_model()
    response = client.get("/api/recommendations/?limit=4", HTTP_USER_AGENT="Mozilla/5.0")

    # then: refused, nothing ran, the API still answers with the fallback list
    assert loaded is None
    assert not marker.exists()
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "popular"
    assert body["model_version"] is None
    assert len(body["items"]) == 4
    registry.clear_model_cache()
