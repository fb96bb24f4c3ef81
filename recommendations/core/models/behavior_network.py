"""The behaviour network: a causal transformer over a shopper's recent events (SASRec-style).

Inputs per step: item embedding (scaled by sqrt(d)) + event-type embedding + learned position
embedding + log-scaled time-gap embedding; pre-layer-norm blocks; the next-item output is tied to the
item embedding. A second head predicts "buys within the horizon" from the last hidden state and a few
scalar features. Scoring and loss only: the loop is in ``trainer.py``.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from recommendations.core.dataset import N_GAP_BUCKETS, N_TYPES
from recommendations.core.models.repeat_head import RepeatHead, mix_into_scores, mix_log_probs


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout whose mask comes from random bytes instead of ``bernoulli_``.

    On CPU ``torch.dropout`` draws one float per element (about 15 ns each here, 8 ms for a
    128 x 50 x 64 activation); 64 random bits per 8 elements cost a twentieth of that. The drop
    probability is rounded to a multiple of 1/256 (0.2 -> 0.199, 0.5 exactly) and the kept values
    are scaled by the exact inverse of the realised keep probability, so expectations are unchanged
    (for a bfloat16 ``x`` the scale is rounded to bfloat16, within 0.2 %).
    """
    if not training or p <= 0.0:
        return x
    n = x.numel()
    # the full signed range: ``random_()`` alone stops at 2**63 - 1 and leaves every eighth byte < 128
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
    threshold = min(max(round(p * 256), 1), 255)
    # one mask already holding 0 or the scale: a single product forward and a single one backward
    # (a boolean mask times a scalar costs two of each)
    scale = torch.tensor(256.0 / (256 - threshold), dtype=x.dtype, device=x.device)
    keep = words.view(torch.uint8)[:n].view(x.shape) >= threshold
    return x * torch.where(keep, scale, torch.zeros((), dtype=x.dtype, device=x.device))


class FastDropout(nn.Module):
    """``nn.Dropout`` with the mask of :func:`fast_dropout` (no parameters, same state_dict)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


class _Block(nn.Module):
    """Pre-LN transformer block: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), FastDropout(dropout), nn.Linear(dim, dim))
        self.drop = FastDropout(dropout)
        self.p = dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``bias``: additive attention mask of shape (B, 1, L, L), 0 where allowed and -inf elsewhere."""
        b, length, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.training and self.p > 0:
            # the math of scaled_dot_product_attention, with the cheap dropout on the weights; one
            # baddbmm scales the products and adds the mask (three passes over B x L x L otherwise)
            h, dh = self.heads, d // self.heads
            scores = torch.baddbmm(
                bias.expand(b, h, length, length).reshape(b * h, length, length),
                q.reshape(b * h, length, dh),
                k.reshape(b * h, length, dh).transpose(1, 2),
                alpha=dh**-0.5,
            )
            w = torch.softmax(scores.view(b, h, length, length), dim=-1, dtype=torch.float32)
            att = fast_dropout(w, self.p, True) @ v
        else:
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.ff(self.ln2(x)))

    def forward_last(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The block's output at the newest step only, shape (B, dim), in inference.

        Keys and values still come from every step; the query, attention output and feed-forward
        run for one position instead of ``L``.
        """
        b, length, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q[:, :, -1:], k, v, attn_mask=bias[:, :, -1:])
        last = x[:, -1] + self.out(att.transpose(1, 2).reshape(b, d))
        return last + self.ff(self.ln2(last))


