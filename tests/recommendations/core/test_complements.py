"""Complements learnt from carts and purchases: with, or soon after, never from views; no substitutes."""

from __future__ import annotations

import pytest

from recommendations.core.complements import complements
from recommendations.core.dataset import EventLog

DAY = 86400.0
HOUR = 3600.0


def _log(histories: dict[str, list[tuple[str, str, float]]]) -> EventLog:
    return EventLog.from_histories(histories)


def test_next_purchase_is_directed_and_bought_together_goes_both_ways():
    # given two shoppers who buy a phone and a case three days later, and two who buy a machine
    # and its beans in one order
    log = _log(
        {
            **{f"p{u}": [("phone", "purchase", 0.0), ("case", "purchase", 3 * DAY)] for u in range(2)},
            **{f"m{u}": [("machine", "purchase", 0.0), ("beans", "purchase", 60.0)] for u in range(2)},
        }
    )
    # when
    learnt = complements(log)
    # then the case follows the phone (not the other way round); beans and machine go both ways
    assert [key for key, _ in learnt.related("phone")] == ["case"]
    assert learnt.related("case") == []
    assert [key for key, _ in learnt.related("machine")] == ["beans"]
    assert [key for key, _ in learnt.related("beans")] == ["machine"]
    # each pair stands on two shoppers, cosine-normalised by their two buyers each: 2 / sqrt(2 * 2)
    assert learnt.related("phone")[0][1] == pytest.approx(1.0)
    assert learnt.related("unknown") == []


def test_views_windows_and_taken_back_carts_make_no_complement():
    # given pairs that are not complements: viewed together, bought after the horizon, bought
    # after an abandoned cart (not a purchase), carted and removed again
    log = _log(
        {
            **{f"v{u}": [("a", "view", 0.0), ("b", "view", 10.0)] for u in range(3)},
            **{f"h{u}": [("c", "purchase", 0.0), ("d", "purchase", 20 * DAY)] for u in range(3)},
            **{f"x{u}": [("e", "add_to_cart", 0.0), ("f", "purchase", 3 * DAY)] for u in range(3)},
            **{
                f"r{u}": [
                    ("g", "add_to_cart", 0.0),
                    ("g", "remove_from_cart", 60.0),
                    ("k", "purchase", 120.0),
                ]
                for u in range(3)
            },
        }
    )
    # when
    learnt = complements(log, horizon_days=14)
    # then none of them is related to anything
    assert all(learnt.related(key) == [] for key in "abcdefgk")


def test_one_shopper_is_not_enough_and_one_shopper_counts_once():
    # given one shopper who bought x with y five times, and two who bought x with z once each
    log = _log(
        {
            "heavy": [
                (key, "purchase", i * 2 * DAY + offset)
                for i in range(5)
                for key, offset in (("x", 0), ("y", 60))
            ],
            "one": [("x", "purchase", 0.0), ("z", "purchase", 60.0)],
            "two": [("x", "purchase", 0.0), ("z", "purchase", 60.0)],
        }
    )
    # when
    learnt = complements(log)
    # then only the pair two shoppers made is kept, with its support of two shoppers
    assert [key for key, _ in learnt.related("x")] == ["z"]
    assert learnt.support[learnt.item_ids.index("x"), learnt.item_ids.index("z")] == pytest.approx(2.0)


def _substitutes_and_complements() -> EventLog:
    """Phones bought both by three shoppers but one instead of the other by four; beans after a
    coffee machine by four shoppers, never instead of it."""
    histories: dict[str, list[tuple[str, str, float]]] = {}
    for u in range(3):
        histories[f"both{u}"] = [("phone-1", "purchase", 0.0), ("phone-2", "purchase", 5 * DAY)]
    for u in range(4):
        # compared the two phones in one visit, bought one of them
        histories[f"instead{u}"] = [
            ("phone-1", "view", 0.0),
            ("phone-2", "view", 60.0),
            ("phone-2", "purchase", 120.0),
        ]
    for u in range(4):
        histories[f"coffee{u}"] = [
            ("machine", "view", 0.0),
            ("beans", "view", 30.0),
            ("machine", "purchase", 60.0),
            ("beans", "purchase", 2 * DAY),
        ]
    return _log(histories)


def test_within_a_group_only_what_is_bought_both_more_than_instead_is_a_complement():
    # given two phones and a coffee machine with its beans, all four in their categories
    log = _substitutes_and_complements()
    groups = {"phone-1": "phones", "phone-2": "phones", "machine": "coffee", "beans": "coffee"}
    # when
    plain = complements(log)
    grouped = complements(log, groups=groups)
    # then buying both phones alone makes them "complements"; the substitution test drops them
    assert [key for key, _ in plain.related("phone-1")] == ["phone-2"]
    assert grouped.related("phone-1") == [] and grouped.related("phone-2") == []
    assert grouped.substitutes == 1  # phone-1 -> phone-2: the second was bought after the first
    # and keeps the beans, bought after the machine by four shoppers and never instead of it
    assert [key for key, _ in grouped.related("machine")] == ["beans"]


def test_pairs_across_groups_need_no_substitution_test():
    # given the same log with each item in a group of its own
    log = _substitutes_and_complements()
    groups = {"phone-1": "a", "phone-2": "b", "machine": "c", "beans": "d"}
    # when
    learnt = complements(log, groups=groups)
    # then nothing is dropped
    assert learnt.substitutes == 0
    assert [key for key, _ in learnt.related("phone-1")] == ["phone-2"]


def test_an_empty_log_or_a_single_item_has_no_relations():
    assert complements(_log({})).related("a") == []
    assert complements(_log({"u": [("a", "purchase", 0.0)]})).item_ids == ["a"]
