"""The artefact layout of a fitted ``BehaviorRecommender``: which tensor and which metadata key holds what.

The files themselves (safetensors, checksums, no pickle) are :mod:`recommendations.core.artifacts`;
this module maps the model's fitted attributes onto them and back. The names are the artefact
format: changing one makes every stored model unreadable.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from recommendations.core import artifacts, compression
from recommendations.core.candidates import CoVisitation
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import ItemIndex
from recommendations.core.propensity_head import PropensityHead

if TYPE_CHECKING:
    from recommendations.core.recommender import BehaviorRecommender

_NETWORK = "network."


def _csr_tensors(prefix: str, m: sp.csr_matrix) -> dict[str, torch.Tensor]:
    m = m.tocsr()
    return {
        f"{prefix}.indptr": torch.from_numpy(m.indptr.astype(np.int64)),
        f"{prefix}.indices": torch.from_numpy(m.indices.astype(np.int64)),
        f"{prefix}.data": torch.from_numpy(m.data.astype(np.float32)),
        f"{prefix}.shape": torch.tensor(m.shape, dtype=torch.int64),
    }


def _csr_from(prefix: str, t: dict[str, torch.Tensor]) -> sp.csr_matrix:
    shape = tuple(int(x) for x in t[f"{prefix}.shape"].tolist())
    return sp.csr_matrix(
        (t[f"{prefix}.data"].numpy(), t[f"{prefix}.indices"].numpy(), t[f"{prefix}.indptr"].numpy()),
        shape=shape,
    )


def _compressible(model: BehaviorRecommender, tensors: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Which of the artefact's tensors :mod:`~recommendations.core.compression` may store smaller."""
    modules = list(model.network_.named_modules())

    def weights_of(kind: type[torch.nn.Module]) -> list[str]:
        return [f"{_NETWORK}{name}.weight" for name, module in modules if isinstance(module, kind)]

    linear, embeddings = weights_of(torch.nn.Linear), weights_of(torch.nn.Embedding)
    matrices = ("covisitation", "together", "transitions", "itemknn")
    return {
        "linear_weights": linear,
        "half_precision": embeddings + [f"{m}.data" for m in matrices],
        "narrow_integers": [f"{m}.{part}" for m in matrices for part in ("indices", "indptr")],
    }


def save(model: BehaviorRecommender, directory: str | Path, *, compress: str = "none") -> dict[str, Any]:
    """Write the fitted ``model``'s tensors and metadata.json into ``directory``; returns the metadata.

    ``compress``: ``"none"`` or ``"int8"`` (:mod:`recommendations.core.compression`: int8 linear
    weights, float16 tables, about half the size; the loaded model scores the rounded values).
    """
    tensors = {f"{_NETWORK}{k}": v for k, v in model.network_.state_dict().items()}
    tensors.update(_csr_tensors("covisitation", model.covisitation_.similar_matrix))
    tensors.update(_csr_tensors("together", model.covisitation_.together_matrix))
    tensors.update(_csr_tensors("transitions", model.transitions_))
    tensors.update(_csr_tensors("itemknn", model.itemknn_))
    tensors["popularity"] = torch.from_numpy(np.asarray(model.popularity_, dtype=np.float64))
    tensors["trend.cols"] = torch.from_numpy(model.trend_cols_)
    tensors["trend.days"] = torch.from_numpy(model.trend_days_)
    tensors["trend.weights"] = torch.from_numpy(np.asarray(model.trend_weights_, dtype=np.float64))
    tensors.update(model.propensity_head_.tensors())
    tensors, packed = compression.compress(tensors, compress, **_compressible(model, tensors))
    meta = {
        "class": type(model).__name__,
        "config": model._cfg().to_dict(),
        "item_ids": model.item_ids_,
        "blend_weights": model.blend_weights_,
        "novel_weights": model.novel_weights_,
        "report": model.report_,
        **model.propensity_head_.meta(),
    }
    if packed:
        meta["compression"] = packed
    return artifacts.save_artifact(directory, tensors, meta)


def load(cls: type[BehaviorRecommender], directory: str | Path) -> BehaviorRecommender:
    """A ``cls`` instance with every fitted attribute read from the artefact in ``directory``.

    Raises
    ------
    recommendations.core.artifacts.ArtifactError
        Missing or corrupt files, checksum mismatch, pickled payloads, or inconsistent contents.
    """
    tensors, meta = artifacts.load_artifact(directory)
    try:
        tensors = compression.restore(tensors, meta.get("compression"))
        config = NetworkConfig.from_dict(meta["config"])
        model = cls(config)
        # the saved configuration is the resolved one (every searched choice filled in)
        model.config_ = config
        item_ids = [str(i) for i in meta["item_ids"]]
        model.index_ = ItemIndex(item_ids)
        # networks saved before the repeat mode existed load without it and score as they did
        net = model._new_network(
            len(item_ids), repeat=any(k.startswith(f"{_NETWORK}repeat.") for k in tensors)
        )
        net.load_state_dict({k[len(_NETWORK) :]: v for k, v in tensors.items() if k.startswith(_NETWORK)})
        model.network_ = net.eval()
        model.covisitation_ = CoVisitation(
            item_ids, _csr_from("covisitation", tensors), _csr_from("together", tensors)
        )
        model.transitions_ = _csr_from("transitions", tensors)
        model.itemknn_ = _csr_from("itemknn", tensors)
        model.popularity_ = tensors["popularity"].numpy()
        model.trend_cols_ = tensors["trend.cols"].numpy()
        model.trend_days_ = tensors["trend.days"].numpy()
        model.trend_weights_ = tensors["trend.weights"].numpy()
        model.propensity_head_ = PropensityHead.from_saved(tensors, meta)
        model.blend_weights_ = {k: float(v) for k, v in meta["blend_weights"].items()}
        # artefacts of earlier releases have one blend for every list
        novel = meta.get("novel_weights") or meta["blend_weights"]
        model.novel_weights_ = {k: float(v) for k, v in novel.items()}
        model.report_ = meta["report"]
        model.item_ids_ = item_ids
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise artifacts.ArtifactError(f"artefact in {directory} is inconsistent: {exc}") from exc
    return model
