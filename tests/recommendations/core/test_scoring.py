"""Tensor scoring of ``BehaviorRecommender`` against the straightforward NumPy blend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recommendations.core import scoring, selection
from recommendations.core.base import top_n
from recommendations.core.components import COMPONENTS, TIE_BREAK
from recommendations.core.recommender import BehaviorRecommender
from recommendations.core.sequences import histories_to_sequences
from recommendations.core.validation import score_sequences
from tests.recommendations.core.conftest import T0, fast_config, planted_log

ALL_SOURCES = {
    "network": 0.3,
    "covisitation": 0.1,
    "itemknn": 0.2,
    "transitions": 0.15,
    "recent": 0.05,
    "popularity": 0.2,
}


@pytest.fixture(scope="module")
def blended():
    """A small bundle fitted on planted cycles, every source given a positive weight."""
    recommender = BehaviorRecommender(fast_config(epochs=3)).fit(planted_log(n_users=60))
    recommender.blend_weights_ = dict(ALL_SOURCES)
    return recommender


def reference_scores(
    recommender: BehaviorRecommender, seqs, now, *, full_network: bool = False
) -> np.ndarray:
    """The blend written plainly: dense components from ``selection.components``, summed in NumPy.

    The logits come from ``network_logits`` (tested against ``last_hidden`` on its own), or with
    ``full_network`` from the trainer's ``score_sequences`` (equal up to float32 rounding).
    """
    w = recommender.blend_weights_
    names = [n for n in COMPONENTS if w.get(n, 0.0) > 0]
    if full_network:
        logits, _ = score_sequences(recommender.network_, seqs, torch.device("cpu"))
    else:
        logits = scoring.network_logits(recommender.network_, seqs).numpy().copy()
    cands = {
        "covisitation": recommender.covisitation_.similar_matrix,
        "itemknn": recommender.itemknn_,
        "transitions": recommender.transitions_,
        "popularity": recommender.popularity_,
    }
    comps = selection.components(seqs, logits, cands, names, recommender._cfg().max_sequence_length)
    scores = np.zeros((len(seqs), len(recommender.item_ids_)), dtype=np.float64)
    for n in names:
        scores += w[n] * comps[n]
    pop = recommender.trending(now) if now is not None else recommender.popularity_
    pop = pop / (pop.max(initial=0.0) + 1e-12)
    empty = np.array([len(s) == 0 for s in seqs.items], dtype=bool)
    scores[empty] = pop[None, :]
    scores[~empty] += TIE_BREAK * pop[None, :]
    return scores


def histories(recommender: BehaviorRecommender, count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    keys = recommender.item_ids_
    types = ["view", "view", "add_to_cart", "purchase", "wishlist"]
    out = []
    for _ in range(count):
        length = int(rng.integers(0, 16))
        out.append(
            [
                (
                    "not-in-catalogue" if rng.random() < 0.05 else keys[int(rng.integers(0, len(keys)))],
                    types[int(rng.integers(0, len(types)))],
                    T0 + 60.0 * k,
                )
                for k in range(length)
            ]
        )
    return out


@pytest.mark.parametrize("weights", [ALL_SOURCES, {"network": 1.0}, {"itemknn": 0.7, "popularity": 0.3}])
@pytest.mark.parametrize("now", [None, T0 + 86400.0])
def test_tensor_blend_equals_the_numpy_blend(blended, weights, now):
    # given histories (some empty, some with unknown items) and a set of blend weights
    blended.blend_weights_ = {n: float(weights.get(n, 0.0)) for n in COMPONENTS}
    seqs = histories_to_sequences(
        histories(blended, 40, seed=len(weights)), blended.index_, blended._event_weights(), 12
    )
    # when
    got = blended._score(seqs, now)
    expected = reference_scores(blended, seqs, now)
    full = reference_scores(blended, seqs, now, full_network=True)
    blended.blend_weights_ = dict(ALL_SOURCES)
    # then the same scores (float64 rounding of the softmax aside) and the same top 10, also
    # against the whole network's logits (float32 rounding of the hidden state aside)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got, full, rtol=1e-5, atol=0)
    assert top_n(got, 10)[0].tolist() == top_n(expected, 10)[0].tolist() == top_n(full, 10)[0].tolist()


def test_recommend_equals_ranking_the_reference_scores_with_exclusions(blended):
    # given histories and per-history exclusions (one unknown key among them)
    hs = histories(blended, 30, seed=3)
    exclude = [{blended.item_ids_[i % len(blended.item_ids_)], "not-in-catalogue"} for i in range(len(hs))]
    seqs = histories_to_sequences(hs, blended.index_, blended._event_weights(), 12)
    expected_scores = reference_scores(blended, seqs, None)
    for r, ex in enumerate(exclude):
        for key in ex:
            if key in blended.index_.index:
                expected_scores[r, blended.index_.index[key] - 1] = -np.inf
    idx, vals = top_n(expected_scores, 8)
    # when
    got = blended.recommend(hs, 8, exclude=exclude)
    # then the same keys in the same order with the same scores
    assert [[k for k, _ in row] for row in got] == [[blended.item_ids_[j] for j in row] for row in idx]
    np.testing.assert_allclose([[s for _, s in row] for row in got], vals, rtol=1e-12)


@pytest.mark.parametrize("count", [1, scoring.CHUNK_ROWS, 3 * scoring.CHUNK_ROWS + 5])
def test_chunked_ranking_equals_ranking_the_whole_score_matrix(blended, count):
    # given histories (some empty) and excluded cells listed out of row order, in several chunks
    seqs = histories_to_sequences(
        histories(blended, count, seed=count), blended.index_, blended._event_weights(), 12
    )
    rng = np.random.default_rng(count)
    rows = rng.integers(0, count, size=3 * count)
    cols = rng.integers(0, len(blended.item_ids_), size=3 * count)
    scores = blended._score(seqs, T0)
    scores[rows, cols] = -np.inf
    expected = scoring.top_k(torch.from_numpy(scores), 7)
    # when ranked chunk by chunk
    got = blended.rank_sequences(seqs, 7, exclude=(rows, cols), now=T0)
    # then the same columns and the very same scores
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_batch_of_many_equals_one_history_at_a_time(blended):
    # given enough histories to use the reused buffers (more than one bucket)
    hs = histories(blended, 300, seed=5)
    # when scored together and one by one (the real-time path)
    together = blended.recommend(hs, 5)
    alone = [blended.recommend([h], 5)[0] for h in hs[:40]]
    # then the lists agree
    assert [[k for k, _ in row] for row in together[:40]] == [[k for k, _ in row] for row in alone]


def test_top_k_orders_ties_by_column_and_pads_with_minus_infinity():
    # given ties and excluded (-inf) cells
    scores = torch.tensor(
        [[1.0, 3.0, 3.0, 0.5], [float("-inf"), 2.0, float("-inf"), float("-inf")]], dtype=torch.float64
    )
    # when
    idx, vals = scoring.top_k(scores, 3)
    # then ties keep the lower column first; rows short of finite cells end with -inf
    assert idx[0].tolist() == [1, 2, 0]
    assert vals[0].tolist() == [3.0, 3.0, 1.0]
    assert idx[1][0] == 1 and vals[1][0] == 2.0 and np.isneginf(vals[1][1:]).all()


def _best_first_reference(row: np.ndarray, k: int) -> np.ndarray:
    """The contract written plainly: every column by score descending, then column ascending."""
    return np.lexsort((np.arange(len(row)), -row))[:k]


@pytest.mark.parametrize("width", [7, 300, 9524])
def test_top_k_and_top_n_keep_the_lowest_columns_among_ties_at_the_cut(width):
    # given rows with many columns tied at the k-th best score, rows with fewer finite scores
    # than k, and the same rows scored alone (another array shape) and in a batch
    rng = np.random.default_rng(width)
    k = min(5, width)
    scores = rng.integers(0, 3, (6, width)).astype(np.float64)
    scores[1, ::2] = -np.inf
    scores[2, 2:] = -np.inf
    # when the best k are taken by the torch kernel and by the NumPy one
    torch_idx, torch_vals = scoring.top_k(torch.from_numpy(scores.copy()), k)
    numpy_idx, numpy_vals = top_n(scores.copy(), k)
    # then both follow the contract exactly (ties at the cut go to the lower column) ...
    for r in range(6):
        finite = int(np.isfinite(scores[r]).sum())
        expected = _best_first_reference(scores[r], k)[: min(k, finite)]
        assert torch_idx[r][: len(expected)].tolist() == expected.tolist()
        assert numpy_idx[r][: len(expected)].tolist() == expected.tolist()
        assert np.isneginf(torch_vals[r][len(expected) :]).all()
        np.testing.assert_array_equal(torch_vals[r][: len(expected)], scores[r][expected])
        np.testing.assert_array_equal(numpy_vals[r][: len(expected)], scores[r][expected])
    # ... whatever else is in the array: a row alone gets the same columns as in the batch
    for r in range(6):
        alone, _ = scoring.top_k(torch.from_numpy(scores[r : r + 1].copy()), k)
        assert alone[0].tolist() == torch_idx[r].tolist()


@pytest.mark.parametrize(("layers", "heads", "width"), [(1, 1, 6), (2, 1, 12), (2, 2, 9), (3, 4, 1)])
def test_last_hidden_in_inference_equals_the_full_encoding(layers, heads, width):
    # given a random network in eval mode and left-padded inputs (one row all padding)
    from recommendations.core.models.behavior_network import BehaviorNetwork

    torch.manual_seed(layers * 10 + heads)
    network = BehaviorNetwork(50, dim=16, layers=layers, heads=heads, dropout=0.3, max_length=12).eval()
    rng = np.random.default_rng(width)
    lengths = rng.integers(0, width + 1, 9)
    items = np.zeros((9, width), dtype=np.int64)
    for r, n in enumerate(lengths):
        if n:
            items[r, width - n :] = rng.integers(1, 51, n)
    types = np.where(items > 0, rng.integers(1, 8, items.shape), 0)
    gaps = np.where(items > 0, rng.integers(1, 32, items.shape), 0)
    inputs = [torch.from_numpy(a) for a in (items, types, gaps)]
    # when
    with torch.inference_mode():
        expected = network.encode(*inputs)[:, -1]
        got = network.last_hidden(*inputs)
    # then the same states up to float32 rounding
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_one_history_alone_scores_as_in_a_batch(blended):
    # given histories (empty, with unknown items, longer than the kept length) and every source
    long = [(blended.item_ids_[k % 7], "view", T0 + k) for k in range(30)]
    hs = [*histories(blended, 40, seed=11), long]
    seqs = histories_to_sequences(hs, blended.index_, blended._event_weights(), 12)
    together = blended._score(seqs, None)
    # when each is scored alone (the single-history kernels of a web request)
    for r, history in enumerate(hs):
        alone = blended._score(
            histories_to_sequences([history], blended.index_, blended._event_weights(), 12), None
        )
        # then the same scores (the row totals may differ in their last float64 bit) and ranking
        np.testing.assert_allclose(alone[0], together[r], rtol=1e-6, atol=1e-12)
        assert top_n(alone, 10)[0].tolist() == top_n(together[r : r + 1], 10)[0].tolist()


def test_one_history_sparse_components_equal_scipy_and_skip_empty_rows():
    # given item-to-item sources where some items have no row (nothing co-visited, no transition)
    import scipy.sparse as sp

    from recommendations.core.dataset import Sequences

    rng = np.random.default_rng(5)
    dense = rng.random((12, 12)).astype(np.float32) * (rng.random((12, 12)) < 0.4)
    dense[[2, 7]] = 0.0  # items 3 and 8 (dense indices) lead nowhere
    sources = {
        "covisitation": sp.csr_matrix(dense),
        "itemknn": sp.csr_matrix(dense**2),
        "transitions": sp.csr_matrix(np.triu(dense)),
    }
    weights = {"covisitation": 0.3, "itemknn": 0.25, "transitions": 0.2, "recent": 0.25}
    names = ["covisitation", "itemknn", "transitions", "recent"]
    for items in ([3, 3, 8], [1, 5, 3, 9, 5, 12, 3, 8], [8]):
        types, times = np.ones(len(items), dtype=np.int64), np.arange(len(items), dtype=float)
        seqs = Sequences(["0"], [np.array(items)], [types], [times])
        # when the single-history kernel adds them to a zero row
        row = np.zeros(12)
        scoring._add_single_sparse_components(row, seqs.items[0], names, weights, sources, max_length=6)
        # then each cell is the batch path's (scipy's products, normalised and weighted), summed in order
        expected = np.zeros(12)
        for cells, values in scoring._sparse_parts(seqs, weights, names, sources, 12, 6):
            expected[cells] += values
        np.testing.assert_array_equal(row, expected)
    # and a history whose items lead nowhere adds nothing (no source row to normalise)
    row = np.zeros(12)
    scoring._add_single_sparse_components(row, np.array([8, 3]), names[:3], weights, sources, max_length=6)
    assert not row.any()
