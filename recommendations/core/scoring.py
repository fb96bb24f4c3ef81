"""Batch scoring kernels of ``BehaviorRecommender``: network logits, blend, top-k, on whole tensors.

The blend reproduces ``selection.components`` followed by the weighted sum of ``_score``
operation for operation (each component normalised in float64, stored as float32, weighted in
float32 and summed in float64, in ``components.COMPONENTS`` order), but without dense copies of
the sparse sources and without fresh allocations per batch: the sparse sources are added where
they are non-zero only (adding a zero is exact, so the sums are the same), and the dense work
runs in place on buffers that are reused from one batch to the next.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recommendations.core.base import keep_lowest_tied_columns, order_best_first
from recommendations.core.batch import RecencyIndex, padded_inputs
from recommendations.core.components import sparse_specs
from recommendations.core.dataset import Sequences
from recommendations.core.models import single_history
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.models.repeat_head import add_repeat_mass, catalogue_mode_, mix_into_scores
from recommendations.core.sequences import gap_buckets

__all__ = ["blend_scores", "blend_top_k", "network_logits", "top_k"]

# batches smaller than this many score cells allocate fresh tensors (web requests score one
# history); larger ones reuse per-thread buffers, which saves page faults on tens of MB per batch
_REUSE_CELLS = 1 << 20
_buffers = threading.local()


def _buffer(name: str, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    if rows * cols < _REUSE_CELLS:
        return torch.empty(rows, cols, dtype=dtype)
    held = getattr(_buffers, name, None)
    if held is None or held.dtype != dtype or held.shape[1] != cols or held.shape[0] < rows:
        held = torch.empty(rows, cols, dtype=dtype)
        setattr(_buffers, name, held)
    return held[:rows]


def network_logits(
    network: BehaviorNetwork, seqs: Sequences, *, bucket: int = 128, catalogue_only: bool = False
) -> torch.Tensor:
    """Next-item logits of every sequence, shape (len(seqs), n_items) float32.

    Sequences are scored shortest first in buckets of ``bucket``, each padded to its own longest
    sequence (left padding is masked and positions count from the newest step, so the width changes
    no output), under ``torch.inference_mode`` (no autograd bookkeeping). ``catalogue_only``: the
    catalogue logits without the repeat mode's mixture (see :func:`_blended_chunks`).
    """
    n = len(seqs.items)
    logits = _buffer("logits", n, network.n_items, torch.float32)
    if not n:
        return logits
    if network.training:
        network.eval()
    if n == 1:
        # one history (a web request): no buckets, no reordering
        length = len(seqs.items[0])
        encoder = single_history.encoder_for(network) if length else None
        with torch.inference_mode():
            if encoder is not None:  # NumPy: half the time of torch's small operations
                # the newest steps, as padded_inputs shows them (gaps from the whole history)
                width = min(length, network.max_length)
                items, types = seqs.items[0][-width:], seqs.types[0][-width:]
                gaps = gap_buckets(seqs.times[0])[-width:]
                hidden = torch.from_numpy(encoder.last_hidden(items, types, gaps))
                window = [
                    torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))[None]
                    for a in (items, types, gaps)
                ]
            else:
                window = [
                    torch.from_numpy(a) for a in padded_inputs(seqs, max(min(length, network.max_length), 1))
                ]
                hidden = network.last_hidden(*window)
            torch.mm(hidden, network.item_weights().T, out=logits)
            terms = None if catalogue_only else network.repeat_terms(hidden, *window)
            if terms is not None:
                mix_into_scores(logits, *terms, window[0])
        return logits
    lengths = np.minimum(
        np.fromiter((len(s) for s in seqs.items), dtype=np.int64, count=n), network.max_length
    )
    order = np.argsort(lengths, kind="stable")
    hidden = torch.empty(n, network.dim)
    # per bucket: its rows, the repeat mode's gate and step log-probabilities, and its window's items
    mixes: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    with torch.inference_mode():
        for start in range(0, n, bucket):
            rows = order[start : start + bucket]
            width = max(int(lengths[rows].max()), 1)
            padded = [torch.from_numpy(a) for a in padded_inputs(seqs.take(rows), width)]
            h = network.last_hidden(*padded)
            hidden[torch.from_numpy(rows)] = h
            terms = None if catalogue_only else network.repeat_terms(h, *padded)
            if terms is not None:
                mixes.append((torch.from_numpy(rows), *terms, padded[0]))
        # one product for the whole batch, written into the reused buffer
        torch.mm(hidden, network.item_weights().T, out=logits)
        if mixes:
            rows_all = torch.cat([m[0] for m in mixes])
            gate = torch.empty(n).index_copy_(0, rows_all, torch.cat([m[1] for m in mixes]))
            # the mixture in place: one normalisation of every row, then each bucket's repeat mass
            catalogue_mode_(logits, gate)
            for rows_t, bucket_gate, log_repeat, window_items in mixes:
                add_repeat_mass(logits, rows_t, bucket_gate, log_repeat, window_items)
    return logits


def _sparse_component(matrix: sp.csr_matrix, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised, weighted non-zeros of one source (as ``_row_normalise``, then the blend weight).

    ``matrix`` holds no duplicate cells (a sparse product or ``recency_weights``), in any order.
    Returns ``(cells, values)``: flat cell indices ``row * n_columns + column`` ascending by row,
    and the float32 normalised values times the float32 weight, as float64. Rows summing to zero
    are left out (nothing to add).
    """
    data = np.asarray(matrix.data, dtype=np.float64)
    counts = np.diff(matrix.indptr)
    n_rows, n_columns = matrix.shape
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
    sums = np.bincount(rows, weights=data, minlength=n_rows)
    cells = rows
    cells *= n_columns
    cells += matrix.indices
    positive = sums > 0
    if not positive[counts > 0].all():
        keep = np.repeat(positive, counts)
        cells, data, counts, sums = cells[keep], data[keep], counts[positive], sums[positive]
    # the same float64 quotient, float32 rounding and float32 product as row by row
    values = (data / np.repeat(sums, counts)).astype(np.float32)
    values *= np.float32(weight)
    return cells, values.astype(np.float64)


