"""Every shop page renders and records the right behaviour events."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from behavior.models import Event


@pytest.mark.django_db
def test_home_renders_with_recommendation_blocks_and_beacon(client, phone, product_factory):
    # given a catalogue of 20 products / when the home page is requested
    product_factory.create_batch(19)
    response = client.get(reverse("shop:home"))
    # then it renders the blocks' markup, the beacon script and sets the CSRF cookie
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/behavior/beacon.js" in html
    assert 'class="rec-block"' in html
    # a new visitor has no history: the personal block says it shows the shop's trend for now
    assert "Trending in the shop" in html and "Recommended for you" not in html
    assert "Popular now" in html
    assert "csrftoken" in response.cookies


@pytest.mark.django_db
def test_category_page_lists_active_products_paginated(client, phones, product_factory):
    # given 30 active products and one inactive product in a category
    product_factory.create_batch(30, category=phones)
    product_factory(category=phones, name="Hidden phone", is_active=False)
    # when the first and the second page are requested
    first = client.get(reverse("shop:category", args=["phones"]))
    second = client.get(reverse("shop:category", args=["phones"]), {"page": 2})
    # then 24 products are on the first page, 6 on the second, the inactive one on neither
    assert first.status_code == 200 and second.status_code == 200
    assert len(first.context["page"].object_list) == 24
    assert len(second.context["page"].object_list) == 6
    assert first.context["page"].paginator.count == 30
    assert "Hidden phone" not in first.content.decode() + second.content.decode()
    assert "Popular in this category" in first.content.decode()


@pytest.mark.django_db
def test_unknown_category_is_404(client):
    # when / then
    assert client.get(reverse("shop:category", args=["nope"])).status_code == 404


@pytest.mark.django_db
def test_product_page_records_a_view_with_its_attribution(client, phone):
    # given a link from a recommendation block
    rec = uuid.uuid4()
    # when the product page is opened through it
    response = client.get(
        reverse("shop:product", args=[phone.sku]), {"rec": str(rec), "pos": "3", "pl": "home"}
    )
    # then the page renders and one view event carries the recommendation id, position and placement
    assert response.status_code == 200
    assert "Nova Pro 128 GB" in response.content.decode()
    event = Event.objects.get()
    assert (event.event_type, event.item_id) == ("view", phone.pk)
    assert (event.recommendation_id, event.position, event.placement) == (rec, 3, "home")
    assert f'name="rec" value="{rec}"' in response.content.decode()


@pytest.mark.django_db
def test_product_page_ignores_malformed_attribution(client, phone):
    # when the rec parameter is not a UUID
    response = client.get(
        reverse("shop:product", args=[phone.sku]), {"rec": "nonsense", "pos": "x", "pl": "home"}
    )
    # then the view is still recorded, without attribution
    assert response.status_code == 200
    event = Event.objects.get()
    assert (event.recommendation_id, event.position, event.placement) == (None, None, "")


@pytest.mark.django_db
def test_inactive_or_unknown_product_is_404_and_records_nothing(client, product_factory):
    # given an inactive product
    hidden = product_factory(is_active=False)
    # when / then
    assert client.get(reverse("shop:product", args=[hidden.sku])).status_code == 404
    assert client.get(reverse("shop:product", args=["NOPE-1"])).status_code == 404
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_search_finds_name_and_description_and_records_the_query(client, phone, case):
    # when searching a word of the phone's description
    response = client.get(reverse("shop:search"), {"q": "  OLED   display "})
    # then only the phone is found and one search event holds the normalised query
    assert response.status_code == 200
    assert [p.sku for p in response.context["page"].object_list] == ["PHN-0001"]
    event = Event.objects.get()
    assert event.event_type == "search"
    assert event.item_id is None
    assert event.context["query"] == "OLED display"
    assert event.context["results"] == 1


@pytest.mark.django_db
def test_search_by_name_and_empty_search(client, phone, case):
    # when searching a name fragment, then an empty query
    found = client.get(reverse("shop:search"), {"q": "case"})
    empty = client.get(reverse("shop:search"), {"q": ""})
    # then the name match is listed and the empty search records nothing
    assert [p.sku for p in found.context["page"].object_list] == ["PAC-0001"]
    assert empty.status_code == 200 and empty.context["page"] is None
    assert list(Event.objects.values_list("context__query", flat=True)) == ["case"]


@pytest.mark.django_db
def test_cart_page_renders_empty_and_filled(client, phone, product_factory):
    # given other products to recommend; an empty cart, then a cart with the phone
    product_factory.create_batch(6)
    empty = client.get(reverse("shop:cart"))
    client.post(reverse("shop:cart_add"), {"sku": phone.sku, "quantity": "2"})
    filled = client.get(reverse("shop:cart"))
    # then both render; the empty one offers the shopper's own list
    assert empty.status_code == 200 and "Your cart is empty" in empty.content.decode()
    assert "<h2>Recommended for you</h2>" in empty.content.decode()
    # the filled one shows the line total; nothing was ever bought with the phone, so its block is
    # not "Complete your purchase" but a different one, without the phone or another phone
    assert filled.status_code == 200
    assert filled.context["total"] == Decimal("998.00")
    html = filled.content.decode()
    assert "€998.00" in html
    assert "Complete your purchase" not in html
    assert "<h2>Popular in other categories</h2>" in html
    assert html.count('class="rec-item"') == 4 and 'data-item="PHN-' not in html.split("<h2>Popular")[1]


@pytest.mark.django_db
def test_pages_use_get_only(client):
    # when a page is posted to / then it answers 405
    assert client.post(reverse("shop:home")).status_code == 405
