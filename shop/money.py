"""The demo shop's prices: one currency, written one way on every page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

CURRENCY_SYMBOL = "€"


def format_price(price: Any) -> str:
    """``"€1,299.00"``: the symbol, thousands separated, two decimals."""
    return f"{CURRENCY_SYMBOL}{Decimal(str(price)):,.2f}"
