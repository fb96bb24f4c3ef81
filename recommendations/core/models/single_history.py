"""One shopper's last hidden state in NumPy: the behaviour network's inference for a web request.

A real-time request scores one history of at most 50 steps through a 64-wide network: about
30 tiny tensor operations, where torch's fixed cost per operation on the CPU (10 to 40 µs for
a layer norm or a 50 x 64 linear layer) is most of the time and the arithmetic is little.
NumPy's cost per call is a few µs, so the same inference written with NumPy takes about
half the time (``bench/serve.py`` reports the model time per request). The states
agree with :meth:`BehaviorNetwork.last_hidden` to float32 rounding (tested for every layer
and head count); the batch paths (training, evaluation, precompute) stay in torch.

The weights are copied once per network and again whenever a parameter changed in place
(torch's version counters), so a network trained further after serving is never scored stale.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import torch
from scipy.special import erf
from torch import nn

from recommendations.core.models.behavior_network import BehaviorNetwork, _Block

_CACHE_ATTRIBUTE = "_single_history_encoder"
_INV_SQRT2 = np.float32(1.0 / math.sqrt(2.0))


def _array(tensor: torch.Tensor) -> np.ndarray:
    """A float32 C-contiguous NumPy copy of a weight (or of its transpose)."""
    return np.array(tensor.detach().numpy(), dtype=np.float32, order="C")


class _Layer:
    """One transformer block's weights, transposed and contiguous for ``x @ W``."""

    def __init__(self, block: _Block, dim: int) -> None:
        self.heads = block.heads
        self.head_dim = dim // block.heads
        self.scale = np.float32(self.head_dim**-0.5)
        self.ln1 = (_array(block.ln1.weight), _array(block.ln1.bias), np.float32(block.ln1.eps))
        self.ln2 = (_array(block.ln2.weight), _array(block.ln2.bias), np.float32(block.ln2.eps))
        self.qkv = (_array(block.qkv.weight.T), _array(block.qkv.bias))
        self.out = (_array(block.out.weight.T), _array(block.out.bias))
        first, second = cast(nn.Linear, block.ff[0]), cast(nn.Linear, block.ff[3])
        self.ff1 = (_array(first.weight.T), _array(first.bias))
        self.ff2 = (_array(second.weight.T), _array(second.bias))


