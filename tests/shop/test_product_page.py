"""The product page with its two recommendation blocks: what it shows and the queries it costs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse, set_script_prefix
from django.utils import timezone

from behavior.models import Event
from recommendations.services.serving.impressions import redis_client
from recommendations.services.serving.popularity import refresh_popularity
from recommendations.services.serving.relations import refresh_item_relations


@pytest.fixture
def shelf(phones, category_factory, product_factory, user_factory, event_factory):
    """Twelve phones and four cases: six shoppers each view six phones, buy one and a case with it.

    Phone 2 is bought by three shoppers, two of them with case 0 (its complement).
    """
    cases = category_factory(name="Cases", slug="cases")
    items = [product_factory(sku=f"PHN-{i:04d}", category=phones, stock=9) for i in range(12)]
    items += [product_factory(sku=f"CAS-{i:04d}", category=cases, stock=9) for i in range(4)]
    now = timezone.now()
    for u in range(6):
        shopper = user_factory()
        steps = [(item, "view") for item in items[u : u + 6]]
        steps += [(items[2 + u % 2], "purchase"), (items[12 + u % 4], "purchase")]
        for step, (item, event_type) in enumerate(steps):
            when = now - timedelta(hours=u) + timedelta(minutes=step)
            event_factory(user=shopper, item=item, event_type=event_type, occurred_at=when)
    refresh_item_relations()
    refresh_popularity()
    return items


def _block(html: str, placement: str) -> list[str]:
    section = re.search(rf'data-placement="{placement}">(.*?)</section>', html, re.S)
    assert section, f"no {placement} block"
    return re.findall(r'data-item="([^"]+)"', section.group(1))


def _reasons(html: str, placement: str) -> list[str]:
    section = re.search(rf'data-placement="{placement}">(.*?)</section>', html, re.S)
    assert section, f"no {placement} block"
    return re.findall(r'<small class="rec-reason">([^<]*)</small>', section.group(1))


@pytest.mark.django_db
def test_product_page_shows_two_blocks_with_a_fixed_number_of_queries(
    client, shelf, django_assert_num_queries
):
    # given a visitor who has seen one page (session, visitor cookie)
    client.get(reverse("shop:product", args=[shelf[1].sku]))
    # when they open another product page
    # the product; the view event (in the test's transaction: with a savepoint around it); the
    # categories; the visitor's history; the relations of each block; without a Redis cache also
    # the items of the first block (the second block's candidates were all looked up by the first)
    # and the impressions (written at once after the response). With Redis the first page built
    # the process's item snapshot (serving.catalogue) and impressions are queued in Redis.
    queries = 8 if redis_client() is not None else 10
    with django_assert_num_queries(queries):
        response = client.get(reverse("shop:product", args=[shelf[2].sku]))
    # then both blocks are there, with different items, none of them the page's product
    html = response.content.decode()
    together, similar = _block(html, "bought_together"), _block(html, "similar")
    assert 1 <= len(together) <= 4 and 1 <= len(similar) <= 8
    assert not set(together) & set(similar)
    assert shelf[2].sku not in together + similar
    # "Frequently bought together" is the case bought with this phone, then other cases: never a phone
    assert together[0] == "CAS-0000"
    assert all(key.startswith("CAS-") for key in together)
    assert _reasons(html, "bought_together")[0] == f"bought together with {shelf[2].name}"
    # "Similar items" says what it is, and never "because you viewed" (this visitor saw one phone)
    assert _reasons(html, "similar")[0] == f"similar to {shelf[2].name}"
    assert "because you viewed" not in html
    # and every item links to its page with the block's recommendation id and position
    rec_id = re.search(r'data-recommendation-id="([^"]+)" data-placement="similar"', html).group(1)
    assert f'href="/p/{similar[0]}/?rec={rec_id}&amp;pos=1&amp;pl=similar"' in html
    assert Event.objects.filter(event_type="view", item=shelf[2], user=None).count() == 1


@pytest.mark.django_db
def test_catalogue_urls_follow_the_script_prefix(phone):
    # given a product whose URL was reversed at the root
    assert phone.get_absolute_url() == "/p/PHN-0001/"
    # when the site is served under a prefix
    set_script_prefix("/shop/")
    try:
        # then the remembered URL is not reused there
        assert phone.get_absolute_url() == "/shop/p/PHN-0001/"
        assert phone.category.get_absolute_url() == "/shop/c/phones/"
    finally:
        set_script_prefix("/")
    assert phone.get_absolute_url() == "/p/PHN-0001/"
