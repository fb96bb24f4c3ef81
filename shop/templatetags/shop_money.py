"""``{% load shop_money %}``: ``{{ product.price|money }}`` writes a price as every shop page does."""

from __future__ import annotations

from typing import Any

from django import template

from shop.money import format_price

register = template.Library()


@register.filter
def money(price: Any) -> str:
    """The price with the shop's currency (``shop.money.format_price``); "" for no price."""
    return "" if price is None or price == "" else format_price(price)
