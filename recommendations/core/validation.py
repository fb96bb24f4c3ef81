"""Next-item validation of the network: the held-out data, scoring sequences, target ranks.

Used by the training loop (early stopping), the network search and the blend choice: one
definition of how a validation target is ranked (history masked, pessimistic ties).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from recommendations.core.dataset import Sequences
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.sequences import pad_batch

__all__ = ["Validation", "score_sequences", "validation_ranks"]


def _cat_long(parts: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0, dtype=torch.long)


@dataclass
class Validation:
    """Next-item validation data: inputs, one target per shopper, masking rule.

    Attributes
    ----------
    inputs : Sequences
        Each shopper's steps before the target.
    targets : ndarray of shape (n,), int64
        Item index (>= 1) of each target.
    mask_history : bool
        Items of the input history are excluded from the ranking (novel mode).
    """

    inputs: Sequences
    targets: np.ndarray
    mask_history: bool = True
    _mask: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def history_mask(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, column) indices of every history item except the row's own target (computed once)."""
        if self._mask is None:
            rows, cols = [], []
            for r, seq in enumerate(self.inputs.items):
                hist = np.unique(seq[seq != self.targets[r]]) - 1
                rows.append(np.full(len(hist), r, dtype=np.int64))
                cols.append(hist.astype(np.int64))
            self._mask = (_cat_long(rows), _cat_long(cols))
        return self._mask


@torch.no_grad()
def score_sequences(
    network: BehaviorNetwork,
    seqs: Sequences,
    device: torch.device,
    batch_size: int = 256,
    *,
    with_logits: bool = True,
    catalogue_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Next-item logits and last hidden state for every sequence.

    Parameters
    ----------
    with_logits : bool
        ``False`` skips the catalogue-wide scoring (callers that need the hidden state only, e.g. the
        propensity head, would otherwise pay an (n, n_items) matmul and copy); logits are then empty.
    catalogue_only : bool
        The catalogue logits without the repeat mode's mixture (the scores of lists that hide the
        shopper's history, ``scoring._blended_chunks``).

    Returns
    -------
    logits : ndarray of shape (len(seqs), n_items), float32 (shape (0, n_items) without logits)
    hidden : ndarray of shape (len(seqs), dim), float32
    """
    network.eval()
    n = network.n_items
    if not len(seqs):
        return np.zeros((0, n), dtype=np.float32), np.zeros((0, network.dim), dtype=np.float32)
    # shortest first, each batch padded only to its own longest sequence: left padding is masked and
    # positions count from the newest step, so trimming leading pad columns changes no output
    lengths = np.minimum([len(it) for it in seqs.items], network.max_length)
    order = np.argsort(lengths, kind="stable")
    hidden = np.zeros((len(seqs), network.dim), dtype=np.float32)
    logits = np.zeros((len(seqs), n), dtype=np.float32) if with_logits else np.zeros((0, n), dtype=np.float32)
    for start in range(0, len(seqs), batch_size):
        rows = order[start : start + batch_size]
        width = max(int(lengths[rows].max()), 1)
        items, types, gaps = (torch.from_numpy(a).to(device) for a in pad_batch(seqs, rows, width))
        h = network.last_hidden(items, types, gaps)
        hidden[rows] = h.float().cpu().numpy()
        if with_logits:
            if catalogue_only:
                logits[rows] = network.scores(h).float().cpu().numpy()
            else:
                logits[rows] = network.next_item_scores(h, items, types, gaps).cpu().numpy()
    return logits, hidden


def validation_ranks(logits: np.ndarray | torch.Tensor, validation: Validation) -> np.ndarray:
    """0-based rank of each target among all items (history masked when asked); ties rank above it.

    Parameters
    ----------
    logits : array of shape (n, n_items)
    """
    s = torch.as_tensor(logits, dtype=torch.float32).clone()
    if validation.mask_history:
        rows, cols = validation.history_mask()
        s[rows, cols] = float("-inf")
    tgt = torch.from_numpy(validation.targets - 1)
    target_scores = s[torch.arange(len(tgt)), tgt]
    # pessimistic ties: every other item scoring the same ranks above the target (sparse sources
    # score most items 0 and would otherwise look perfect)
    return ((s >= target_scores[:, None]).sum(1) - 1).numpy().astype(np.int64)
