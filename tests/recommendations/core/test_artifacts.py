"""Artefacts: identical scores after a round trip; missing, corrupted and pickled files are refused."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from recommendations.core.artifacts import (
    FORMAT_VERSION,
    METADATA,
    WEIGHTS,
    ArtifactError,
    ArtifactFormatError,
    sha256_of,
)
from recommendations.core.recommender import BehaviorRecommender
from tests.recommendations.core.conftest import T0

HISTORIES = [[("sku-002", "view", T0), ("sku-003", "add_to_cart", T0 + 30)], []]


@pytest.fixture(scope="module")
def model(network_model):
    return network_model


def test_round_trip_gives_identical_scores(model, tmp_path):
    # given
    meta = model.save(tmp_path / "v1")

    # when
    loaded = BehaviorRecommender.load(tmp_path / "v1")

    # then
    assert loaded.recommend(HISTORIES, n=8, now=T0) == model.recommend(HISTORIES, n=8, now=T0)
    assert loaded.similar_items("sku-004", 5) == model.similar_items("sku-004", 5)
    np.testing.assert_array_equal(
        loaded.propensity(HISTORIES, now=T0 + 60), model.propensity(HISTORIES, now=T0 + 60)
    )
    assert loaded.item_ids_ == model.item_ids_ and loaded.report_ == json.loads(json.dumps(model.report_))
    assert meta["weights_sha256"] == sha256_of(tmp_path / "v1" / WEIGHTS)
    assert {"torch", "numpy"} <= set(meta["libraries"])
    assert sorted(p.name for p in (tmp_path / "v1").iterdir()) == [METADATA, WEIGHTS]


def test_missing_artifact_is_refused(tmp_path):
    # given / when / then
    with pytest.raises(ArtifactError, match="incomplete"):
        BehaviorRecommender.load(tmp_path / "nothing-here")


def test_corrupted_weights_are_refused(model, tmp_path):
    # given
    model.save(tmp_path / "v1")
    weights = tmp_path / "v1" / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))

    # when / then
    with pytest.raises(ArtifactError, match="sha256"):
        BehaviorRecommender.load(tmp_path / "v1")


class _Payload:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_payload_is_refused_without_running_it(model, tmp_path):
    # given: a weights file holding a pickled object, with a matching checksum in the metadata
    model.save(tmp_path / "v1")
    marker = tmp_path / "pwned"
    weights = tmp_path / "v1" / WEIGHTS
    weights.write_bytes(pickle.dumps({"network.x": _Payload(marker)}, protocol=2))
    meta_path = tmp_path / "v1" / METADATA
    meta = json.loads(meta_path.read_text())
    meta["weights_sha256"] = sha256_of(weights)
    meta_path.write_text(json.dumps(meta))

    # when / then
    with pytest.raises(ArtifactError, match="refused"):
        BehaviorRecommender.load(tmp_path / "v1")
    assert not marker.exists()


def _rewrite(folder, edit_meta, keep_tensor=lambda name: True) -> None:
    """Rewrite an artefact in place as another release would have written it (checksum kept valid)."""
    import torch

    tensors = torch.load(folder / WEIGHTS, weights_only=True)
    torch.save({k: v for k, v in tensors.items() if keep_tensor(k)}, folder / WEIGHTS)
    meta = json.loads((folder / METADATA).read_text())
    edit_meta(meta)
    meta["weights_sha256"] = sha256_of(folder / WEIGHTS)
    (folder / METADATA).write_text(json.dumps(meta))


def test_an_artefact_of_the_first_layout_loads(model, tmp_path):
    # given an artefact as the first releases wrote it: no format_version, one blend for every
    # list, the network head only for propensity, a network without the repeat mode
    model.save(tmp_path / "old")

    def first_layout(meta):
        for key in ("format_version", "novel_weights", "propensity_model"):
            meta.pop(key, None)

    _rewrite(tmp_path / "old", first_layout, lambda name: not name.startswith("network.repeat."))
    # when
    loaded = BehaviorRecommender.load(tmp_path / "old")
    # then it scores, with the defaults the missing keys stand for
    assert loaded.network_.repeat is None
    assert loaded.novel_weights_ == loaded.blend_weights_
    assert loaded.propensity_head_.model_ == "network"
    assert [len(items) for items in loaded.recommend(HISTORIES, 3)] == [3, 3]


@pytest.mark.parametrize("written", [FORMAT_VERSION + 1, "2"])
def test_an_artefact_of_a_newer_format_is_refused_with_its_own_error(model, tmp_path, written):
    # given an artefact whose format this code does not know
    model.save(tmp_path / "new")
    _rewrite(tmp_path / "new", lambda meta: meta.update(format_version=written))
    # when / then
    with pytest.raises(ArtifactFormatError, match="format"):
        BehaviorRecommender.load(tmp_path / "new")
