"""The storefront's recommendation blocks in a real browser (Chromium through Playwright).

An anonymous visitor browses one category and the home page follows; a click on a
recommended item is recorded with its recommendation id; a shopper never sees what they
bought. The data is a small catalogue with co-visitation signal and refreshed item
relations and popularity, as the Celery beat tasks would leave them.
"""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CATEGORIES = {"PHN": "Phones", "BOK": "Books", "COF": "Coffee", "GRD": "Garden"}
PER_CATEGORY = 10
HOME_BLOCK = "section.rec-block[data-placement=home]"


@pytest.fixture
def storefront(transactional_db):
    """Four categories of ten products; shoppers browse within one category (co-visitation).

    Phones get the most traffic, so a home page that shows Books has followed the visitor
    rather than overall popularity. Relations and popularity are refreshed like beat does.
    """
    from recommendations.services.serving import popularity
    from recommendations.services.serving.popularity import refresh_popularity
    from recommendations.services.serving.relations import refresh_item_relations
    from tests.factories import CategoryFactory, EventFactory, ProductFactory, UserFactory

    products: dict[str, list] = {}
    for prefix, name in CATEGORIES.items():
        category = CategoryFactory(name=name, slug=name.lower())
        products[prefix] = [
            ProductFactory(
                sku=f"{prefix}-{i:02d}", name=f"{name} item {i}", category=category, price=Decimal("12.50")
            )
            for i in range(PER_CATEGORY)
        ]
    start = timezone.now() - timedelta(days=2)
    sessions = {"PHN": 8, "BOK": 4, "COF": 4, "GRD": 4}
    for prefix, shoppers in sessions.items():
        for shopper in range(shoppers):
            user = UserFactory(username=f"{prefix.lower()}-fan-{shopper}")
            for step in range(6):
                item = products[prefix][(shopper * 3 + step) % PER_CATEGORY]
                EventFactory(
                    user=user,
                    item=item,
                    event_type="add_to_cart" if step == 5 else "view",
                    occurred_at=start + timedelta(minutes=shopper * 30 + step),
                )
    refresh_popularity()
    refresh_item_relations()
    popularity.clear_local()
    return products


def _home_items(page) -> list[str]:
    return page.locator(f"{HOME_BLOCK} li.rec-item").evaluate_all(
        "items => items.map(li => li.getAttribute('data-item'))"
    )


def _poll(query, *, seconds: float = 10.0):
    """The first row of ``query`` once it exists (events from the beacon arrive asynchronously)."""
    deadline = time.monotonic() + seconds
    while True:
        row = query.first()
        if row is not None or time.monotonic() > deadline:
            return row
        time.sleep(0.1)


def test_anonymous_visitor_gets_recommendations_from_the_category_they_browse(
    live_server, browser_page, storefront
):
    # given an anonymous visitor who views three books
    page = browser_page
    for product in storefront["BOK"][:3]:
        page.goto(f"{live_server.url}/p/{product.sku}/")
    # when they open the home page
    page.goto(f"{live_server.url}/")
    # then most of "Recommended for you" are books they have not viewed yet
    items = _home_items(page)
    assert page.locator(f"{HOME_BLOCK} h2").inner_text() == "Recommended for you"
    assert len(items) == 8
    books = [key for key in items if key.startswith("BOK-")]
    assert len(books) > len(items) / 2
    assert not {"BOK-00", "BOK-01", "BOK-02"} & set(items)
    assert "because you viewed Books item" in page.locator(f"{HOME_BLOCK} .rec-reason").first.inner_text()


def test_click_on_a_recommendation_is_recorded_with_its_id_and_position(
    live_server, browser_page, storefront
):
    # given a visitor with a history in Coffee looking at the home page's recommendations
    from behavior.models import Event

    page = browser_page
    page.goto(f"{live_server.url}/p/{storefront['COF'][0].sku}/")
    page.goto(f"{live_server.url}/")
    block = page.locator(HOME_BLOCK)
    recommendation_id = block.get_attribute("data-recommendation-id")
    second = block.locator("li.rec-item").nth(1)
    key = second.get_attribute("data-item")
    # when they click the second recommended item
    second.locator("a.rec-link").click()
    page.wait_for_url(f"**/p/{key}/?rec={recommendation_id}&pos=2&pl=home")
    # then the beacon's click and the product page's view both carry the recommendation
    click = _poll(Event.objects.filter(event_type="click", recommendation_id=recommendation_id))
    assert click is not None
    assert (click.item.sku, click.position, click.placement, click.is_bot) == (key, 2, "home", False)
    view = _poll(Event.objects.filter(event_type="view", recommendation_id=recommendation_id))
    assert view is not None
    assert (view.item.sku, view.position, view.placement) == (key, 2, "home")
    assert click.visitor_id == view.visitor_id != ""


def test_logged_in_shopper_never_sees_an_item_they_bought(live_server, browser_page, storefront):
    # given a shopper who bought the most popular phone (an order and its purchase event)
    from tests.factories import EventFactory, OrderFactory, OrderItemFactory, UserFactory

    bought = storefront["PHN"][0]
    buyer = UserFactory(username="buyer")
    OrderItemFactory(order=OrderFactory(user=buyer, total=bought.price), product=bought)
    EventFactory(user=buyer, item=bought, event_type="view", occurred_at=timezone.now() - timedelta(hours=2))
    EventFactory(
        user=buyer, item=bought, event_type="purchase", occurred_at=timezone.now() - timedelta(hours=1)
    )
    page = browser_page
    # when they log in through the shop's login page and browse phones
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "buyer")
    page.fill("#id_password", "secret-pass-123")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    home = page.locator("section.rec-block li.rec-item").evaluate_all(
        "items => items.map(li => li.getAttribute('data-item'))"
    )
    page.goto(f"{live_server.url}/p/{storefront['PHN'][1].sku}/")
    product_page = page.locator("section.rec-block li.rec-item").evaluate_all(
        "items => items.map(li => li.getAttribute('data-item'))"
    )
    # then no block on either page offers the phone they bought, though phones are offered
    assert "Welcome back, buyer" in page.goto(f"{live_server.url}/").text()
    assert home and product_page
    assert bought.sku not in home
    assert bought.sku not in product_page
    assert any(key.startswith("PHN-") for key in home + product_page)
