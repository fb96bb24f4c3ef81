"""Event logs, cleaning and sequence building."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.core.config import DEFAULT_EVENT_WEIGHTS, NetworkConfig
from recommendations.core.dataset import N_GAP_BUCKETS, TYPE_INDEX, EventLog, ItemIndex
from recommendations.core.sequences import (
    build_sequences,
    clean_log,
    gap_buckets,
    histories_to_sequences,
    rare_item_filter,
)


def _log(rows, is_bot=None):
    u, i, t, ts = zip(*rows, strict=True)
    return EventLog(
        np.array(u, dtype=object),
        np.array(i, dtype=object),
        np.array(t, dtype=object),
        np.array(ts, dtype=float),
        is_bot=None if is_bot is None else np.array(is_bot),
    )


def test_cleaning_drops_bots_duplicates_zero_weight_types_and_unknown_items():
    # given
    log = _log(
        [
            ("alice", "A", "view", 10),
            ("alice", "A", "view", 10),  # exact duplicate
            ("alice", "B", "search", 11),  # weight 0
            ("alice", "C", "view", 12),  # bot-flagged below
            ("alice", "Z", "view", 13),  # unknown item
            ("bob", "B", "purchase", 5),
        ],
        is_bot=[False, False, False, True, False, False],
    )

    # when
    clean = clean_log(log, DEFAULT_EVENT_WEIGHTS, known_items={"A": 1, "B": 2, "C": 3})

    # then
    assert list(zip(clean.users, clean.items, clean.event_types, strict=True)) == [
        ("alice", "A", "view"),
        ("bob", "B", "purchase"),
    ]


def test_sequences_collapse_consecutive_repeats_keep_heaviest_type_and_string_keys():
    # given: string keys that look like integers must stay strings
    log = _log(
        [
            ("u1", "007", "view", 3),
            ("u1", "007", "add_to_cart", 4),
            ("u1", "7", "view", 5),
            ("u1", "007", "view", 6),
            ("u2", "7", "view", 1),
        ]
    )
    index = ItemIndex(["007", "7"])

    # when
    seqs = build_sequences(clean_log(log, DEFAULT_EVENT_WEIGHTS), index, DEFAULT_EVENT_WEIGHTS, min_events=2)

    # then
    assert seqs.users == ["u1"]
    assert seqs.items[0].tolist() == [1, 2, 1]
    assert seqs.types[0].tolist() == [TYPE_INDEX["add_to_cart"], TYPE_INDEX["view"], TYPE_INDEX["view"]]
    assert seqs.times[0].tolist() == [3.0, 5.0, 6.0]
    assert index.key(1) == "007"


def test_rare_item_filter_counts_distinct_users():
    # given: A seen by one user (twice), B by two users
    log = _log(
        [("u1", "A", "view", 1), ("u1", "A", "view", 2), ("u1", "B", "view", 3), ("u2", "B", "view", 1)]
    )

    # when
    kept = rare_item_filter(log, min_item_users=2)

    # then
    assert sorted(set(kept.items)) == ["B"]


def test_sequences_are_capped_at_max_length_and_histories_ignore_unknown_items():
    # given
    index = ItemIndex(["a", "b", "c", "d"])
    history = [
        ("a", "view", 1.0),
        ("zzz", "view", 2.0),
        ("b", "view", 3.0),
        ("c", "view", 4.0),
        ("d", "view", 5.0),
    ]

    # when
    seqs = histories_to_sequences([history, []], index, DEFAULT_EVENT_WEIGHTS, max_length=3)

    # then
    assert seqs.items[0].tolist() == [2, 3, 4]
    assert seqs.items[1].tolist() == []


def test_gap_buckets_are_log_scaled():
    # given: gaps of 0 s, 1 s, 3 s, 1e12 s
    times = np.array([0.0, 0.0, 1.0, 4.0, 1e12])

    # when
    buckets = gap_buckets(times)

    # then: first=1, then 2 + floor(log2(1 + gap)), capped
    assert buckets.tolist() == [1, 2, 3, 4, N_GAP_BUCKETS - 1]


def test_from_csv_reads_rows_and_names_the_bad_line(tmp_path):
    # given
    good = tmp_path / "good.csv"
    good.write_text("user_id,item_id,event_type,timestamp,value\nu1,42,view,10,\nu1,43,purchase,11,9.5\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,event_type,timestamp\nu1,42,view,10\nu1,43,teleport,11\n")

    # when
    log = EventLog.from_csv(good)

    # then
    assert len(log) == 2 and log.items.tolist() == ["42", "43"]
    assert np.isnan(log.values[0]) and log.values[1] == 9.5
    assert log.histories() == {"u1": [("42", "view", 10.0), ("43", "purchase", 11.0)]}
    with pytest.raises(ValueError, match=r"bad.csv:3: unknown event_type 'teleport'"):
        EventLog.from_csv(bad)


def test_eventlog_rejects_mismatched_lengths_and_config_from_settings_maps_keys():
    # given / when / then
    with pytest.raises(ValueError, match="timestamps"):
        EventLog(
            np.array(["u"], dtype=object),
            np.array(["i"], dtype=object),
            np.array(["view"], dtype=object),
            np.array([1.0, 2.0]),
        )
    cfg = NetworkConfig.from_settings(
        {"EMBEDDING_DIM": 32, "TRAIN_THREADS": 3, "UNKNOWN": 1, "EVENT_WEIGHTS": {"view": 2.0}}
    )
    assert (cfg.embedding_dim, cfg.threads, cfg.event_weights["view"], cfg.event_weights["purchase"]) == (
        32,
        3,
        2.0,
        5.0,
    )
