"""The session cart: ``request.session["cart"] = {sku: qty}`` plus attribution per sku.

Attribution (``request.session["cart_attribution"] = {sku: {"rec", "pos", "pl"}}``)
remembers which recommendation block brought an item into the cart, so that the
purchase events can carry the same recommendation id, position and placement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext

from shop.models import Product

CART_KEY = "cart"
ATTRIBUTION_KEY = "cart_attribution"
MAX_QUANTITY = 99


@dataclass(frozen=True)
class Attribution:
    """Where a shopper came from: a recommendation id, its position and placement."""

    recommendation_id: str | None = None
    position: int | None = None
    placement: str = ""

    @classmethod
    def from_params(cls, params: Any) -> Attribution:
        """Read ``rec``/``pos``/``pl`` from a QueryDict or dict; invalid values are dropped."""
        rec = str(params.get("rec") or "").strip()
        try:
            recommendation_id = str(uuid.UUID(rec)) if rec else None
        except ValueError:
            recommendation_id = None
        if recommendation_id is None:
            return cls()
        position: int | None
        try:
            position = int(params.get("pos") or "")
        except (TypeError, ValueError):
            position = None
        if position is not None and not 1 <= position <= 1000:
            position = None
        placement = str(params.get("pl") or "").strip()[:64]
        return cls(recommendation_id, position, placement)

    def as_event_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``behavior.tracking.record_event``."""
        if not self.recommendation_id:
            return {}
        return {
            "recommendation_id": self.recommendation_id,
            "position": self.position,
            "placement": self.placement,
        }

    def as_session(self) -> dict[str, Any]:
        return {"rec": self.recommendation_id, "pos": self.position, "pl": self.placement}


@dataclass
class CartLine:
    product: Product
    quantity: int
    attribution: Attribution

    @property
    def line_total(self) -> Decimal:
        return self.product.price * self.quantity


class QuantityError(ValueError):
    """A quantity that is not a whole number between 1 and ``MAX_QUANTITY``."""


def _quantity_message() -> str:
    return gettext("quantity: enter a whole number between 1 and %(max)d.") % {"max": MAX_QUANTITY}


def parse_quantity(raw: Any) -> int:
    """Validate a quantity from a form; raise QuantityError with a message naming the field."""
    try:
        quantity = int(str(raw).strip())
    except (TypeError, ValueError):
        raise QuantityError(_quantity_message()) from None
    if not 1 <= quantity <= MAX_QUANTITY:
        raise QuantityError(_quantity_message())
    return quantity


class Cart:
    """Read and change the cart held in a Django session."""

    def __init__(self, session: Any) -> None:
        self.session = session
        raw = session.get(CART_KEY)
        self.quantities: dict[str, int] = (
            {str(k): int(v) for k, v in raw.items() if str(v).isdigit() and int(v) > 0}
            if isinstance(raw, dict)
            else {}
        )
        raw_attr = session.get(ATTRIBUTION_KEY)
        self.attributions: dict[str, dict[str, Any]] = raw_attr if isinstance(raw_attr, dict) else {}

    def __len__(self) -> int:
        return sum(self.quantities.values())

    def quantity_of(self, sku: str) -> int:
        return self.quantities.get(sku, 0)

    def add(self, sku: str, quantity: int, attribution: Attribution | None = None) -> int:
        """Add ``quantity`` of ``sku`` (capped at MAX_QUANTITY); return the new quantity."""
        new_quantity = min(self.quantities.get(sku, 0) + quantity, MAX_QUANTITY)
        self.quantities[sku] = new_quantity
        if attribution is not None and attribution.recommendation_id:
            self.attributions[sku] = attribution.as_session()
        self._save()
        return new_quantity

    def remove(self, sku: str) -> int:
        """Drop ``sku`` from the cart; return how many units were removed (0 if absent)."""
        removed = self.quantities.pop(sku, 0)
        self.attributions.pop(sku, None)
        self._save()
        return removed

    def clear(self) -> None:
        self.quantities = {}
        self.attributions = {}
        self._save()

    def attribution_of(self, sku: str) -> Attribution:
        return Attribution.from_params(self.attributions.get(sku) or {})

    def lines(self) -> list[CartLine]:
        """The cart's products (one query), in the order they were added; unknown skus dropped."""
        products = Product.objects.select_related("category").in_bulk(list(self.quantities), field_name="sku")
        return [
            CartLine(products[sku], qty, self.attribution_of(sku))
            for sku, qty in self.quantities.items()
            if sku in products
        ]

    def _save(self) -> None:
        self.session[CART_KEY] = dict(self.quantities)
        self.session[ATTRIBUTION_KEY] = {k: v for k, v in self.attributions.items() if k in self.quantities}
        self.session.modified = True
