"""The session cart and the atomic checkout."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from behavior.models import Event
from shop.models import Order, OrderItem


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.django_db
def test_add_to_cart_keeps_quantity_and_attribution_and_records_the_event(client, phone):
    # given a product reached from a recommendation block
    rec = uuid.uuid4()
    # when it is added to the cart with the attribution the product page carries
    response = client.post(
        reverse("shop:cart_add"),
        {"sku": phone.sku, "quantity": "2", "rec": str(rec), "pos": "1", "pl": "similar"},
    )
    # then the session holds {sku: qty} and the attribution, and the event carries both
    assert response.status_code == 302 and response.url == reverse("shop:cart")
    assert client.session["cart"] == {phone.sku: 2}
    assert client.session["cart_attribution"][phone.sku] == {"rec": str(rec), "pos": 1, "pl": "similar"}
    event = Event.objects.get()
    assert (event.event_type, event.item_id, event.quantity, event.value) == (
        "add_to_cart",
        phone.pk,
        2,
        Decimal("998.00"),
    )
    assert (event.recommendation_id, event.position, event.placement) == (rec, 1, "similar")


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", ["0", "-1", "abc", "100", ""])
def test_add_to_cart_refuses_a_bad_quantity(client, phone, quantity):
    # when / then a clear 400 naming the field, nothing in the cart, no event
    response = client.post(reverse("shop:cart_add"), {"sku": phone.sku, "quantity": quantity})
    assert response.status_code == 400
    assert _messages(response) == ["quantity: enter a whole number between 1 and 99."]
    assert client.session.get("cart", {}) == {}
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_add_to_cart_refuses_unknown_product_and_more_than_the_stock(client, phone):
    # when adding an unknown sku, then more than the 5 in stock
    unknown = client.post(reverse("shop:cart_add"), {"sku": "NOPE", "quantity": "1"})
    too_many = client.post(reverse("shop:cart_add"), {"sku": phone.sku, "quantity": "6"})
    # then both are refused with a message
    assert unknown.status_code == 400
    assert _messages(unknown) == ["sku: this product does not exist or is no longer sold."]
    assert too_many.status_code == 409
    assert _messages(too_many) == ["Only 5 of Nova Pro 128 GB in stock."]
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_remove_from_cart_records_the_removed_quantity(client, phone, case):
    # given two products in the cart
    client.post(reverse("shop:cart_add"), {"sku": phone.sku, "quantity": "1"})
    client.post(reverse("shop:cart_add"), {"sku": case.sku, "quantity": "3"})
    # when the case is removed
    response = client.post(reverse("shop:cart_remove"), {"sku": case.sku})
    # then only the phone is left and a remove_from_cart event holds the 3 removed units
    assert response.status_code == 302
    assert client.session["cart"] == {phone.sku: 1}
    removal = Event.objects.get(event_type="remove_from_cart")
    assert (removal.item_id, removal.quantity) == (case.pk, 3)


@pytest.mark.django_db
def test_guest_checkout_creates_the_order_takes_stock_and_records_purchases(client, phone, case):
    # given a cart with an attributed phone and two cases
    rec = uuid.uuid4()
    client.post(
        reverse("shop:cart_add"),
        {"sku": phone.sku, "quantity": "1", "rec": str(rec), "pos": "2", "pl": "home"},
    )
    client.post(reverse("shop:cart_add"), {"sku": case.sku, "quantity": "2"})
    # when the guest checks out with an email
    response = client.post(reverse("shop:checkout"), {"email": "guest@example.com"})
    # then one order holds both lines and the total, stock went down, the cart is empty
    order = Order.objects.get()
    assert response.status_code == 302 and response.url == reverse("shop:order_done", args=[order.pk])
    assert (order.user, order.email, order.total) == (None, "guest@example.com", Decimal("538.98"))
    assert order.visitor_id != ""
    assert sorted(order.items.values_list("product__sku", "quantity", "unit_price")) == [
        ("PAC-0001", 2, Decimal("19.99")),
        ("PHN-0001", 1, Decimal("499.00")),
    ]
    phone.refresh_from_db()
    case.refresh_from_db()
    assert (phone.stock, case.stock) == (4, 48)
    assert client.session["cart"] == {}
    # and one purchase event per line with value = line total, the phone's with its attribution
    purchases = {e.item_id: e for e in Event.objects.filter(event_type="purchase")}
    assert (purchases[phone.pk].value, purchases[phone.pk].quantity) == (Decimal("499.00"), 1)
    assert (purchases[case.pk].value, purchases[case.pk].quantity) == (Decimal("39.98"), 2)
    assert (
        purchases[phone.pk].recommendation_id,
        purchases[phone.pk].position,
        purchases[phone.pk].placement,
    ) == (rec, 2, "home")
    assert purchases[case.pk].recommendation_id is None
    # and the thank-you page shows the order to its buyer only
    done = client.get(response.url)
    assert done.status_code == 200 and "538.98" in done.content.decode()


@pytest.mark.django_db
def test_signed_in_checkout_uses_the_account(client, user, phone):
    # given a signed-in shopper with the phone in the cart
    client.force_login(user)
    client.post(reverse("shop:cart_add"), {"sku": phone.sku, "quantity": "1"})
    # when checking out without an email
    response = client.post(reverse("shop:checkout"), {})
    # then the order belongs to the user, with their email
    order = Order.objects.get()
    assert response.status_code == 302
    assert (order.user, order.email) == (user, user.email)
    assert Event.objects.filter(event_type="purchase", user=user).count() == 1


@pytest.mark.django_db
def test_checkout_refuses_an_empty_cart(client):
    # when posting the checkout with nothing in the cart
    response = client.post(reverse("shop:checkout"), {"email": "guest@example.com"})
    get = client.get(reverse("shop:checkout"))
    # then a 400 with a clear message, and the GET goes back to the cart
    assert response.status_code == 400
    assert _messages(response) == ["Your cart is empty."]
    assert get.status_code == 302 and get.url == reverse("shop:cart")
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_guest_checkout_needs_an_email(client, phone):
    # given a cart / when a guest checks out without an email
    client.post(reverse("shop:cart_add"), {"sku": phone.sku, "quantity": "1"})
    response = client.post(reverse("shop:checkout"), {"email": ""})
    # then a 400 names the field and nothing is written
    assert response.status_code == 400
    assert response.context["form"].errors == {"email": ["This field is required."]}
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_checkout_out_of_stock_writes_nothing(client, phone, case):
    # given a cart with the phone and a case, then the phone sells out elsewhere
    client.post(reverse("shop:cart_add"), {"sku": case.sku, "quantity": "1"})
    client.post(reverse("shop:cart_add"), {"sku": phone.sku, "quantity": "2"})
    phone.stock = 1
    phone.save()
    # when checking out
    response = client.post(reverse("shop:checkout"), {"email": "guest@example.com"})
    # then it is refused with a clear message; no order, no item, no stock taken, no purchase event
    assert response.status_code == 409
    assert _messages(response)[-1] == "Only 1 of Nova Pro 128 GB left in stock."
    assert (Order.objects.count(), OrderItem.objects.count()) == (0, 0)
    case.refresh_from_db()
    assert case.stock == 50
    assert not Event.objects.filter(event_type="purchase").exists()
    assert client.session["cart"] == {case.sku: 1, phone.sku: 2}


@pytest.mark.django_db
def test_checkout_refuses_a_product_no_longer_sold(client, phone):
    # given the phone in the cart, then deactivated
    client.post(reverse("shop:cart_add"), {"sku": phone.sku, "quantity": "1"})
    phone.is_active = False
    phone.save()
    # when / then
    response = client.post(reverse("shop:checkout"), {"email": "guest@example.com"})
    assert response.status_code == 409
    assert _messages(response)[-1] == "PHN-0001 is no longer sold."
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_order_page_is_private(client, order_factory):
    # given somebody else's order / when another browser asks for it / then 404
    order = order_factory()
    assert client.get(reverse("shop:order_done", args=[order.pk])).status_code == 404
