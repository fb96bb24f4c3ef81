"""The cart's "Complete your purchase" in a real browser, on the seeded demo shop.

A shopper adds a phone from its product page and finds its accessories in the cart's block (the
complements ``seed_demo`` plants), then swaps it for a camera and is offered no camera. The data
is the demo shop with relations and popularity refreshed as the Celery beat tasks leave them.
"""

from __future__ import annotations

from collections import Counter

import pytest

from behavior.models import Event
from shop.demo.generator import SeedOptions
from shop.models import Product
from tests.shop.test_cart_complements import best_bought_main, seed_and_refresh

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
BLOCK = "section.rec-block[data-placement=cart]"


def _add_to_cart(page, base_url: str, sku: str) -> None:
    page.goto(f"{base_url}/p/{sku}/")
    page.click("form.add-form button[type=submit]")
    page.wait_for_url(f"{base_url}/cart/")


def _block(page) -> tuple[str, list[str], list[str]]:
    """The block's title, and the names and reasons of its items, as the shopper reads them."""
    block = page.locator(BLOCK)
    names = block.locator("a.rec-link").all_inner_texts()
    return block.locator("h2").inner_text(), names, block.locator(".rec-reason").all_inner_texts()


def test_a_phone_in_the_cart_finds_its_accessories_and_a_camera_no_other_camera(
    live_server, browser_page, transactional_db
):
    # given the demo shop, and the phone whose planted accessories shoppers most often bought after it
    planted = seed_and_refresh(SeedOptions(users=600, events=15_000, seed=7))
    phone = best_bought_main(planted, "PHN-")
    products = {p.sku: p for p in Product.objects.select_related("category")}
    names_in = {
        category: {p.name for p in products.values() if p.category.name == category}
        for category in ("Phones", "Cameras")
    }
    page = browser_page
    # when a shopper adds it to the cart from its product page
    _add_to_cart(page, live_server.url, phone)
    # then the cart's block completes the purchase with its accessories, and offers no phone
    title, names, reasons = _block(page)
    accessories = {products[sku].name for sku in planted[phone]}
    assert title == "Complete your purchase"
    assert len(names) == 4
    assert accessories & set(names)
    assert not names_in["Phones"] & set(names)
    assert f"goes with {products[phone].name} in your cart" in reasons
    # when they remove the phone and add the best-selling camera instead
    page.click("table.lines form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/cart/")
    sold = Counter(
        Event.objects.filter(event_type="purchase", item__sku__startswith="CAM-").values_list(
            "item__sku", flat=True
        )
    )
    camera = min(sold, key=lambda sku: (-sold[sku], sku))
    _add_to_cart(page, live_server.url, camera)
    # then the block holds no camera, the one in the cart least of all
    title, names, reasons = _block(page)
    assert names
    assert not names_in["Cameras"] & set(names)
    assert products[camera].name not in names
