"""Simulated shopper behaviour: sessions of views, carts, purchases and searches.

Pure Python and deterministic for a given ``random.Random``. Each shopper plays a list
of planned sessions plus the follow-up sessions their behaviour causes (returning to
an abandoned cart, buying accessories for a main item), and every action goes to an
``EventSink`` as plain values; the generator turns them into database rows.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Protocol

from shop.demo.catalog import ProductSpec
from shop.demo.shoppers import SHOPPER_TYPES, ShopperType

DAY = 86400.0
BROWSE, RETURN, COMPLEMENT = 0, 1, 2


class EventSink(Protocol):
    def event(
        self,
        shopper: ShopperPlan,
        session_id: str,
        product: int | None,
        event_type: str,
        ts: float,
        value: float | None = None,
        quantity: int = 1,
        context: dict | None = None,
    ) -> None: ...

    def order(self, shopper: ShopperPlan, ts: float, lines: list[tuple[int, int, float]]) -> None: ...


@dataclass
class ShopperPlan:
    """One simulated shopper: a user (``user_index``) or an anonymous visitor."""

    user_index: int | None
    visitor_id: str
    shopper_type: str
    is_bot: bool
    start: float
    end: float
    budget: float
    emitted: int = 0
    # Floors of a registered shopper's history: planned sessions, then extra sessions until
    # ``min_events`` events were emitted (see ``generator._plan_shoppers``).
    min_sessions: int = 0
    min_events: int = 0
    purchased: set[int] = field(default_factory=set)


class CatalogIndex:
    """Sampling tables over the catalogue: per category, per shopper type, by price."""

    def __init__(self, products: list[ProductSpec]) -> None:
        self.products = products
        self.categories = sorted({p.category for p in products})
        self.by_category = {c: [p for p in products if p.category == c] for c in self.categories}
        self.by_price = {
            c: sorted(ps, key=lambda p: (p.price, p.index)) for c, ps in self.by_category.items()
        }
        self.price_rank = {p.index: rank for ps in self.by_price.values() for rank, p in enumerate(ps)}
        self.category_tables: dict[str, tuple[list[str], list[float]]] = {}
        self.product_tables: dict[tuple[str, str], tuple[list[ProductSpec], list[float]]] = {}
        for shopper_type in SHOPPER_TYPES.values():
            weights = [shopper_type.weight_of(c) for c in self.categories]
            self.category_tables[shopper_type.key] = (self.categories, list(accumulate(weights)))
            for c, ps in self.by_category.items():
                # Zipf popularity times a Gaussian affinity to the type's price level.
                w = [
                    p.popularity * math.exp(-((p.price_quantile - shopper_type.price_level) ** 2) / 0.08)
                    + 1e-6
                    for p in ps
                ]
                self.product_tables[(shopper_type.key, c)] = (ps, list(accumulate(w)))
        self.searchable_words = {
            c: sorted({p.name.split(" ")[0] for p in ps} | {c.lower()}) for c, ps in self.by_category.items()
        }

    def pick_category(self, rng: random.Random, type_key: str) -> str:
        names, cumulative = self.category_tables[type_key]
        return names[bisect.bisect(cumulative, rng.random() * cumulative[-1])]

    def pick_product(self, rng: random.Random, type_key: str, category: str) -> ProductSpec:
        items, cumulative = self.product_tables[(type_key, category)]
        return items[min(len(items) - 1, bisect.bisect(cumulative, rng.random() * cumulative[-1]))]

    def price_neighbour(self, rng: random.Random, product: ProductSpec) -> ProductSpec:
        ranked = self.by_price[product.category]
        rank = self.price_rank[product.index] + round(rng.gauss(0, 2.5))
        return ranked[max(0, min(len(ranked) - 1, rank))]


class Simulator:
    """Plays shoppers' sessions into a sink."""

    def __init__(self, catalog: CatalogIndex, rng: random.Random, id_rng: random.Random, now: float) -> None:
        self.catalog = catalog
        self.rng = rng
        self.id_rng = id_rng
        self.now = now

    def new_session_id(self) -> str:
        return f"{self.id_rng.getrandbits(96):024x}"

    # -- one shopper ---------------------------------------------------------------------------
    def play(self, shopper: ShopperPlan, planned_sessions: int, sink: EventSink) -> None:
        """Play ``planned_sessions`` sessions spread over the shopper's active time, plus follow-ups."""
        rng = self.rng
        last_start = max(shopper.start, min(shopper.end, self.now - 3600) - 1)
        queue: list[tuple[float, int, int, tuple[int, ...]]] = []
        for serial in range(planned_sessions):
            heapq.heappush(queue, (rng.uniform(shopper.start, last_start), serial, BROWSE, ()))
        serial = planned_sessions
        while queue:
            ts, _, kind, payload = heapq.heappop(queue)
            if ts >= shopper.end or ts >= self.now - 600:
                continue
            if shopper.is_bot:
                self._bot_session(shopper, ts, sink)
                continue
            for follow_up in self._session(shopper, ts, kind, payload, sink):
                serial += 1
                heapq.heappush(queue, (follow_up[0], serial, follow_up[1], follow_up[2]))

    def _bot_session(self, shopper: ShopperPlan, ts: float, sink: EventSink) -> None:
        """A crawler with a normal user agent: dozens of views a minute, in catalogue order."""
        rng = self.rng
        products = self.catalog.products
        session_id = self.new_session_id()
        position = rng.randrange(len(products))
        for _ in range(rng.randint(40, 150)):
            sink.event(shopper, session_id, products[position].index, "view", ts)
            shopper.emitted += 1
            position = (position + 1) % len(products)
            ts += rng.uniform(0.8, 3.0)

    def _session(
        self, shopper: ShopperPlan, ts: float, kind: int, payload: tuple[int, ...], sink: EventSink
    ) -> list[tuple[float, int, tuple[int, ...]]]:
        rng = self.rng
        catalog = self.catalog
        products = catalog.products
        kind_type: ShopperType = SHOPPER_TYPES[shopper.shopper_type]
        session_id = self.new_session_id()
        cart: dict[int, int] = {}
        follow_ups: list[tuple[float, int, tuple[int, ...]]] = []

        def emit(product: int | None, event_type: str, **kwargs) -> None:
            nonlocal ts
            sink.event(shopper, session_id, product, event_type, ts, **kwargs)
            shopper.emitted += 1
            ts += rng.expovariate(1 / 40.0) + 4.0

        def add_to_cart(item: ProductSpec) -> None:
            quantity = 1 if item.price >= 25 or rng.random() < 0.6 else rng.randint(2, 3)
            cart[item.index] = cart.get(item.index, 0) + quantity
            emit(item.index, "add_to_cart", quantity=quantity, value=round(item.price * quantity, 2))

        if kind == RETURN:
            # Back for an abandoned cart: look at the items again and (usually) buy them.
            for index in payload:
                emit(index, "view")
                if products[index].is_active and rng.random() < 0.8:
                    add_to_cart(products[index])
            buy = bool(cart) and rng.random() < 0.85
        elif kind == COMPLEMENT:
            # Accessories for a main item bought a few days ago.
            main = products[payload[0]]
            choice = products[rng.choice(main.complements)]
            emit(choice.index, "view")
            if rng.random() < 0.5:
                emit(catalog.price_neighbour(rng, choice).index, "view")
            add_to_cart(choice)
            buy = rng.random() < 0.85
        else:
            if rng.random() < kind_type.search_rate:
                category = catalog.pick_category(rng, kind_type.key)
                query = rng.choice(catalog.searchable_words[category])
                emit(None, "search", context={"query": query})
            else:
                category = catalog.pick_category(rng, kind_type.key)
            item = catalog.pick_product(rng, kind_type.key, category)
            views = 1 + int(rng.expovariate(1 / max(0.5, kind_type.session_length - 1)))
            for _ in range(min(views, 60)):
                emit(item.index, "view")
                roll = rng.random()
                if roll < kind_type.cart_rate and item.is_active and item.index not in cart:
                    add_to_cart(item)
                    if item.complements and rng.random() < 0.2:
                        # Bought together: an accessory goes into the same cart right after.
                        extra = products[rng.choice(item.complements)]
                        emit(extra.index, "view")
                        add_to_cart(extra)
                elif roll < kind_type.cart_rate + kind_type.wishlist_rate:
                    emit(item.index, "wishlist")
                # Sequential browsing: mostly the same category, often a similar price.
                move = rng.random()
                if move < 0.3:
                    item = catalog.price_neighbour(rng, item)
                elif move < 0.6:
                    item = catalog.pick_product(rng, kind_type.key, item.category)
                else:
                    item = catalog.pick_product(rng, kind_type.key, catalog.pick_category(rng, kind_type.key))
            for index in list(cart):
                if rng.random() < 0.12:
                    emit(index, "remove_from_cart", quantity=cart.pop(index))
            buy = bool(cart) and rng.random() < kind_type.buy_rate
        if not cart:
            return follow_ups
        if buy:
            lines = [(index, quantity, products[index].price) for index, quantity in cart.items()]
            sink.order(shopper, ts, lines)
            for index, quantity, price in lines:
                emit(index, "purchase", quantity=quantity, value=round(price * quantity, 2))
                shopper.purchased.add(index)
                if products[index].complements and rng.random() < 0.6:
                    follow_ups.append((ts + rng.uniform(0.3, 6.0) * DAY, COMPLEMENT, (index,)))
        elif rng.random() < kind_type.return_rate:
            # The planted purchase propensity: an abandoned cart brings the shopper back soon.
            follow_ups.append((ts + rng.uniform(0.2, 4.0) * DAY, RETURN, tuple(cart)))
        return follow_ups