def _add_single_sparse_components(
    row: np.ndarray,
    items: np.ndarray,
    names: Sequence[str],
    weights: Mapping[str, float],
    sources: Mapping[str, sp.csr_matrix],
    max_length: int,
) -> None:
    """Add the sparse components of ONE history to its float64 score ``row``, in ``names`` order.

    The batch path builds ``recency_weights(...) @ source`` with scipy and normalises it in
    ``_sparse_component``; for a single short history scipy's per-call overhead costs more than
    the arithmetic. This gathers the source rows with NumPy instead and repeats scipy's
    arithmetic: products and per-column sums in the source's dtype, columns visited in the order
    of the history's (sorted) items (``np.add.at`` is sequential), so each column's value is bit
    for bit scipy's. All components are then normalised together as one dense (components x
    items) block: a few passes over 10,000 cells cost less than compacting each component's
    non-zeros, and adding a zero is exact. Only the float64 row total is summed in another order
    than scipy's (a difference in its last bit at most, far below the float32 values it divides).
    """
    specs = sparse_specs(names, max_length)
    specs = [spec for spec in specs if spec[2] > 0]
    if not specs or not len(items):
        return
    n_items = len(row)
    # the newest step of each item gives its weight: decay ** age (age 0 = newest); an item is
    # among the newest ``last`` steps exactly when its newest step's age is below ``last``
    all_cols, all_ages = np.unique(items[::-1] - 1, return_index=True)
    dense = np.zeros((len(specs), n_items), dtype=np.float64)
    for number, (_name, source_name, last, decay) in enumerate(specs):
        cols, ages = all_cols, all_ages
        if last < len(items):
            newest = all_ages < last
            cols, ages = all_cols[newest], all_ages[newest]
        values = (decay ** ages.astype(np.float64)).astype(np.float32)
        if source_name is None:
            dense[number, cols] = values  # one value per column, as the sparse row holds it
            continue
        source = sources[source_name]
        dtype = np.result_type(values.dtype, source.dtype)
        starts = source.indptr[cols]
        counts = source.indptr[cols + 1] - starts
        total = int(counts.sum())
        if not total:
            continue
        positions = np.arange(total) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
        products = np.repeat(values.astype(dtype), counts) * source.data[positions].astype(dtype)
        sums = np.zeros(n_items, dtype=dtype)
        np.add.at(sums, source.indices[positions], products)  # sequential, in scipy's order
        dense[number] = sums
    totals = dense.sum(axis=1)
    dense /= np.where(totals > 0, totals, 1.0)[:, None]
    normalised = dense.astype(np.float32)
    normalised *= np.array([weights[spec[0]] for spec in specs], dtype=np.float32)[:, None]
    for number in np.flatnonzero(totals > 0).tolist():
        row += normalised[number]


def _single_network_component(out: np.ndarray, logits: np.ndarray, weight: float) -> None:
    """Write one history's weighted network component into ``out`` (float64) from its float32 ``logits``.

    The operations of the chunk path below (``_softmax`` then ``_row_normalise`` in float64, stored
    as float32, weighted in float32), in NumPy: a dozen torch calls on one 10,000-cell row cost
    more in dispatch than in arithmetic.
    """
    np.subtract(logits, np.float64(logits.max()), out=out)
    np.exp(out, out=out)
    out /= out.sum()
    out /= out.sum()
    component = out.astype(np.float32)
    np.multiply(component, np.float32(weight), out=out)


