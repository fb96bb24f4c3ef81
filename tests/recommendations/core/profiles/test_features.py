"""Choosing the affinity columns once for several tables of users, and putting a table on them."""

from __future__ import annotations

import numpy as np

from recommendations.core.profiles.features import (
    AFFINITY_PREFIX,
    BASE_FEATURES,
    choose_affinity_columns,
    compute_features,
    select_affinity_columns,
)
from tests.recommendations.core.profiles.test_profiles import DAY, NOW, events

CATEGORIES = ("Books", "Garden", "Toys")
ROWS = [
    # (user, type, seconds before NOW, value, category, price)
    (0, "view", DAY, np.nan, 0, 10.0),
    (0, "purchase", DAY - 60, 12.5, 2, 10.0),
    (1, "view", DAY, np.nan, 1, 10.0),
    (1, "view", DAY - 60, np.nan, 1, 10.0),
    (2, "view", DAY, np.nan, 2, 10.0),
    (3, "view", DAY, np.nan, 0, 10.0),
]
WEIGHTS = {"view": 1, "purchase": 5}


def _table(rows, n_users, **kwargs):
    return compute_features(
        events(rows, n_users, CATEGORIES),
        now=NOW,
        category_median_price=np.array([10.0, 10.0, 10.0]),
        event_weights=WEIGHTS,
        **kwargs,
    )


def test_the_weighted_activity_per_category_is_kept_with_the_table():
    table = _table(ROWS, 4)
    # Books: 2 views; Garden: 2 views; Toys: a purchase (5) and a view
    assert table.category_activity.tolist() == [2.0, 2.0, 6.0]
    # the affinity columns follow it, ties in catalogue order
    assert table.columns[len(BASE_FEATURES) :] == [
        AFFINITY_PREFIX + name for name in ("Toys", "Books", "Garden")
    ]


def test_tables_of_parts_put_on_the_chosen_columns_equal_the_table_of_everyone():
    # given the table of all four users with the two most active categories
    whole = _table(ROWS, 4, max_affinity_columns=2)
    # when two parts (users 0-1 and 2-3) keep every active category, and the columns are chosen
    # from their summed activity
    first = _table([r for r in ROWS if r[0] < 2], 2, max_affinity_columns=3)
    second = _table([(u - 2, *rest) for u, *rest in ROWS if u >= 2], 2, max_affinity_columns=3)
    activity = first.category_activity + second.category_activity
    chosen = choose_affinity_columns(activity, list(CATEGORIES), 2)
    for part in (first, second):
        select_affinity_columns(part, chosen)
    # then the columns and every value are those of the whole table
    assert chosen == ["Toys", "Books"]
    assert first.columns == second.columns == whole.columns
    np.testing.assert_array_equal(np.vstack([first.values, second.values]), whole.values)


def test_a_category_without_a_column_in_a_part_reads_zero_there():
    # given a part whose users were never in Garden
    part = _table([r for r in ROWS if r[4] != 1], 4, max_affinity_columns=3)
    assert AFFINITY_PREFIX + "Garden" not in part.columns
    # when it is put on columns that include Garden
    select_affinity_columns(part, ["Garden", "Books"])
    # then Garden is 0 for everyone, Books keeps its shares, and the base features are untouched
    garden = part.columns.index(AFFINITY_PREFIX + "Garden")
    books = part.columns.index(AFFINITY_PREFIX + "Books")
    assert part.values[:, garden].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert part.values[:, books].tolist() == [1 / 6, 0.0, 0.0, 1.0]
    assert part.columns[: len(BASE_FEATURES)] == list(BASE_FEATURES)
