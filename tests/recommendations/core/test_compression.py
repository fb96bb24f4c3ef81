"""Compressed artefacts: int8 rows within half a step, float16 only where values fit, exact round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recommendations.core import compression
from recommendations.core.artifacts import METADATA, WEIGHTS, ArtifactError
from recommendations.core.recommender import BehaviorRecommender
from tests.recommendations.core.conftest import T0

HISTORIES = [[("sku-002", "view", T0), ("sku-003", "add_to_cart", T0 + 30)], [("sku-010", "view", T0)]]


def test_int8_rows_are_within_half_a_step_of_the_weight():
    # given a weight with rows of very different scales and a row of zeros
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 40, generator=gen) * torch.tensor([[1e-3], [1.0], [30.0], [0.2], [5.0], [0.0]])

    # when
    q, scale = compression.quantize_rows(weight)
    back = compression.dequantize_rows(q, scale)

    # then each row uses its own scale, its largest value maps to +-127, and no value moves by more
    # than half a step of its row
    assert q.dtype == torch.int8 and scale.shape == (6,)
    assert q[:5].abs().amax(dim=1).tolist() == [127] * 5
    assert torch.all((back - weight).abs() <= scale.unsqueeze(1) / 2 + 1e-7)
    assert torch.equal(back[5], torch.zeros(40))


def test_values_outside_float16_and_int32_keep_their_dtype():
    # given
    tensors = {
        "small": torch.tensor([0.5, -3.0], dtype=torch.float32),
        "huge": torch.tensor([1.0, 1e6], dtype=torch.float32),
        "few": torch.tensor([3, 7], dtype=torch.int64),
        "many": torch.tensor([3, 2**40], dtype=torch.int64),
    }

    # when
    packed, meta = compression.compress(
        tensors, "int8", linear_weights=[], half_precision=["small", "huge"], narrow_integers=["few", "many"]
    )
    restored = compression.restore(packed, meta)

    # then only what fits is narrowed, and every tensor comes back in its own dtype and values
    assert {k: v.dtype for k, v in packed.items()} == {
        "small": torch.float16,
        "huge": torch.float32,
        "few": torch.int32,
        "many": torch.int64,
    }
    for name, tensor in tensors.items():
        assert restored[name].dtype == tensor.dtype and torch.equal(restored[name], tensor)


def test_unknown_scheme_and_damaged_metadata_are_refused():
    with pytest.raises(ValueError, match="unknown compression"):
        compression.compress({}, "int4", linear_weights=[], half_precision=[], narrow_integers=[])
    q = {"w": torch.zeros(2, 2, dtype=torch.int8)}
    with pytest.raises(ValueError, match="has no scale"):
        compression.restore(q, {"scheme": "int8", "dtypes": {"w": "torch.float32"}})
    with pytest.raises(ValueError, match="is missing"):
        compression.restore(q, {"scheme": "int8", "dtypes": {"v": "torch.float32"}})
    with pytest.raises(ValueError, match="unknown dtype"):
        compression.restore(q, {"scheme": "int8", "dtypes": {"w": "torch.float7"}})


def test_an_int8_artefact_loads_the_rounded_network_and_ranks_like_the_original(network_model, tmp_path):
    # given the same fitted model saved plainly and compressed
    network_model.save(tmp_path / "plain")
    meta = network_model.save(tmp_path / "int8", compress="int8")

    # when
    loaded = BehaviorRecommender.load(tmp_path / "int8")

    # then the metadata names the scheme, and the linear weights are exactly the dequantised int8 rows
    assert meta["compression"]["scheme"] == "int8"
    assert json.loads((tmp_path / "int8" / METADATA).read_text())["compression"] == meta["compression"]
    original = network_model.network_.state_dict()
    qkv = "blocks.0.qkv.weight"
    q, scale = compression.quantize_rows(original[qkv])
    assert torch.equal(loaded.network_.state_dict()[qkv], compression.dequantize_rows(q, scale))
    assert torch.equal(loaded.network_.item_emb.weight, original["item_emb.weight"].half().float())
    # and the lists keep their order on the planted cycles, with scores close to the original's
    for history in HISTORIES:
        ours = loaded.recommend([history], n=5, now=T0)[0]
        theirs = network_model.recommend([history], n=5, now=T0)[0]
        assert [key for key, _ in ours][:3] == [key for key, _ in theirs][:3]
        np.testing.assert_allclose([s for _, s in ours][:3], [s for _, s in theirs][:3], rtol=0.02, atol=0.01)

    # and the stored data is smaller (on a model this small the file's per-tensor headers weigh as much)
    def data_bytes(folder: str) -> int:
        return compression.stored_bytes(torch.load(tmp_path / folder / WEIGHTS, weights_only=True))

    assert data_bytes("int8") < 0.6 * data_bytes("plain")


def test_a_compressed_artefact_with_a_damaged_description_is_refused(network_model, tmp_path):
    # given a compressed artefact whose metadata no longer names the int8 tensors' scales correctly
    network_model.save(tmp_path / "v1", compress="int8")
    meta_path = tmp_path / "v1" / METADATA
    meta = json.loads(meta_path.read_text())
    meta["compression"]["dtypes"]["network.no-such-weight"] = "torch.float32"
    meta_path.write_text(json.dumps(meta))

    # when / then
    with pytest.raises(ArtifactError, match="no-such-weight"):
        BehaviorRecommender.load(tmp_path / "v1")