def _normalised_row(vector: np.ndarray) -> np.ndarray:
    total = float(vector.sum())
    if total > 0:
        return (vector / total).astype(np.float32)
    return np.zeros(len(vector), dtype=np.float32)


# Rows blended at a time. A chunk replaces whole-batch steps, which would stream tens of MB
# through memory once per step (a dozen times); each chunk costs about 35 torch and NumPy
# calls, whatever its size. Smaller chunks stay in a core's cache (8 rows of 10,000 float64
# items are 0.6 MB), larger ones make fewer calls: in the serving benchmark 32 rows refreshed
# more users per second than 8 or 16, with less CPU per user, because the calls cost more
# than the cache misses. Where a core's cache holds 32 rows' worth, retune against the benchmark.
CHUNK_ROWS = 32


def _sparse_parts(
    seqs: Sequences,
    weights: Mapping[str, float],
    names: Sequence[str],
    sources: Mapping[str, sp.csr_matrix],
    n_items: int,
    max_length: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Weighted non-zeros of each sparse component of a batch, in ``names`` order (:func:`_sparse_component`).

    Cells ascend by row, so a chunk of rows is a slice.
    """
    specs = sparse_specs(names, max_length)
    if not specs:
        return []
    # one sort of the batch, over the longest window, serves every sparse component
    recency = RecencyIndex(seqs, n_items, last=max(last for _, _, last, _ in specs))
    parts = []
    for name, source, last, decay in specs:
        matrix = recency.weights(last, decay)
        if source is not None:
            matrix = matrix @ sources[source]
        parts.append(_sparse_component(matrix.tocsr(), weights[name]))
    return parts


def _blended_chunks(
    seqs: Sequences,
    weights: Mapping[str, float],
    names: Sequence[str],
    *,
    network: BehaviorNetwork | None,
    sources: Mapping[str, sp.csr_matrix],
    popularity: np.ndarray,
    fallback: np.ndarray,
    tie_break: float,
    max_length: int,
    catalogue_only: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(first row, blended float64 scores of CHUNK_ROWS rows)`` for the batch, chunk by chunk.

    Each cell goes through the operations of the whole-batch blend in the same order (network
    softmax, sparse components, popularity, tie-break or fallback), so the numbers are the same;
    a yielded chunk is reused for the next one.

    ``catalogue_only`` (lists that hide the shopper's whole history): the network component is
    the catalogue softmax, not the repeat mode's mixture. The mixture gives unseen items the
    catalogue's probabilities times one minus the shopper's repeat gate, so among unseen items it
    ranks alike but its weight in the blend would shrink for shoppers who often come back; the
    catalogue softmax is the network's distribution of the next item given that it is a new one.
    """
    n, n_items = len(seqs.items), len(popularity)
    use_network = "network" in names and network is not None
    logits = (
        network_logits(network, seqs, catalogue_only=catalogue_only)
        if network is not None and use_network
        else None
    )
    network_weight = float(weights["network"]) if use_network else 0.0
    single = n == 1
    # one history (a web request): scipy's per-call overhead would dominate its sparse products
    parts = [] if single else _sparse_parts(seqs, weights, names, sources, n_items, max_length)
    edges = np.arange(0, n + CHUNK_ROWS, CHUNK_ROWS) * n_items
    bounds = [np.searchsorted(cells, edges) for cells, _ in parts]
    pop = None
    if "popularity" in names:
        component = _normalised_row(np.asarray(popularity, dtype=np.float64))
        component = component * np.float32(weights["popularity"])
        pop = torch.from_numpy(component.astype(np.float64))
    fallback_row = torch.from_numpy(np.asarray(fallback, dtype=np.float64))
    tie = torch.from_numpy(tie_break * fallback_row.numpy())
    empty = np.fromiter((len(s) == 0 for s in seqs.items), dtype=bool, count=n)
    held = torch.empty(min(n, CHUNK_ROWS), n_items, dtype=torch.float64)
    for chunk_index, start in enumerate(range(0, n, CHUNK_ROWS)):
        stop = min(start + CHUNK_ROWS, n)
        chunk = held[: stop - start]
        if single and logits is not None:
            _single_network_component(chunk[0].numpy(), logits[0].numpy(), network_weight)
        elif logits is not None:
            # _softmax then _row_normalise, in float64, stored as the float32 component, weighted
            part = logits[start:stop]
            chunk.copy_(part)
            chunk.sub_(chunk.amax(1, keepdim=True))
            chunk.exp_()
            chunk.div_(chunk.sum(1, keepdim=True))
            chunk.div_(chunk.sum(1, keepdim=True))
            part.copy_(chunk)
            part.mul_(network_weight)
            chunk.copy_(part)
        else:
            chunk.zero_()
        if single:
            row, items = chunk[0].numpy(), seqs.items[0]
            _add_single_sparse_components(row, items, names, weights, sources, max_length)
        else:
            flat = chunk.view(-1)
            for (cells, values), cuts in zip(parts, bounds, strict=True):
                lo, hi = int(cuts[chunk_index]), int(cuts[chunk_index + 1])
                if hi > lo:
                    local = torch.from_numpy(cells[lo:hi]).sub(start * n_items)
                    flat.index_add_(0, local, torch.from_numpy(values[lo:hi]))
        if pop is not None:
            chunk.add_(pop)
        gone = empty[start:stop]
        if gone.any():
            kept = torch.from_numpy(~gone)
            chunk[kept] += tie
            chunk[torch.from_numpy(gone)] = fallback_row
        else:
            chunk.add_(tie)
        yield start, chunk


def blend_scores(
    seqs: Sequences, weights: Mapping[str, float], names: Sequence[str], **sources: Any
) -> torch.Tensor:
    """Blended scores, shape (len(seqs), n_items) float64 (see ``BehaviorRecommender._score``).

    Parameters
    ----------
    weights : mapping of component name to weight; ``names`` are those with a positive weight, in
        :data:`recommendations.core.components.COMPONENTS` order.
    sources : keyword arguments of :func:`_blended_chunks`: ``network``; ``sources``, the
        item-to-item matrices ``covisitation``, ``itemknn``, ``transitions`` (n_items square);
        ``popularity`` (n_items,), the popularity component's vector; ``fallback`` (n_items,)
        float64, popularity (or trending) scaled to [0, 1]: the whole score of an empty history,
        elsewhere ``tie_break * fallback`` is added last, to order items the sources score alike;
        ``tie_break``; ``max_length``.
    """
    n, n_items = len(seqs.items), len(sources["popularity"])
    scores = _buffer("scores", n, n_items, torch.float64)
    for start, chunk in _blended_chunks(seqs, weights, names, **sources):
        scores[start : start + len(chunk)] = chunk
    return scores


def blend_top_k(
    seqs: Sequences,
    weights: Mapping[str, float],
    names: Sequence[str],
    k: int,
    *,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    **sources: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of :func:`blend_scores` with the ``exclude`` cells at ``-inf``, chunk by chunk.

    The whole score matrix is never built: each chunk is blended, masked and ranked in cache.
    ``exclude``: (rows, columns) int64 arrays of cells never recommended.
    """
    n, n_items = len(seqs.items), len(sources["popularity"])
    k = min(k, n_items)
    if k <= 0 or n == 0:
        return np.zeros((n, max(k, 0)), dtype=np.int64), np.zeros((n, max(k, 0)))
    idx = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k), dtype=np.float64)
    masked = None
    if exclude is not None and len(exclude[0]):
        rows, cols = (np.asarray(a, dtype=np.int64) for a in exclude)
        order = np.argsort(rows, kind="stable")
        masked = (rows[order], cols[order])
        cuts = np.searchsorted(masked[0], np.arange(0, n + CHUNK_ROWS, CHUNK_ROWS))
    for chunk_index, (start, chunk) in enumerate(_blended_chunks(seqs, weights, names, **sources)):
        if masked is not None:
            lo, hi = int(cuts[chunk_index]), int(cuts[chunk_index + 1])
            if hi > lo:
                cells = (masked[0][lo:hi] - start) * n_items + masked[1][lo:hi]
                chunk.view(-1)[torch.from_numpy(cells)] = float("-inf")
        stop = start + len(chunk)
        idx[start:stop], vals[start:stop] = top_k(chunk, k)
    return idx, vals


def top_k(scores: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns per row: score descending, then column ascending (as ``base.top_n``).

    Returns
    -------
    idx : ndarray of shape (rows, min(k, n_items)), int64
    vals : ndarray of the same shape, float64 (``-inf`` where fewer finite scores exist)
    """
    rows, n_items = scores.shape
    k = min(k, n_items)
    if k <= 0 or rows == 0:
        return np.zeros((rows, max(k, 0)), dtype=np.int64), np.zeros((rows, max(k, 0)))
    top = torch.topk(scores, k, dim=1, sorted=True)
    vals, idx = top.values.numpy(), top.indices.numpy()
    keep_lowest_tied_columns(scores.numpy(), idx, vals)
    return order_best_first(idx, vals)
