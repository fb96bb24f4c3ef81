"""The storefront as a new visitor sees it: pictures, prices with their currency, full rows,
"New in" across the shop, and a first-visit block that says what it is.

Screenshots of each page are kept as test artefacts (see ``conftest.SCREENSHOTS``).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CATEGORIES = ("Phones", "Books", "Coffee", "Garden")
PRICE = re.compile(r"^€\d{1,3}(,\d{3})*\.\d{2}$")


@pytest.fixture
def small_shop(transactional_db):
    """Four categories of six products (Garden created last, as a category-by-category import
    would), viewed by a few shoppers so popularity has something to rank."""
    from recommendations.services.serving import popularity
    from recommendations.services.serving.popularity import refresh_popularity
    from tests.factories import CategoryFactory, EventFactory, ProductFactory, UserFactory

    products = []
    for name in CATEGORIES:
        category = CategoryFactory(name=name, slug=name.lower())
        products += [
            ProductFactory(
                sku=f"{name[:3].upper()}-{i}",
                name=f"{name} item {i}",
                category=category,
                price=Decimal("1234.50"),
            )
            for i in range(6)
        ]
    start = timezone.now() - timedelta(days=1)
    for n, product in enumerate(products):
        user = UserFactory(username=f"viewer-{n}")
        EventFactory(user=user, item=product, event_type="view", occurred_at=start + timedelta(minutes=n))
    refresh_popularity()
    popularity.clear_local()
    return products


def _rows(page, selector: str) -> list[int]:
    """How many of ``selector``'s elements sit on each visual row, top to bottom."""
    tops = page.locator(selector).evaluate_all(
        "els => els.map(e => Math.round(e.getBoundingClientRect().top))"
    )
    return [count for _, count in sorted(Counter(tops).items())]


def test_a_new_visitor_sees_pictures_prices_full_rows_and_what_each_block_is(
    live_server, browser_page, small_shop, screenshot
):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    # when a first-time visitor opens the home page
    page.goto(f"{live_server.url}/")
    page.wait_for_load_state("networkidle")
    screenshot(page, "home")
    # then the personal block says it is the shop's trend for now, not a personal selection
    home = page.locator("section.rec-block[data-placement=home]")
    assert home.locator("h2").inner_text() == "Trending in the shop"
    assert (
        home.locator(".rec-note").inner_text() == "Browse a few products and this row becomes your own picks."
    )
    headings = page.locator("section.rec-block h2").all_inner_texts()
    assert "Recommended for you" not in headings and "Popular now" in headings
    # and every recommended item has a loaded picture and a price in euros
    items = page.locator("section.rec-block li.rec-item")
    assert items.count() == 16
    prices = page.locator("section.rec-block .rec-price").all_inner_texts()
    assert len(prices) == 16 and all(PRICE.match(price) for price in prices), prices
    assert set(prices) == {"€1,234.50"}
    widths = page.locator("section.rec-block li.rec-item img").evaluate_all(
        "els => els.map(e => e.naturalWidth)"
    )
    assert len(widths) == 16 and min(widths) > 0
    # and the blocks of eight fill two rows of four
    assert _rows(page, "section.rec-block[data-placement=popular] li.rec-item") == [4, 4]
    assert _rows(page, "section.rec-block[data-placement=home] li.rec-item") == [4, 4]
    # and "New in" shows the newest of every category, two rows of four, with pictures
    new_in = page.locator("section.listing:has(h2:text('New in')) li.card")
    assert new_in.count() == 8
    categories = Counter(text.title() for text in new_in.locator(".card-category").all_inner_texts())
    assert categories == dict.fromkeys(CATEGORIES, 2)
    assert _rows(page, "section.listing li.card") == [4, 4]
    new_in.last.scroll_into_view_if_needed()  # the cards' pictures load lazily, as they come into view
    page.wait_for_function("() => [...document.querySelectorAll('li.card img')].every(i => i.complete)")
    card_widths = new_in.locator("img").evaluate_all("els => els.map(e => e.naturalWidth)")
    assert len(card_widths) == 8 and min(card_widths) > 0


def test_a_product_page_shows_its_own_picture_and_price(live_server, browser_page, small_shop, screenshot):
    page = browser_page
    product = small_shop[0]
    # when a visitor opens a product
    page.goto(f"{live_server.url}{product.get_absolute_url()}")
    page.wait_for_load_state("networkidle")
    screenshot(page, "product")
    # then its picture (drawn for it: its name is on it) is loaded and the price reads in euros
    picture = page.locator("img.product-visual")
    assert picture.evaluate("e => e.naturalWidth") > 0
    svg = page.request.get(f"{live_server.url}{picture.get_attribute('src')}")
    assert svg.headers["content-type"] == "image/svg+xml"
    assert product.name in svg.text() and "PHONES" in svg.text()
    assert page.locator("p.price").inner_text() == "€1,234.50"
    prices = page.locator("section.rec-block .rec-price").all_inner_texts()
    assert prices and all(PRICE.match(price) for price in prices), prices
