"""The demo shop's planted complements reach the shopper: accessories in the cart, no substitutes.

``seed_demo`` plants 2-3 accessories for each phone, laptop and coffee machine (bought after it,
or with it: ``shop/demo/PLANTED.md``). After the relations and popularity refresh that beat runs,
the cart page and the product page show them, as a shopper reads them.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.urls import reverse
from django.utils import timezone

from behavior.models import Event
from recommendations.services.serving import complete_purchase
from shop.demo.generator import SeedOptions, flush_demo_data, planted_complements, seed_demo
from shop.models import Product

# 25 events per user, as the seeding tests: enough purchases for a few mains' accessories.
OPTIONS = SeedOptions(users=600, events=15_000, seed=7)


def seed_and_refresh(options: SeedOptions = OPTIONS) -> dict[str, list[str]]:
    """Seed the demo shop, refresh relations and popularity as beat does; the planted complements."""
    from recommendations.services.serving import popularity
    from recommendations.services.serving.relations import refresh_item_relations

    seed_demo(options, now=timezone.now())
    refresh_item_relations()
    popularity.refresh_popularity()
    popularity.clear_local()
    return planted_complements(options)


def best_bought_main(planted: dict[str, list[str]], prefix: str) -> str:
    """The main item (sku prefix) whose planted accessories most shoppers bought after it."""
    first: dict[tuple[int, str], object] = {}
    for user, sku, when in (
        Event.objects.filter(event_type="purchase", user__isnull=False)
        .order_by("occurred_at")
        .values_list("user_id", "item__sku", "occurred_at")
    ):
        first.setdefault((user, sku), when)
    counts: Counter[str] = Counter()
    for (user, sku), when in first.items():
        for main, accessories in planted.items():
            if main.startswith(prefix) and sku in accessories:
                bought_main = first.get((user, main))
                if bought_main is not None and bought_main <= when:
                    counts[main] += 1
    return min(counts, key=lambda sku: (-counts[sku], sku))


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The seeded demo shop for this module (removed again at the end)."""
    with django_db_blocker.unblock():
        planted = seed_and_refresh()
        try:
            categories = dict(Product.objects.values_list("sku", "category__name"))
            names = dict(Product.objects.values_list("sku", "name"))
            yield {"planted": planted, "category": categories, "name": names}
        finally:
            flush_demo_data()


def _block(html: str, placement: str) -> tuple[str, list[str], list[str]]:
    """The block's title, its items' keys and their reasons, as the page shows them."""
    section = re.search(rf'data-placement="{placement}">(.*?)</section>', html, re.S)
    assert section, f"no {placement} block"
    body = section.group(1)
    title = re.search(r"<h2>([^<]*)</h2>", body).group(1)
    return title, re.findall(r'data-item="([^"]+)"', body), re.findall(r'class="rec-reason">([^<]*)<', body)


@pytest.mark.django_db
def test_a_phone_in_the_cart_brings_its_accessories(client, demo):
    # given the phone whose planted accessories shoppers bought most often after it
    phone = best_bought_main(demo["planted"], "PHN-")
    # when a shopper puts it in the cart and opens the cart
    client.post(reverse("shop:cart_add"), {"sku": phone, "quantity": "1"})
    title, keys, reasons = _block(client.get(reverse("shop:cart")).content.decode(), "cart")
    # then "Complete your purchase" lists its accessories, "goes with <the phone> in your cart",
    # and no phone at all
    accessories = [key for key in keys if key in demo["planted"][phone]]
    assert title == "Complete your purchase"
    assert len(keys) == 4 and accessories
    assert reasons[keys.index(accessories[0])] == f"goes with {demo['name'][phone]} in your cart"
    assert {demo["category"][key] for key in keys} == {"Phone accessories"}


@pytest.mark.django_db
def test_no_phone_camera_laptop_or_coffee_machine_cart_is_offered_a_substitute(demo):
    # given every phone, camera, laptop and coffee machine or grinder (a planted main item)
    mains = [
        sku
        for sku, category in demo["category"].items()
        if category in {"Phones", "Cameras", "Laptops"} or (sku in demo["planted"] and category == "Coffee")
    ]
    coffee_mains = {sku for sku in demo["planted"] if demo["category"][sku] == "Coffee"}
    offered = Counter()
    # when each is alone in a cart
    for sku in mains:
        keys = complete_purchase(limit=4, context={"items": [sku]}).keys
        offered["lists"] += bool(keys)
        # then nothing of its own category is offered, but for a coffee machine's own supplies
        # (never another machine or grinder)
        same = [key for key in keys if demo["category"][key] == demo["category"][sku]]
        assert sku not in keys
        assert not [key for key in same if key not in demo["planted"].get(sku, [])], (sku, same)
        assert sku not in coffee_mains or not set(keys) & coffee_mains
    assert offered["lists"] == len(mains) > 60


@pytest.mark.django_db
def test_the_phones_page_says_what_is_bought_with_it_and_what_is_similar(client, demo):
    # given the best-bought phone's page
    phone = best_bought_main(demo["planted"], "PHN-")
    html = client.get(reverse("shop:product", args=[phone])).content.decode()
    # then "Frequently bought together" holds its accessories, "bought together with" it, no phone
    title, keys, reasons = _block(html, "bought_together")
    assert title == "Frequently bought together"
    assert set(keys) & set(demo["planted"][phone])
    assert "Phones" not in {demo["category"][key] for key in keys}
    assert reasons[0] == f"bought together with {demo['name'][phone]}"
    # and "Similar items" says "similar to" it: the visitor viewed nothing else
    title, keys, reasons = _block(html, "similar")
    assert title == "Similar items"
    assert reasons[0] == f"similar to {demo['name'][phone]}"
    assert not [reason for reason in reasons if reason.startswith("because")]
