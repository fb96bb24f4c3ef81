"""Compressed model artefacts: int8 linear weights, float16 tables, 32-bit sparse indices.

A compressed artefact holds the same tensors under the same names as a plain one, stored smaller,
and :func:`restore` gives back exactly the dtypes and shapes the loader expects (the values are
those of the compressed form). What is stored how:

- the weights of the network's linear layers: int8, symmetric, one scale per output row
  (``absmax / 127``), the scale stored beside it as ``<name>.int8_scale``;
- the network's embedding tables (the item table above all) and the sparse matrices' values:
  float16, where every value lies inside float16's range (else they stay float32);
- the sparse matrices' column indices and row pointers: int32 where they fit.

Why this and not ``torch.ao.quantization.quantize_dynamic``: its quantised modules cannot be
written as a plain tensor dict (artefacts are loaded with ``weights_only``, never pickled), the
quantised tensor types are deprecated in the pinned torch, and the network's linear layers are
``dim x dim`` (a few hundred kB): the time of a request goes into the item table's product, which
float16 does not speed up on a CPU. So the compressed form is a storage format; at load the
weights are widened back to float32 and the network runs as before, on the rounded values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

SCHEMES = ("none", "int8")
_SCALE = ".int8_scale"
_HALF_MAX = float(torch.finfo(torch.float16).max)
_INT32_MAX = 2**31 - 1


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight`` (out, in) as int8 values and one float32 scale per row: ``weight ~ q * scale``."""
    w = weight.detach().to(torch.float32)
    scale = w.abs().amax(dim=1, keepdim=True) / 127.0
    # an all-zero row keeps scale 1 (its values are 0 either way) instead of dividing by zero
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8)
    return q, scale.squeeze(1)


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 weight that ``q`` and ``scale`` (from :func:`quantize_rows`) stand for."""
    return q.to(torch.float32) * scale.to(torch.float32).unsqueeze(1)


def compress(
    tensors: dict[str, torch.Tensor],
    scheme: str,
    *,
    linear_weights: Iterable[str],
    half_precision: Iterable[str],
    narrow_integers: Iterable[str],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``tensors`` stored by ``scheme`` and the metadata :func:`restore` needs to undo it.

    Parameters
    ----------
    tensors : dict of str to Tensor
        The artefact's tensors as :mod:`recommendations.core.persistence` writes them.
    scheme : {"none", "int8"}
        ``"none"`` returns ``tensors`` unchanged and empty metadata.
    linear_weights : names
        Two-dimensional weights of linear layers: stored as int8 rows with scales.
    half_precision : names
        Floating tensors stored as float16 (each one only if all its values fit).
    narrow_integers : names
        int64 tensors stored as int32 (each one only if all its values fit).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown compression {scheme!r}; expected one of {', '.join(SCHEMES)}")
    if scheme == "none":
        return tensors, {}
    out = dict(tensors)
    original: dict[str, str] = {}
    for name in linear_weights:
        q, scale = quantize_rows(tensors[name])
        out[name], out[name + _SCALE] = q, scale
        original[name] = str(tensors[name].dtype)
    for name in half_precision:
        t = tensors[name]
        finite = t.detach().abs()
        if t.is_floating_point() and (finite.numel() == 0 or float(finite.max()) <= _HALF_MAX):
            out[name] = t.detach().to(torch.float16)
            original[name] = str(t.dtype)
    for name in narrow_integers:
        t = tensors[name]
        if t.dtype == torch.int64 and (t.numel() == 0 or int(t.abs().max()) <= _INT32_MAX):
            out[name] = t.to(torch.int32)
            original[name] = str(t.dtype)
    return out, {"scheme": scheme, "dtypes": original}


def restore(tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None) -> dict[str, torch.Tensor]:
    """The tensors of a compressed artefact in the dtypes they were saved from (no-op for plain ones).

    Raises
    ------
    ValueError
        The metadata names a tensor that is missing, a dtype torch does not know, or an int8 weight
        without its scale.
    """
    if not meta or meta.get("scheme", "none") == "none":
        return tensors
    out = {k: v for k, v in tensors.items() if not k.endswith(_SCALE)}
    for name, dtype_name in meta["dtypes"].items():
        dtype = getattr(torch, str(dtype_name).removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"compressed tensor {name}: unknown dtype {dtype_name}")
        if name not in tensors:
            raise ValueError(f"compressed tensor {name} is missing")
        t = tensors[name]
        if t.dtype == torch.int8:
            if name + _SCALE not in tensors:
                raise ValueError(f"int8 tensor {name} has no scale")
            out[name] = dequantize_rows(t, tensors[name + _SCALE]).to(dtype)
        else:
            out[name] = t.to(dtype)
    return out


def stored_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """Bytes of the tensors' data (what the scheme changes; the file adds a small header)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())