class SingleHistoryEncoder:
    """:meth:`BehaviorNetwork.last_hidden` of one unpadded sequence, computed with NumPy."""

    def __init__(self, network: BehaviorNetwork) -> None:
        dim = network.dim
        self.dim = dim
        self.max_length = network.max_length
        with torch.no_grad():
            # the item table scaled once: the same float32 products as scaling the gathered rows
            self.items = (network.item_emb.weight.detach() * math.sqrt(dim)).numpy().copy()
        self.types = _array(network.type_emb.weight)
        self.gaps = _array(network.gap_emb.weight)
        self.positions = _array(network.pos_emb.weight)
        self.layers = [_Layer(cast(_Block, block), dim) for block in network.blocks]
        self.final = (_array(network.ln.weight), _array(network.ln.bias), np.float32(network.ln.eps))
        # row means as one matrix-vector product (NumPy's reductions cost more for 50 x 64)
        self.mean = np.full(dim, 1.0 / dim, dtype=np.float32)
        self.causal = np.triu(np.full((self.max_length, self.max_length), -np.inf, dtype=np.float32), 1)

    def last_hidden(self, items: np.ndarray, types: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """Hidden state after the newest step, shape (1, dim) float32.

        ``items``, ``types``, ``gaps``: int arrays of one sequence's steps, oldest first, no
        padding, at most ``max_length`` long.
        """
        length = len(items)
        x = self.items[items] + self.types[types]
        x += self.gaps[gaps]
        x += self.positions[self.max_length - length :]
        mask = self.causal[:length, :length]
        for number, layer in enumerate(self.layers):
            newest_only = number == len(self.layers) - 1
            x = self._block(layer, x, mask, newest_only)
        return self._layer_norm(x, *self.final)

    def _block(self, layer: _Layer, x: np.ndarray, mask: np.ndarray, newest_only: bool) -> np.ndarray:
        """x + Attn(LN(x)), then x + FFN(LN(x)); ``newest_only``: the newest step's output alone."""
        dim, step = self.dim, layer.head_dim
        qkv = self._layer_norm(x, *layer.ln1) @ layer.qkv[0]
        qkv += layer.qkv[1]
        queries = qkv[-1:, :dim] if newest_only else qkv[:, :dim]
        heads = []
        for head in range(layer.heads):
            columns = slice(head * step, (head + 1) * step)
            weights = queries[:, columns] @ qkv[:, dim + head * step : dim + (head + 1) * step].T
            weights *= layer.scale
            if not newest_only:  # the newest step sees every step: no mask
                weights += mask
            weights -= weights.max(axis=1, keepdims=True)
            np.exp(weights, out=weights)
            weights /= weights.sum(axis=1, keepdims=True)
            heads.append(weights @ qkv[:, 2 * dim + head * step : 2 * dim + (head + 1) * step])
        attended = heads[0] if len(heads) == 1 else np.concatenate(heads, axis=1)
        x = (x[-1:] if newest_only else x) + (attended @ layer.out[0] + layer.out[1])
        hidden = self._layer_norm(x, *layer.ln2) @ layer.ff1[0]
        hidden += layer.ff1[1]
        # exact GELU (nn.GELU's default): x * (1 + erf(x / sqrt 2)) / 2. SciPy's erf, not torch's
        # vectorised GELU: torch's wins in a hot loop, but this runs inside a web request (cold
        # caches, after a database read), where SciPy's costs less per request
        gelu = erf(hidden * _INV_SQRT2)
        gelu += 1.0
        gelu *= hidden
        gelu *= np.float32(0.5)
        x += gelu @ layer.ff2[0]
        x += layer.ff2[1]
        return x

    def _layer_norm(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: np.float32) -> np.ndarray:
        centred = x - (x @ self.mean)[:, None]
        variance = (centred * centred) @ self.mean
        centred *= (1.0 / np.sqrt(variance + eps)).astype(np.float32)[:, None]
        centred *= weight
        centred += bias
        return centred


def _supported(network: nn.Module) -> bool:
    """The exact architecture this module mirrors, on the CPU in float32, in inference."""
    if type(network) is not BehaviorNetwork or network.training or not len(network.blocks):
        return False
    weight = network.item_emb.weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return False
    for block in network.blocks:
        if type(block) is not _Block or len(block.ff) != 4:
            return False
        gelu = block.ff[1]
        if type(gelu) is not nn.GELU or gelu.approximate != "none":
            return False
    return True


def encoder_for(network: nn.Module) -> SingleHistoryEncoder | None:
    """The NumPy encoder of ``network`` (built once, rebuilt after any in-place parameter change).

    None where the network is not exactly a CPU float32 :class:`BehaviorNetwork` in eval mode:
    the caller then runs torch. Checked per call: the mode, and each parameter's storage and
    version (an optimiser step, ``load_state_dict`` or ``.to()`` changes one of them); the
    architecture is checked when the encoder is built (submodules replaced afterwards are not
    seen: build a new network instead).
    """
    if network.training:
        return None
    held = network.__dict__.get(_CACHE_ATTRIBUTE)
    if held is not None:
        parameters, versions, encoder = held
        if _versions(parameters) == versions:
            return cast(SingleHistoryEncoder, encoder)
    if not _supported(network):
        return None
    parameters = list(network.parameters())
    encoder = SingleHistoryEncoder(cast(BehaviorNetwork, network))
    network.__dict__[_CACHE_ATTRIBUTE] = (parameters, _versions(parameters), encoder)
    return encoder


def _versions(parameters: list[torch.Tensor]) -> tuple[tuple[int, Any], ...]:
    return tuple((parameter.data_ptr(), parameter._version) for parameter in parameters)
