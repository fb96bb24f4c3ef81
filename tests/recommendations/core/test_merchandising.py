"""The merchandising rule on plain values: exclusions, boosts and buries, pins, the cut."""

from __future__ import annotations

import pytest

from recommendations.core.merchandising import BOOST, BURY, EXCLUDE, PIN, Entry, Rule, arrange

# ten items, a0..a4 in category "a", b0..b4 in "b", ranked a0, b0, a1, b1, ...
RANKED = [Entry(f"{c}{i}", c) for i in range(5) for c in ("a", "b")]


def keys(*names: str) -> list[str]:
    return list(names)


def test_no_rule_keeps_the_ranking_and_cuts_it():
    # when no rule is in force
    arrangement = arrange(RANKED, [], limit=4)
    # then the ranking is cut to the limit and nothing applied
    assert arrangement.keys == keys("a0", "b0", "a1", "b1")
    assert arrangement.applied == set()


def test_an_excluded_item_and_category_never_appear():
    # given one exclusion of an item and one of a category
    rules = [Rule(1, EXCLUDE, item_key="a0"), Rule(2, EXCLUDE, category="b")]
    # when arranged
    arrangement = arrange(RANKED, rules, limit=3)
    # then neither the item nor the category's items are shown, and both rules applied
    assert arrangement.keys == keys("a1", "a2", "a3")
    assert arrangement.applied == {1, 2}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (Rule(1, BOOST, item_key="b1", strength=2), ["a0", "b1", "b0", "a1", "a2"]),
        (Rule(1, BOOST, item_key="b1", strength=9), ["b1", "a0", "b0", "a1", "a2"]),
        (Rule(1, BURY, item_key="a0", strength=2), ["b0", "a1", "a0", "b1", "a2"]),
        # a boost lifts an item from below the cut: b2 was 6th (rank 5), 3 places up -> 3rd
        (Rule(1, BOOST, item_key="b2", strength=3), ["a0", "b0", "b2", "a1", "b1"]),
    ],
)
def test_boosts_and_buries_move_an_item_by_their_strength(rule, expected):
    # when one item is boosted or buried
    arrangement = arrange(RANKED, [rule], limit=5)
    # then it moves that many places (ties keep the ranked order) and the rule applied
    assert arrangement.keys == expected
    assert arrangement.applied == {1}


def test_a_category_boost_moves_every_item_of_it_and_sums_with_an_item_bury():
    # given category "b" boosted by 1 and b0 buried by 3
    rules = [Rule(1, BOOST, category="b", strength=1), Rule(2, BURY, item_key="b0", strength=3)]
    # when arranged
    arrangement = arrange(RANKED, rules, limit=6)
    # then every b moves up one place and b0 (net +2) down two from its rank 1
    # effective ranks: a0 0, b0 1-1+3=3, a1 2, b1 3-1=2, a2 4, b2 5-1=4 (boosted first at a tie)
    assert arrangement.keys == keys("a0", "b1", "a1", "b0", "b2", "a2")
    assert arrangement.applied == {1, 2}


def test_a_mover_that_names_no_shown_item_did_not_apply():
    # given a bury of an item ranked far below the cut
    arrangement = arrange(RANKED, [Rule(1, BURY, item_key="b4", strength=1)], limit=3)
    # then the list is unchanged and the rule is not recorded
    assert arrangement.keys == keys("a0", "b0", "a1")
    assert arrangement.applied == set()


def test_a_pin_puts_an_item_at_its_position_and_moves_it_when_already_listed():
    # given a pin of a new item at 2 and one of a listed item (a1, 3rd) at 1
    rules = [Rule(1, PIN, item_key="z", position=2), Rule(2, PIN, item_key="a1", position=1)]
    # when arranged with both pinnable
    arrangement = arrange(RANKED, rules, limit=5, pinnable={"z": "z", "a1": "a"})
    # then each sits at its position, a1 once only
    assert arrangement.keys == keys("a1", "z", "a0", "b0", "b1")
    assert arrangement.applied == {1, 2}


def test_two_pins_on_one_position_the_lower_id_takes_it():
    rules = [Rule(7, PIN, item_key="y", position=1), Rule(3, PIN, item_key="z", position=1)]
    arrangement = arrange(RANKED, rules, limit=3, pinnable={"y": None, "z": None})
    assert arrangement.keys == keys("z", "y", "a0")


def test_a_pin_of_an_item_that_may_not_be_shown_does_nothing():
    # given a pin of an item the caller did not find pinnable (out of stock, already bought)
    arrangement = arrange(RANKED, [Rule(1, PIN, item_key="z", position=1)], limit=3, pinnable={})
    # then the list is the model's and the pin did not apply
    assert arrangement.keys == keys("a0", "b0", "a1")
    assert arrangement.applied == set()


def test_an_excluded_item_is_never_pinned():
    # given a pin of z and an exclusion of its category
    rules = [Rule(1, PIN, item_key="z", position=1), Rule(2, EXCLUDE, category="zz")]
    arrangement = arrange(RANKED, rules, limit=3, pinnable={"z": "zz"})
    # then z is not shown
    assert arrangement.keys == keys("a0", "b0", "a1")
    assert 1 not in arrangement.applied


def test_a_pin_past_the_end_of_a_short_list_goes_last_and_one_past_the_limit_is_dropped():
    short = RANKED[:2]
    rules = [Rule(1, PIN, item_key="z", position=8), Rule(2, PIN, item_key="y", position=12)]
    arrangement = arrange(short, rules, limit=10, pinnable={"z": None, "y": None})
    assert arrangement.keys == keys("a0", "b0", "z")
    assert arrangement.applied == {1}