class BehaviorNetwork(nn.Module):
    """Causal transformer with a tied next-item head and a purchase-propensity head.

    Parameters
    ----------
    n_items : int
        Catalogue size; item indices are ``1..n_items`` and 0 is padding.
    dim, layers, heads : int
    dropout : float
    max_length : int
        Longest input sequence (learned positions).
    n_scalar : int
        Scalar features of the propensity head.
    repeat : bool
        With the repeat mode (:mod:`~recommendations.core.models.repeat_head`): next-item scores
        are the log-probabilities of the mixture of a pointer over the shopper's own steps and
        the catalogue softmax. Without it (networks saved before the head existed) they are the
        catalogue logits.
    """

    def __init__(
        self,
        n_items: int,
        dim: int = 64,
        layers: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
        max_length: int = 50,
        n_scalar: int = 0,
        repeat: bool = True,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.dim = dim
        self.max_length = max_length
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.type_emb = nn.Embedding(N_TYPES, dim, padding_idx=0)
        self.gap_emb = nn.Embedding(N_GAP_BUCKETS, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(max_length, dim)
        self.emb_drop = FastDropout(dropout)
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.prop_head = nn.Sequential(nn.Linear(dim + n_scalar, 16), nn.ReLU(), nn.Linear(16, 1))
        self.prop_linear = nn.Linear(n_scalar, 1) if n_scalar else None
        self.repeat = RepeatHead(dim, max_length) if repeat else None
        nn.init.normal_(self.item_emb.weight, std=1.0 / math.sqrt(dim))
        for emb in (self.type_emb, self.gap_emb, self.pos_emb):
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
            self.type_emb.weight[0].zero_()
            self.gap_emb.weight[0].zero_()

    def encode(self, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
        """Hidden states.

        Parameters
        ----------
        items, types, gaps : LongTensor of shape (B, L)
            Left-padded with 0, L <= max_length.

        Returns
        -------
        FloatTensor of shape (B, L, dim)
            Position t sees steps <= t only.
        """
        return self._encode(items, types, gaps, zero_padding=True)

    def _encode(
        self, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor, *, zero_padding: bool
    ) -> torch.Tensor:
        """:meth:`encode`; ``zero_padding=False`` leaves the padded steps' states as computed.

        Real steps never see padded ones (their attention weight is exactly 0, and so are the gradients
        through them), so the real steps' states, the loss and every gradient are the same either way;
        the loss skips the two passes per block (forward and backward) that zero the padded steps.
        """
        x, bias, keep = self._inputs(items, types, gaps)
        for block in self.blocks:
            x = block(x, bias)
            if zero_padding and keep is not None:
                x = x * keep
        return self.ln(x)

    def _inputs(
        self, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Embedded steps (B, L, dim), the additive causal mask (B, 1, L, L) and the real-step mask.

        The real-step mask is None for one unpadded sequence in inference (every step is real).
        """
        length = items.shape[1]
        valid = items > 0
        x = self.embed_steps(items, types, gaps)
        if not self.training and items.shape[0] == 1 and bool(valid.all()):
            # one unpadded history (a web request): the mask depends on the length only, and
            # multiplying by an all-ones mask changes nothing, so both are skipped or reused
            return x, self._causal_bias(length, x.dtype, items.device), None
        x = self.emb_drop(x) * valid[..., None]
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        # a step attends to earlier real steps and always to itself (no fully-masked rows)
        allowed = (causal[None] & valid[:, None, :]) | torch.eye(
            length, dtype=torch.bool, device=items.device
        )[None]
        bias = torch.zeros(allowed.shape, dtype=x.dtype, device=items.device).masked_fill_(
            ~allowed, float("-inf")
        )
        return x, bias[:, None], valid[..., None].to(x.dtype)

    def embed_steps(self, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
        """The input steps (B, L, dim) before dropout: item, type, gap and position embeddings."""
        length = items.shape[1]
        pos = torch.arange(self.max_length - length, self.max_length, device=items.device)
        return (
            self.item_emb(items) * math.sqrt(self.dim)
            + self.type_emb(types)
            + self.gap_emb(gaps)
            + self.pos_emb(pos)[None]
        )

    def _causal_bias(self, length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The additive mask of one unpadded sequence of ``length`` steps, (1, 1, L, L), kept per length."""
        cache = self.__dict__.setdefault("_bias_cache", {})
        key = (length, dtype, device)
        bias = cache.get(key)
        if bias is None:
            # a normal tensor even when first built under inference_mode (autograd may use it later)
            with torch.inference_mode(False):
                causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
                bias = torch.zeros((1, 1, length, length), dtype=dtype, device=device).masked_fill_(
                    ~causal, float("-inf")
                )
            cache[key] = bias
        return bias

    def item_weights(self) -> torch.Tensor:
        """Output embedding of the real items, shape (n_items, dim) (row j is item index j + 1)."""
        return self.item_emb.weight[1:]

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-item logits over the whole catalogue, shape (..., n_items) (column j is item index j + 1)."""
        return hidden @ self.item_weights().T

    def next_item_scores(
        self, hidden: torch.Tensor, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor
    ) -> torch.Tensor:
        """Next-item scores over the catalogue after the newest step, shape (B, n_items) float32.

        ``hidden`` is :meth:`last_hidden` of the window ``items, types, gaps`` (B, L). With the
        repeat mode these are the mixture's log-probabilities (the catalogue logits shifted by a
        per-row constant, plus the repeat mode's mass on the window's items); otherwise the
        catalogue logits.
        """
        scores = self.scores(hidden).float()
        terms = self.repeat_terms(hidden, items, types, gaps)
        return scores if terms is None else mix_into_scores(scores, *terms, items)

    def repeat_terms(
        self, hidden: torch.Tensor, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The repeat mode's gate logit (B,) and step log-probabilities (B, L), or None without it.

        For callers that compute the catalogue logits of many windows in one product and mix
        afterwards (:func:`~recommendations.core.models.repeat_head.mix_into_scores`).
        """
        if self.repeat is None:
            return None
        return self.repeat.step_log_probs(hidden, self.embed_steps(items, types, gaps), items)

    def forward(
        self,
        items: torch.Tensor,
        types: torch.Tensor,
        gaps: torch.Tensor,
        labels: torch.Tensor,
        negatives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy of the next item at every labelled position, in one pass: the training loss.

        It is ``forward`` so that the trainer calls the module itself: wrapped in
        DistributedDataParallel, only a call through ``__call__`` synchronises the gradients.
        ``next_item_loss`` is the same method under its descriptive name.

        Parameters
        ----------
        items, types, gaps : LongTensor of shape (B, L)
            Inputs ``seq[:-1]``.
        labels : LongTensor of shape (B, L)
            Targets ``seq[1:]``; 0 marks positions without a loss term.
        negatives : LongTensor of shape (K,), optional
            Item indices (>= 1) shared by the whole batch (duplicates count once): sampled softmax over
            the target and these (accidental hits of the target masked); ``None`` gives the full softmax.

        With the repeat mode the loss is the cross-entropy of the mixture of both modes.
        """
        # labels are 0 at padded steps: their states are dropped below and need not be zeroed
        hidden = self._encode(items, types, gaps, zero_padding=False)
        keep = labels > 0
        h = hidden[keep]
        y = labels[keep]
        if negatives is None:
            if self.repeat is None:
                return F.cross_entropy(self.scores(h), y - 1)
            return self._with_repeats(
                -F.cross_entropy(self.scores(h), y - 1, reduction="none"), hidden, items, types, gaps, labels
            )
        # distinct negatives, sorted: accidental hits of a target are then found by binary search and
        # masked sparsely instead of through a dense (positions x negatives) comparison and fill
        negatives = torch.unique(negatives)
        w = self.item_emb.weight
        pos = (h * w[y]).sum(-1, keepdim=True)
        neg = h @ w[negatives].T
        j = torch.searchsorted(negatives, y).clamp_(max=len(negatives) - 1)
        rows = (negatives[j] == y).nonzero().squeeze(1)
        # (under bf16 autocast ``neg`` is bfloat16: the fill value takes its dtype)
        neg = neg.index_put((rows, j[rows]), torch.tensor(float("-inf"), dtype=neg.dtype, device=h.device))
        logits = torch.cat([pos, neg], dim=1)
        zeros = torch.zeros(len(y), dtype=torch.long, device=h.device)
        if self.repeat is None:
            return F.cross_entropy(logits, zeros)
        return self._with_repeats(
            -F.cross_entropy(logits, zeros, reduction="none"), hidden, items, types, gaps, labels
        )

    next_item_loss = forward

    def _with_repeats(
        self,
        catalogue_log_prob: torch.Tensor,
        hidden: torch.Tensor,
        items: torch.Tensor,
        types: torch.Tensor,
        gaps: torch.Tensor,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        """Mean cross-entropy of the two modes' mixture at the labelled positions."""
        assert self.repeat is not None
        log_repeat, gate = self.repeat.target_log_probs(
            hidden, self.embed_steps(items, types, gaps), items, labels
        )
        keep = labels > 0
        return -mix_log_probs(catalogue_log_prob.float(), gate[keep], log_repeat[keep]).mean()

    def last_hidden(self, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
        """Hidden state after the newest step, shape (B, dim) (zeros for empty sequences).

        In inference the last block runs at the newest step only (a third less work for two
        blocks, equal to ``encode(...)[:, -1]`` up to float32 rounding); training takes the full
        pass so that its random dropout draws stay those of ``encode``.
        """
        if self.training or not self.blocks:
            return self.encode(items, types, gaps)[:, -1]
        x, bias, keep = self._inputs(items, types, gaps)
        if keep is None:  # one unpadded sequence: nothing to zero
            for block in self.blocks[:-1]:
                x = block(x, bias)
            return self.ln(cast(_Block, self.blocks[-1]).forward_last(x, bias))
        for block in self.blocks[:-1]:
            x = block(x, bias) * keep
        return self.ln(cast(_Block, self.blocks[-1]).forward_last(x, bias) * keep[:, -1])

    def propensity_logit(self, last: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        """Logit of "buys within the horizon".

        Parameters
        ----------
        last : FloatTensor of shape (B, dim)
            :meth:`last_hidden` (treated as a fixed input).
        scalars : FloatTensor of shape (B, n_scalar)
            Standardised scalar features.

        Returns
        -------
        FloatTensor of shape (B,)
        """
        out = self.prop_head(torch.cat([last, scalars], dim=1)).squeeze(1)
        if self.prop_linear is not None:
            out = out + self.prop_linear(scalars).squeeze(1)
        return out
