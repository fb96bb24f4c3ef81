"""The network's repeat mode: a pointer over the shopper's own steps, gated against the catalogue.

Shoppers come back to what they viewed: on a shop log a third or more of next steps are items
already in the history. A softmax over the whole catalogue ranks those with the same tied
embedding that must also rank every new item, so the network alone learnt to ignore repeats
and fell below "recently viewed". RepeatNet (Ren et al., AAAI 2019) splits the next-item
distribution into two modes, and so does this head:

    P(y | t) = g_t * P_repeat(y | t) + (1 - g_t) * P_catalogue(y | t)

``P_repeat`` is an attention of the step's hidden state over the embedded steps of the window
(items, types, time gaps and positions), with a learned bias per number of steps back; an item
seen several times collects the weight of each occurrence. ``g_t`` is a learned gate. The
next-item loss is the cross-entropy of the mixture, so the gate learns how often shoppers of
this shop come back. Among items *not* in the history the mixture ranks exactly as the
catalogue logits do (it adds the same ``log(1 - g)`` minus the row's log-partition to each), so
lists that exclude seen items are unchanged by the head at inference; only the training signal
changes (the catalogue softmax no longer has to explain repeats).

The attention runs in float32 even under bfloat16 autocast: its log-probabilities are summed
with the catalogue's and a bfloat16 log of a small probability loses the ranking.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# a finite stand-in for log(0): ``logsumexp`` over only -inf has a NaN gradient
_LOG_ZERO = -1.0e4


class RepeatHead(nn.Module):
    """Repeat-mode pointer and mode gate over hidden states of width ``dim``.

    Parameters
    ----------
    dim : int
        Width of the hidden states and of the embedded steps.
    max_length : int
        Longest window; distances of ``max_length - 1`` steps or more share one bias.
    """

    def __init__(self, dim: int, max_length: int) -> None:
        super().__init__()
        self.max_length = max_length
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, 1)
        self.distance = nn.Embedding(max_length, 1)
        self.scale = dim**-0.5
        nn.init.zeros_(self.distance.weight)

    def _attention(
        self, queries: torch.Tensor, steps: torch.Tensor, allowed: torch.Tensor, distance: torch.Tensor
    ) -> torch.Tensor:
        """Log-softmax attention (B, Q, L) of ``queries`` (B, Q, d) over ``steps`` (B, L, d)."""
        scores = (self.query(queries) @ self.key(steps).transpose(1, 2)) * self.scale
        scores = scores + self.distance(distance.clamp(0, self.max_length - 1)).squeeze(-1)
        scores = scores.masked_fill(~allowed, _LOG_ZERO)
        return torch.log_softmax(scores, dim=-1)

    def target_log_probs(
        self, hidden: torch.Tensor, steps: torch.Tensor, items: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``log P_repeat(label_t | t)`` and the gate logit at every position, each (B, L).

        Parameters
        ----------
        hidden, steps : FloatTensor of shape (B, L, d)
            Hidden states and embedded input steps (left-padded).
        items, labels : LongTensor of shape (B, L)
            Input items (0 = padding) and next items.
        """
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            hidden, steps = hidden.float(), steps.float()
            length = items.shape[1]
            pos = torch.arange(length, device=items.device)
            distance = pos[:, None] - pos[None, :]
            allowed = (distance >= 0)[None] & (items > 0)[:, None, :]
            allowed = allowed | torch.eye(length, dtype=torch.bool, device=items.device)[None]
            log_att = self._attention(hidden, steps, allowed, distance)
            hits = allowed & (items[:, None, :] == labels[:, :, None])
            log_repeat = torch.logsumexp(log_att.masked_fill(~hits, _LOG_ZERO), dim=-1)
            return log_repeat, self.gate(hidden).squeeze(-1)

    def step_log_probs(
        self, last: torch.Tensor, steps: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate logit (B,) and ``log P_repeat`` of each step's item (B, L) after the newest step.

        An item seen at several steps gets the summed weight at each of them; padded steps get
        ``-inf``.
        """
        with torch.autocast(device_type=last.device.type, enabled=False):
            last, steps = last.float(), steps.float()
            length = items.shape[1]
            distance = (length - 1 - torch.arange(length, device=items.device))[None]
            valid = items > 0
            allowed = valid.clone()
            allowed[:, -1] = True  # the newest step is always real in a left-padded window
            log_att = self._attention(last[:, None], steps, allowed[:, None], distance).squeeze(1)
            same = (items[:, :, None] == items[:, None, :]) & valid[:, None, :]
            log_item = torch.logsumexp(log_att[:, None, :].masked_fill(~same, _LOG_ZERO), dim=-1)
            log_item = log_item.masked_fill(~valid, float("-inf"))
            return self.gate(last).squeeze(-1), log_item


def mix_log_probs(
    catalogue_log_prob: torch.Tensor, gate_logit: torch.Tensor, log_repeat: torch.Tensor
) -> torch.Tensor:
    """``log(g * P_repeat + (1 - g) * P_catalogue)`` from the two modes' log-probabilities."""
    return torch.logaddexp(
        F.logsigmoid(-gate_logit) + catalogue_log_prob, F.logsigmoid(gate_logit) + log_repeat
    )


def mix_into_scores(
    scores: torch.Tensor, gate_logit: torch.Tensor, log_repeat: torch.Tensor, items: torch.Tensor
) -> torch.Tensor:
    """Turn catalogue logits (B, n_items) into the mixture's log-probabilities, in place.

    ``items`` (B, L) are the window's item indices (0 = padding; column ``j`` of ``scores`` is item
    ``j + 1``) and ``log_repeat`` their :meth:`RepeatHead.step_log_probs`.
    """
    catalogue_mode_(scores, gate_logit)
    return add_repeat_mass(scores, torch.arange(len(scores)), gate_logit, log_repeat, items)


def catalogue_mode_(scores: torch.Tensor, gate_logit: torch.Tensor) -> torch.Tensor:
    """Catalogue logits (B, n_items) to ``log((1 - g) * P_catalogue)``, in place."""
    return scores.sub_(torch.logsumexp(scores, dim=1, keepdim=True)).add_(F.logsigmoid(-gate_logit)[:, None])


def add_repeat_mass(
    scores: torch.Tensor,
    rows: torch.Tensor,
    gate_logit: torch.Tensor,
    log_repeat: torch.Tensor,
    items: torch.Tensor,
) -> torch.Tensor:
    """Add the repeat mode's mass to rows ``rows`` of catalogue log-probabilities, in place.

    ``scores[rows[i]]`` already holds ``log((1 - g) * P_catalogue)`` of window ``i`` of ``items``;
    ``gate_logit`` and ``log_repeat`` belong to those windows.
    """
    which, steps = (items > 0).nonzero(as_tuple=True)
    if len(which):
        cells = (rows[which], items[which, steps] - 1)
        repeat = F.logsigmoid(gate_logit)[which] + log_repeat[which, steps]
        # an item at several steps writes the same value each time
        scores[cells] = torch.logaddexp(scores[cells], repeat)
    return scores
