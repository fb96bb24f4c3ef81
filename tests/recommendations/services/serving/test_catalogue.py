"""The per-process snapshot of recommendable items: the adapter's answer, kept current by signals."""

from __future__ import annotations

import pytest

from recommendations.adapter import DefaultRecommenderAdapter, get_adapter
from recommendations.services.serving import catalogue as snapshot

KEYS = [f"S{i}" for i in range(10)] + [f"H{i}" for i in range(10)] + ["N1", "unknown"]


def _names(items: dict) -> dict:
    return {key: (item.name, item.stock, item.category.slug) for key, item in items.items()}


def _agree() -> dict:
    adapter = get_adapter()
    got = snapshot.available_items(adapter, KEYS)
    assert _names(got) == _names(adapter.available_items(KEYS))
    return got


@pytest.mark.django_db
def test_snapshot_answers_as_the_adapter_through_saves_and_deletes(
    redis_cache, catalogue, product_factory, django_capture_on_commit_callbacks
):
    from shop.models import Category, Product

    # given a snapshot that agrees with the database
    assert set(_agree()) == set(KEYS[:20])
    # when items sell out, are deactivated, renamed, added, deleted and a category is renamed
    with django_capture_on_commit_callbacks(execute=True):
        sold = Product.objects.get(sku="S1")
        sold.stock = 0
        sold.save()
        hidden = Product.objects.get(sku="H1")
        hidden.is_active = False
        hidden.save()
        renamed = Product.objects.get(sku="S2")
        renamed.name = "Renamed shoe"
        renamed.save()
        product_factory(sku="N1", name="New", category=Category.objects.get(slug="hats"))
        Product.objects.get(sku="H9").delete()
    got = _agree()
    # then the snapshot follows at once
    assert not {"S1", "H1", "H9"} & set(got)
    assert got["S2"].name == "Renamed shoe" and "N1" in got
    with django_capture_on_commit_callbacks(execute=True):
        Category.objects.filter(slug="hats").update(slug="caps")  # no signal: not seen yet
        hats = Category.objects.get(slug="caps")
        hats.name = "Caps"
        hats.save()  # a signal: everything is read again
    assert _agree()["H2"].category.slug == "caps"


@pytest.mark.django_db
def test_changes_without_signals_show_after_the_check_interval(redis_cache, catalogue, monkeypatch):
    from shop.models import Product

    # given a snapshot
    _agree()
    # when stock changes through QuerySet.update() (no signal) and the check interval passes
    Product.objects.filter(sku="S3").update(stock=0)
    Product.objects.filter(sku="S4").update(is_active=False)
    monkeypatch.setattr(snapshot, "MAX_AGE_SECONDS", -1)
    # then which items are available is read again
    assert not {"S3", "S4"} & set(_agree())


@pytest.mark.django_db
def test_an_adapter_with_its_own_available_items_is_always_asked(redis_cache, catalogue, settings):
    # given an adapter that decides availability itself
    class OnlyHats(DefaultRecommenderAdapter):
        def available_items(self, keys):
            return {key: item for key, item in super().available_items(keys).items() if key.startswith("H")}

    # when / then the snapshot steps aside
    assert set(snapshot.available_items(OnlyHats(), KEYS)) == {f"H{i}" for i in range(10)}


@pytest.mark.django_db
def test_without_redis_the_adapter_answers(catalogue):
    # given the default (local memory) cache of the tests: no Redis, no snapshot
    assert set(snapshot.available_items(get_adapter(), KEYS)) == set(KEYS[:20])


@pytest.mark.django_db
def test_item_url_is_the_adapters_under_the_current_script_prefix(catalogue):
    from django.urls import set_script_prefix

    # given an item whose URL was built once
    adapter = get_adapter()
    item = catalogue["shoes"][0]
    assert snapshot.item_url(adapter, item) == adapter.get_item_url(item) == "/p/S0/"
    # when the script prefix changes (another mount point)
    try:
        set_script_prefix("/shop/")
        # then the URL follows
        assert snapshot.item_url(adapter, item) == "/shop/p/S0/"
    finally:
        set_script_prefix("/")
    assert snapshot.item_url(adapter, item) == "/p/S0/"
