"""Packed, memory-mapped per-shopper events: writing in chunks, mapping, slicing, round trips."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.core.dataset import EventLog, ItemIndex
from recommendations.core.packed_events import (
    PackedEvents,
    PackedEventsWriter,
    pack_event_log,
    pack_sequences,
    packed_sequences,
)
from recommendations.core.sequences import build_sequences, clean_log
from tests.recommendations.core.conftest import planted_log

WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


def test_a_shopper_split_across_chunks_keeps_one_row(tmp_path):
    # given: shopper "b" starts in the first chunk and ends in the second
    writer = PackedEventsWriter(tmp_path)

    # when
    writer.add(["a", "a", "b"], ["x", "y", "x"], ["view", "view", "purchase"], [1.0, 2.0, 3.0])
    writer.add(["b", "c"], ["z", "z"], ["view", "add_to_cart"], [4.0, 5.0])
    packed = writer.close()

    # then
    assert packed.users == ["a", "b", "c"]
    assert packed.offsets.tolist() == [0, 2, 4, 5]
    items, types, times = packed.user_events(1)
    assert [packed.item_keys[i] for i in items] == ["x", "z"]
    assert types.tolist() == [6, 1]
    assert times.tolist() == [3.0, 4.0]
    assert isinstance(packed.times, np.memmap) and not packed.times.flags.writeable


def test_a_shopper_who_comes_back_after_another_is_refused(tmp_path):
    # given
    writer = PackedEventsWriter(tmp_path)
    writer.add(["a", "b"], ["x", "x"], ["view", "view"], [1.0, 2.0])

    # when / then
    with pytest.raises(ValueError, match="not contiguous"):
        writer.add(["a"], ["x"], ["view"], [3.0])


def test_an_unknown_event_type_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown event type 'teleport'"):
        PackedEventsWriter(tmp_path).add(["a"], ["x"], ["teleport"], [1.0])


def test_reopened_folder_gives_back_the_log(tmp_path):
    # given
    log = planted_log(n_users=30, seed=3)

    # when: packed 37 rows at a time, then mapped again by another reader
    pack_event_log(log, tmp_path, chunk_events=37)
    back = PackedEvents.open(tmp_path).to_event_log()

    # then: the same events in (user, time) order
    order = log.order()
    assert back.users.tolist() == log.users[order].tolist()
    assert back.items.tolist() == log.items[order].tolist()
    assert back.event_types.tolist() == log.event_types[order].tolist()
    assert back.timestamps.tolist() == log.timestamps[order].tolist()


def test_user_chunks_cover_every_shopper_once(tmp_path):
    # given: 30 shoppers of 10 events
    packed = pack_event_log(planted_log(n_users=30), tmp_path)

    # when
    chunks = list(packed.user_chunks(max_events=45))

    # then: four shoppers (40 events) a chunk, none split
    assert [len(c) for c in chunks] == [4, 4, 4, 4, 4, 4, 4, 2]
    assert [r for c in chunks for r in c] == list(range(30))
    assert len(packed.to_event_log(chunks[1])) == 40


def test_packed_sequences_equal_the_in_memory_ones(tmp_path):
    # given
    log = clean_log(planted_log(n_users=25, seed=5), WEIGHTS)
    index = ItemIndex(sorted(set(log.items)))
    seqs = build_sequences(log, index, WEIGHTS, max_length=7)

    # when
    mapped = packed_sequences(pack_sequences(seqs, tmp_path))

    # then
    assert mapped.users == seqs.users
    for name in ("items", "types", "times"):
        assert [a.tolist() for a in getattr(mapped, name)] == [a.tolist() for a in getattr(seqs, name)]


def test_an_empty_log_packs_to_an_empty_folder(tmp_path):
    # given
    empty = EventLog(np.zeros(0, dtype=object), np.zeros(0, dtype=object), np.zeros(0, dtype=object), [])

    # when
    packed = pack_event_log(empty, tmp_path)

    # then
    assert len(packed) == 0 and packed.n_events == 0
    assert len(PackedEvents.open(tmp_path).to_event_log()) == 0
