"""Item names kept per process for explanations (real-time path and precompute alike)."""

from __future__ import annotations

import pytest

from recommendations.services.serving import names


@pytest.mark.django_db
def test_names_are_read_once_then_kept(catalogue, django_assert_num_queries):
    # given two items' names read once (and a key no item has)
    with django_assert_num_queries(1):
        first = names.item_names({"S1", "H2", "NOPE"})
    assert first == {"S1": "Shoe 1", "H2": "Hat 2"}
    # when they are asked again (by a request or a refresh of the same process)
    with django_assert_num_queries(0):
        again = names.item_names({"S1", "H2"})
    # then the kept names answer without a query
    assert again == first


@pytest.mark.django_db
def test_a_renamed_item_is_named_anew_after_name_seconds(catalogue, monkeypatch):
    # given a kept name, then the item renamed without the process knowing
    clock = [1000.0]
    monkeypatch.setattr(names.time, "monotonic", lambda: clock[0])
    assert names.item_names({"S3"}) == {"S3": "Shoe 3"}
    shoe = catalogue["shoes"][3]
    shoe.name = "Boot 3"
    shoe.save()
    # when asked within NAME_SECONDS, then after
    clock[0] += names.NAME_SECONDS - 1
    within = names.item_names({"S3"})
    clock[0] += 2
    after = names.item_names({"S3"})
    # then the old name lasts at most NAME_SECONDS
    assert within == {"S3": "Shoe 3"}
    assert after == {"S3": "Boot 3"}


@pytest.mark.django_db
def test_the_kept_names_are_bounded(catalogue, monkeypatch):
    # given room for three names
    monkeypatch.setattr(names, "MAX_NAMES", 3)
    names.item_names({"S1", "S2"})
    # when more would not fit
    names.item_names({"H1", "H2"})
    # then the dict was emptied first and keeps only the latest read
    assert set(names._names) == {"H1", "H2"}
