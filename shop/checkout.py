"""Placing an order from the cart: all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext

from shop.cart import MAX_QUANTITY
from shop.models import Order, OrderItem, Product


class CheckoutError(Exception):
    """The order cannot be placed; ``str(error)`` is a message for the shopper."""


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int


def place_order(lines: Sequence[OrderLine], *, user=None, visitor_id: str = "", email: str = "") -> Order:
    """Create the order and its items and take the stock, atomically.

    Products are locked (``select_for_update``) so two concurrent checkouts cannot sell
    the same last unit. Raises ``CheckoutError`` (and writes nothing) when the cart is
    empty, a quantity is out of range, or a product is unknown, inactive or short of stock.
    """
    if not lines:
        raise CheckoutError(gettext("Your cart is empty."))
    for line in lines:
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise CheckoutError(
                gettext("quantity: enter a whole number between 1 and %(max)d.") % {"max": MAX_QUANTITY}
            )
    with transaction.atomic():
        products = Product.objects.select_for_update().in_bulk([line.sku for line in lines], field_name="sku")
        problems = []
        for line in lines:
            product = products.get(line.sku)
            if product is None or not product.is_active:
                problems.append(gettext("%(sku)s is no longer sold.") % {"sku": line.sku})
            elif product.stock < line.quantity:
                problems.append(
                    gettext("%(name)s is out of stock.") % {"name": product.name}
                    if product.stock == 0
                    else gettext("Only %(stock)d of %(name)s left in stock.")
                    % {"stock": product.stock, "name": product.name}
                )
        if problems:
            raise CheckoutError(" ".join(problems))
        order = Order.objects.create(
            user=user if user is not None and user.is_authenticated else None,
            visitor_id=visitor_id or "",
            email=email or (getattr(user, "email", "") or ""),
            total=Decimal("0"),
        )
        items = []
        total = Decimal("0")
        for line in lines:
            product = products[line.sku]
            product.stock -= line.quantity
            product.save(update_fields=["stock"])
            items.append(
                OrderItem(order=order, product=product, quantity=line.quantity, unit_price=product.price)
            )
            total += product.price * line.quantity
        OrderItem.objects.bulk_create(items)
        order.total = total
        order.save(update_fields=["total"])
    return order
