"""Vectorised batch inputs against the straightforward per-history encoders."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.core.batch import (
    RecencyIndex,
    encode_columns,
    padded_inputs,
    recency_weights,
    recent_distinct,
)
from recommendations.core.candidates import history_weights
from recommendations.core.dataset import TYPE_INDEX, ItemIndex
from recommendations.core.sequences import histories_to_sequences, pad_batch

WEIGHTS = {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "wishlist": 2.0, "search": 0.0}
KEYS = [f"k{i}" for i in range(8)]


def random_histories(seed: int, n: int = 40) -> list[list[tuple[str, str, float]]]:
    """Short histories with repeats, unknown items, zero-weight types, equal times and empty ones."""
    rng = np.random.default_rng(seed)
    types = [*WEIGHTS, "remove_from_cart", "bogus"]
    out = []
    for _ in range(n):
        length = int(rng.integers(0, 14))
        stamps = np.sort(rng.integers(0, 6, length)).astype(float) * 40.0
        out.append(
            [
                (
                    "unknown"
                    if rng.random() < 0.1
                    else KEYS[int(rng.integers(0, 4 if rng.random() < 0.5 else 8))],
                    types[int(rng.integers(0, len(types)))],
                    float(stamps[k]),
                )
                for k in range(length)
            ]
        )
    return out


def columns(histories, index):
    owners = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    flat = [event for h in histories for event in h]
    items = np.array([index.index.get(k, 0) for k, _, _ in flat], dtype=np.int64)
    types = np.array([TYPE_INDEX.get(t, 0) for _, t, _ in flat], dtype=np.int64)
    stamps = np.array([ts for _, _, ts in flat], dtype=np.float64)
    return owners, items, types, stamps


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_length", [None, 3, 50])
def test_encode_columns_equals_histories_to_sequences(seed, max_length):
    # given histories with collapsible repeats, skipped events and truncation
    index = ItemIndex(KEYS)
    histories = random_histories(seed)
    # when both encoders run
    expected = histories_to_sequences(histories, index, WEIGHTS, max_length)
    got = encode_columns(*columns(histories, index), len(histories), WEIGHTS, max_length)
    # then every sequence is identical
    assert got.users == expected.users
    for field in ("items", "types", "times"):
        for a, b in zip(getattr(got, field), getattr(expected, field), strict=True):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype


def test_encode_columns_keeps_the_first_type_of_the_highest_weight():
    # given a run of one item: view, cart, purchase, cart (purchase weighs most)
    index = ItemIndex(["a", "b"])
    history = [
        ("a", "view", 1.0),
        ("a", "add_to_cart", 2.0),
        ("a", "purchase", 3.0),
        ("a", "add_to_cart", 4.0),
    ]
    # when
    seqs = encode_columns(*columns([history], index), 1, WEIGHTS)
    # then one step at the first time, typed purchase
    assert seqs.items[0].tolist() == [1]
    assert seqs.types[0].tolist() == [TYPE_INDEX["purchase"]]
    assert seqs.times[0].tolist() == [1.0]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("width", [1, 4, 12])
def test_padded_inputs_equal_pad_batch(seed, width):
    # given encoded sequences (some empty, some longer than the width)
    index = ItemIndex(KEYS)
    seqs = histories_to_sequences(random_histories(seed), index, WEIGHTS)
    # when
    got = padded_inputs(seqs, width)
    expected = pad_batch(seqs, range(len(seqs)), width)
    # then
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("last", "decay"), [(20, 0.8), (3, 0.3), (50, 1.0)])
def test_recency_weights_equal_history_weights(seed, last, decay):
    # given encoded sequences with repeated items
    index = ItemIndex(KEYS)
    seqs = histories_to_sequences(random_histories(seed), index, WEIGHTS)
    # when
    got = recency_weights(seqs, len(index), last=last, decay=decay)
    expected = history_weights(seqs, len(index), last=last, decay=decay)
    # then the same sparse matrix, entry for entry
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got.toarray(), expected.toarray())


@pytest.mark.parametrize("seed", range(3))
def test_one_recency_index_gives_every_component_s_weights(seed):
    # given encoded sequences and one index built for the longest window of the blend
    index = ItemIndex(KEYS)
    seqs = histories_to_sequences(random_histories(seed), index, WEIGHTS)
    shared = RecencyIndex(seqs, len(index), last=50)
    # when each component's window and decay is read from it / then it equals its own build
    for last, decay in [(20, 0.8), (50, 1.0), (3, 0.3), (50, 0.8), (1, 0.5)]:
        got = shared.weights(last, decay)
        expected = history_weights(seqs, len(index), last=last, decay=decay)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.toarray(), expected.toarray())
        np.testing.assert_array_equal(
            got.indptr, recency_weights(seqs, len(index), last=last, decay=decay).indptr
        )


def straightforward_recent(history_keys: list[int], recent: int) -> list[int]:
    positions, seen = [], set()
    for position in range(len(history_keys) - 1, -1, -1):
        if history_keys[position] not in seen:
            seen.add(history_keys[position])
            positions.append(position)
        if len(positions) >= recent:
            break
    return positions


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("recent", [1, 3, 10])
def test_recent_distinct_equals_a_walk_back_through_each_history(seed, recent):
    # given per-shopper key codes, oldest first
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 15, 30)
    owners = np.repeat(np.arange(30), lengths)
    keys = rng.integers(0, 6, len(owners))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    # when
    positions, counts = recent_distinct(owners, keys, 30, recent)
    # then each row lists the newest event of each distinct key, newest first
    for row in range(30):
        expected = [
            starts[row] + p
            for p in straightforward_recent(keys[starts[row] : starts[row + 1]].tolist(), recent)
        ]
        assert positions[row, : counts[row]].tolist() == expected
        assert (positions[row, counts[row] :] == -1).all()
