"""Deterministic demo data for the shop: a catalogue, shoppers and weeks of behaviour.

``seed_demo(SeedOptions(...))`` writes everything in one transaction; the same options and
the same ``now`` give exactly the same rows (event ids included).

What is planted (the ground truth is stored in ``shop.PlantedShopper``; see PLANTED.md):

- **Catalogue**: ~400 products in 14 named categories (brand + line + variant names,
  log-normal prices per category, ~4 % out of stock, ~3 % inactive), Zipf popularity
  within each category.
- **Shopper types** (``shop.demo.shoppers.SHOPPER_TYPES``), each with its own favourite
  categories (no two types share one; ~85-90 % of a type's views), its own price level
  and its own funnel, so a type can be told from a short history: tech enthusiast
  (phones, laptops, cameras; the dearest items), bargain hunter (audio + toys; the
  cheapest items, longer sessions, many searches), home cook (kitchen + coffee), outdoor
  & sporty (sports + outdoor; mid-priced), book lover (books; short sessions, the highest
  conversion), window shopper (fashion + beauty; views and wishlists, almost never buys).
- **Histories**: every registered shopper (bots aside) plays at least ``MIN_SESSIONS`` (2)
  sessions and at least ``MIN_EVENTS`` (8) events, churners before they stop; the rest
  of ``--events`` goes out by a log-normal activity (a long tail of heavy shoppers). The
  floors hold from ``FLOOR_EVENTS_PER_USER`` (12) events per user; at the benchmark's 15
  the median registered shopper has ~12 events.
- **Funnels**: view -> add_to_cart (3-28 % by type) -> purchase (8-65 % of carts by
  type); 12 % of carted items are removed; a few wishlist events; searches with a query
  in ``context``. Purchases are grouped per session into ``Order`` rows.
- **Complements** (a next-item signal): each main item (phone, laptop, coffee machine)
  has 2-3 complementary accessories; 60 % of main purchases are followed 0.3-6 days
  later by a session that views and (85 %) buys one of them; 20 % of carted main items
  get an accessory added right after them, in the same order.
- **Sequential browsing**: within a session the next view stays in the same category
  60 % of the time (half of it a neighbour in price).
- **Purchase propensity**: an abandoned cart brings the shopper back 0.2-4 days later
  (60-70 % for buying types) to view and buy those items.
- **Churn**: 15 % of non-bot shoppers stop visiting after 30-60 % of their active time
  (their history floor falls before that).
- **Anonymous visitors** (visitor_id only, no user; 25 % as many as users) and **bots**
  (1 % of users: 40-150 catalogue-order views per session, one every 0.8-3 s, no carts,
  no purchases; their events are NOT flagged ``is_bot``: detection must use behaviour).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.text import slugify

from behavior.models import Event
from shop.demo.catalog import CATEGORIES, ProductSpec, build_catalog
from shop.demo.shoppers import BOT_TYPE, DEMO_SHOPPERS, SHOPPER_TYPES
from shop.demo.simulation import DAY, CatalogIndex, EventSink, ShopperPlan, Simulator
from shop.demo.writer import insert_rows, is_postgres, reset_sequences
from shop.models import Category, Order, OrderItem, PlantedShopper, Product

STAFF_LOGIN = ("admin", "admin-demo-pass")
SHOPPER_PASSWORD = "shopper-demo-pass"
CHUNK_SIZE = 10_000

EVENT_FIELDS = (
    "event_id",
    "user",
    "visitor_id",
    "session_id",
    "item",
    "event_type",
    "value",
    "quantity",
    "occurred_at",
    "received_at",
    "recommendation_id",
    "placement",
    "position",
    "context",
    "is_bot",
)


@dataclass(frozen=True)
class SeedOptions:
    """Sizes and knobs of the generated shop (the command's options)."""

    users: int = 3000
    events: int = 150_000
    days: int = 42
    seed: int = 42
    products: int = 400
    bot_share: float = 0.01
    anonymous_share: float = 0.25
    churn_share: float = 0.15
    # The demo logins (an "admin" superuser, alice/bob/carol) with their published passwords;
    # off by default: a shop seeded anywhere but a local demo must not have such accounts.
    demo_logins: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the option when a value is out of range."""
        if self.users < 10:
            raise ValueError("--users must be at least 10")
        if self.events < self.users:
            raise ValueError("--events must be at least --users")
        if not 1 <= self.days <= 3650:
            raise ValueError("--days must be between 1 and 3650")
        if self.products < 4 * len(CATEGORIES):
            raise ValueError(f"--products must be at least {4 * len(CATEGORIES)}")


@dataclass
class SeedReport:
    products: int = 0
    users: int = 0
    visitors: int = 0
    events: int = 0
    orders: int = 0
    seconds: float = 0.0
    type_counts: dict[str, int] = field(default_factory=dict)


def demo_logins() -> list[tuple[str, str, str]]:
    """(username, password, what) of the demo accounts."""
    logins = [(STAFF_LOGIN[0], STAFF_LOGIN[1], "staff (admin site)")]
    logins += [
        (name, SHOPPER_PASSWORD, SHOPPER_TYPES[kind].label.lower()) for name, kind in DEMO_SHOPPERS.items()
    ]
    return logins


def demo_data_exists() -> bool:
    return Product.objects.exists()


def flush_demo_data() -> None:
    """Delete the demo data: every event, order, product and category, and the generated users."""
    user_model = get_user_model()
    with transaction.atomic():
        for model in (Event, OrderItem, Order):
            queryset = model._default_manager.all()
            queryset._raw_delete(queryset.db)  # no signals or cascades needed: nothing points at them
        names = [STAFF_LOGIN[0], *DEMO_SHOPPERS]
        user_model._default_manager.filter(Q(planted_shopper__isnull=False) | Q(username__in=names)).delete()
        Product.objects.all().delete()
        Category.objects.all().delete()


class _Sink:
    """Collects simulated events and orders and writes them in chunks."""

    def __init__(
        self,
        user_ids: list[int],
        product_ids: list[int],
        products: list[ProductSpec],
        id_rng: random.Random,
        first_order_id: int,
    ) -> None:
        self.user_ids = user_ids
        self.product_ids = product_ids
        self.prices = [Decimal(f"{p.price:.2f}") for p in products]
        self.id_rng = id_rng
        self.events: list[tuple] = []
        self.orders: list[tuple] = []
        self.order_items: list[tuple] = []
        self.next_order_id = first_order_id
        self.event_count = 0
        self.order_count = 0
        self.postgres = is_postgres()

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
    ) -> None:
        when = datetime.fromtimestamp(ts, UTC)
        self.events.append(
            (
                uuid.UUID(int=self.id_rng.getrandbits(128), version=4),
                None if shopper.user_index is None else self.user_ids[shopper.user_index],
                # Signed-in shoppers are identified by their user; only visitors need the cookie id
                # (it also keeps the visitor index small on large seeds).
                shopper.visitor_id if shopper.user_index is None else "",
                session_id,
                None if product is None else self.product_ids[product],
                event_type,
                None if value is None else Decimal(f"{value:.2f}"),
                quantity,
                when,
                when,
                None,
                "",
                None,
                context or {},
                False,
            )
        )
        if len(self.events) >= CHUNK_SIZE:
            self.flush_events()

    def order(self, shopper: ShopperPlan, ts: float, lines: list[tuple[int, int, float]]) -> None:
        when = datetime.fromtimestamp(ts, UTC)
        order_id = self.next_order_id
        self.next_order_id += 1
        total = sum((self.prices[index] * quantity for index, quantity, _ in lines), Decimal("0"))
        user_id = None if shopper.user_index is None else self.user_ids[shopper.user_index]
        email = (
            f"shopper{shopper.user_index}@example.com"
            if user_id is not None
            else f"guest-{shopper.visitor_id[:10]}@example.com"
        )
        status = Order.Status.SHIPPED if ts < time.time() - 3 * DAY else Order.Status.PAID
        self.orders.append(
            (order_id, user_id, shopper.visitor_id if user_id is None else "", status, total, email, when)
        )
        self.order_items.extend(
            (order_id, self.product_ids[index], quantity, self.prices[index]) for index, quantity, _ in lines
        )
        self.order_count += 1

    def flush_events(self) -> None:
        if not self.events:
            return
        if self.postgres:
            insert_rows(Event, EVENT_FIELDS, self.events)
        else:
            names = [f if f not in ("user", "item") else f"{f}_id" for f in EVENT_FIELDS]
            Event.objects.bulk_create(
                [Event(**dict(zip(names, row, strict=True))) for row in self.events], batch_size=2000
            )
        self.event_count += len(self.events)
        self.events = []

    def flush(self) -> None:
        self.flush_events()
        insert_rows(
            Order, ("id", "user", "visitor_id", "status", "total", "email", "created_at"), self.orders
        )
        insert_rows(OrderItem, ("order", "product", "quantity", "unit_price"), self.order_items)
        self.orders, self.order_items = [], []


def _write_catalog(products: list[ProductSpec]) -> list[int]:
    categories = Category.objects.bulk_create(
        [Category(name=c.name, slug=c.slug or slugify(c.name), description=c.description) for c in CATEGORIES]
    )
    by_name = {c.name: c for c in categories}
    created = Product.objects.bulk_create(
        [
            Product(
                sku=p.sku,
                name=p.name,
                description=p.description,
                category=by_name[p.category],
                price=Decimal(f"{p.price:.2f}"),
                stock=p.stock,
                is_active=p.is_active,
            )
            for p in products
        ],
        batch_size=2000,
    )
    if created and created[0].pk is None:  # backends without RETURNING
        pk_by_sku = dict(Product.objects.values_list("sku", "pk"))
        return [pk_by_sku[p.sku] for p in products]
    return [p.pk for p in created]


# Every registered shopper (bots aside) plays at least MIN_SESSIONS planned sessions and, with
# extra sessions if those were short, at least MIN_EVENTS events: a type can only be told from
# a history. The floors apply when --events / --users leaves room for them (FLOOR_EVENTS_PER_USER);
# the rest of the budget goes out by a log-normal activity (a long tail of heavy shoppers).
MIN_SESSIONS = 2
MIN_EVENTS = 8
DEMO_MIN_SESSIONS = 3  # the demo logins get a richer history
FLOOR_EVENTS_PER_USER = 12
ACTIVITY_SIGMA = 1.0
FLOOR_TOP_UP = 0.5
BOT_ACTIVITY = 10.0
VISITOR_ACTIVITY = 0.25
# Events one planned session produces, follow-ups included (measured on generated shops; the
# generator keeps learning it while it plays, so the total lands near --events).
SESSION_EVENTS = {
    "tech_enthusiast": 4.6,
    "bargain_hunter": 5.2,
    "home_cook": 3.9,
    "outdoor_sporty": 3.4,
    "book_lover": 3.5,
    "window_shopper": 4.0,
    BOT_TYPE: 98.0,
}


def _plan_shoppers(
    options: SeedOptions, rng: random.Random, id_rng: random.Random, now: float
) -> tuple[list[ShopperPlan], list[ShopperPlan]]:
    """Decide who everyone is: type, bot, churn, active window, history floors and event budget.

    A budget is a floor (``min_sessions`` sessions of the type's usual size; one session for
    bots and anonymous visitors) plus a share of the remaining events proportional to a
    log-normal activity times the active time. Below FLOOR_EVENTS_PER_USER events per user the
    floors are scaled down and not enforced (tiny demo shops); above it they are, and where
    they cost more than ``--events`` (about 12-14 events per user) the total overshoots.
    """
    window = options.days * DAY
    t0 = now - window
    type_keys = list(SHOPPER_TYPES)
    shares = [SHOPPER_TYPES[k].share for k in type_keys]
    n_bots = max(1, round(options.users * options.bot_share)) if options.bot_share > 0 else 0
    demo_names = list(DEMO_SHOPPERS)
    bot_indices = set(rng.sample(range(len(demo_names), options.users), n_bots))
    users: list[ShopperPlan] = []
    weights: list[float] = []
    for index in range(options.users):
        is_bot = index in bot_indices
        demo = index < len(demo_names)
        if demo:
            kind = DEMO_SHOPPERS[demo_names[index]]
        else:
            kind = BOT_TYPE if is_bot else rng.choices(type_keys, shares)[0]
        start = t0 if demo or rng.random() < 0.8 else t0 + rng.uniform(0, 0.5) * window
        # Churners stop after 30-60 % of their active time: their floor sessions fall before that.
        churned = not is_bot and not demo and rng.random() < options.churn_share
        end = start + rng.uniform(0.3, 0.6) * (now - start) if churned else now
        if is_bot:
            activity = BOT_ACTIVITY
        else:
            activity = SHOPPER_TYPES[kind].activity * rng.lognormvariate(0, ACTIVITY_SIGMA)
        if demo:
            activity *= 2
        plan = ShopperPlan(index, f"{id_rng.getrandbits(128):032x}", kind, is_bot, start, end, 0)
        plan.min_sessions = 1 if is_bot else DEMO_MIN_SESSIONS if demo else MIN_SESSIONS
        plan.min_events = 0 if is_bot else MIN_EVENTS
        users.append(plan)
        weights.append(activity * (end - start) / window)
    visitors: list[ShopperPlan] = []
    for _ in range(round(options.users * options.anonymous_share)):
        kind = rng.choices(type_keys, shares)[0]
        start = t0 + rng.uniform(0, 0.9) * window
        plan = ShopperPlan(None, f"{id_rng.getrandbits(128):032x}", kind, False, start, now, 0)
        plan.min_sessions = 1  # a visitor in the data came at least once
        visitors.append(plan)
        weights.append(
            VISITOR_ACTIVITY
            * SHOPPER_TYPES[kind].activity
            * rng.lognormvariate(0, ACTIVITY_SIGMA)
            * (now - start)
            / window
        )
    everyone = users + visitors
    # A floor costs its sessions plus, on average, the extra sessions that bring short
    # histories up to min_events (FLOOR_TOP_UP of min_events, measured).
    floors = [
        plan.min_sessions * SESSION_EVENTS[plan.shopper_type] + FLOOR_TOP_UP * plan.min_events
        for plan in everyone
    ]
    reserved = sum(floors)
    enforce = options.events >= FLOOR_EVENTS_PER_USER * options.users
    if not enforce:
        shrink = min(1.0, 0.5 * options.events / reserved)
        floors = [f * shrink for f in floors]
        for plan in everyone:
            demo = plan.user_index is not None and plan.user_index < len(demo_names)
            plan.min_sessions = DEMO_MIN_SESSIONS if demo else 1 if plan.is_bot else 0
            plan.min_events = 0
    scale = max(0.0, options.events - sum(floors)) / sum(weights)
    for plan, floor, weight in zip(everyone, floors, weights, strict=True):
        plan.budget = floor + weight * scale
    return users, visitors


def _play_everyone(
    everyone: list[ShopperPlan],
    events: int,
    simulator: Simulator,
    sink: EventSink,
    rng: random.Random,
    say: Callable[[str], None],
) -> None:
    """Play every shopper's sessions into ``sink``, about ``events`` events in all (floors first)."""
    # Events per planned session, learned as we go, and the share of the budgets still to
    # spend that the events still to emit allow: together they land the total near --events
    # whatever the floors and the follow-up sessions cost.
    per_session = {k: [v, 1.0] for k, v in SESSION_EVENTS.items()}
    target = float(events)
    remaining = sum(plan.budget for plan in everyone)
    step = max(1, len(everyone) // 10)
    emitted = 0
    for position, plan in enumerate(everyone):
        estimate = per_session[plan.shopper_type]
        pace = min(2.0, max(0.25, (target - emitted) / remaining)) if remaining > 0 else 0.25
        remaining -= plan.budget
        # Probabilistic rounding of the budget, never below the shopper's floor.
        sessions = plan.budget * pace * estimate[1] / estimate[0]
        planned = max(plan.min_sessions, int(sessions + rng.random()))
        simulator.play(plan, planned, sink)
        # Short sessions (a bounce, one view): come back until the history shows who this is.
        extra = 0
        while plan.emitted < plan.min_events and extra < 8:
            simulator.play(plan, 1, sink)
            extra += 1
        estimate[0] += plan.emitted
        estimate[1] += planned + extra
        emitted += plan.emitted
        if (position + 1) % step == 0:
            say(f"behaviour: {position + 1}/{len(everyone)} shoppers, {emitted} events")


def _create_users(users: list[ShopperPlan], now: float, *, demo_logins: bool = False) -> list[int]:
    user_model = get_user_model()
    demo_names = list(DEMO_SHOPPERS)
    width = max(5, len(str(len(users))))
    unusable = make_password(None)  # the generated shoppers cannot log in; one hash serves all
    shopper_hash = make_password(SHOPPER_PASSWORD) if demo_logins else unusable
    rows = []
    for plan in users:
        index = plan.user_index
        if index is None:
            raise ValueError("an anonymous shopper's plan cannot become an account")
        name = demo_names[index] if index < len(demo_names) else f"shopper{index:0{width}d}"
        rows.append(
            user_model(
                username=name,
                email=f"{name}@example.com",
                password=shopper_hash if index < len(demo_names) else unusable,
                date_joined=datetime.fromtimestamp(plan.start, UTC),
            )
        )
    created = user_model._default_manager.bulk_create(rows, batch_size=5000)
    if created and created[0].pk is None:
        pk_by_name = dict(user_model._default_manager.values_list("username", "pk"))
        ids = [pk_by_name[u.username] for u in rows]
    else:
        ids = [u.pk for u in created]
    PlantedShopper.objects.bulk_create(
        [
            PlantedShopper(
                user_id=user_id,
                shopper_type=plan.shopper_type,
                is_bot=plan.is_bot,
                churned=plan.end < now,
                churned_at=datetime.fromtimestamp(plan.end, UTC) if plan.end < now else None,
            )
            for user_id, plan in zip(ids, users, strict=True)
        ],
        batch_size=5000,
    )
    if demo_logins:
        admin, _ = user_model._default_manager.get_or_create(
            username=STAFF_LOGIN[0],
            defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True},
        )
        admin.is_staff = admin.is_superuser = True
        admin.set_password(STAFF_LOGIN[1])
        admin.save()
    return ids


def seed_demo(
    options: SeedOptions, *, now: datetime | None = None, progress: Callable[[str], None] | None = None
) -> SeedReport:
    """Generate and write the whole demo shop in one transaction; return what was written."""
    options.validate()
    started = time.perf_counter()
    say = progress or (lambda message: None)
    now_ts = (now or timezone.now()).timestamp()
    rng = random.Random(options.seed)
    id_rng = random.Random(options.seed * 1_000_003 + 7)
    report = SeedReport()
    with transaction.atomic():
        products = build_catalog(options.products, rng)
        product_ids = _write_catalog(products)
        report.products = len(products)
        say(f"catalogue: {len(products)} products in {len(CATEGORIES)} categories")
        users, visitors = _plan_shoppers(options, rng, id_rng, now_ts)
        user_ids = _create_users(users, now_ts, demo_logins=options.demo_logins)
        report.users, report.visitors = len(users), len(visitors)
        for plan in users:
            report.type_counts[plan.shopper_type] = report.type_counts.get(plan.shopper_type, 0) + 1
        say(
            f"shoppers: {len(users)} users ({report.type_counts.get(BOT_TYPE, 0)} bots), "
            f"{len(visitors)} anonymous visitors"
        )
        first_order = (Order.objects.aggregate(top=Max("id"))["top"] or 0) + 1
        sink = _Sink(user_ids, product_ids, products, id_rng, first_order)
        simulator = Simulator(CatalogIndex(products), rng, id_rng, now_ts)
        _play_everyone(users + visitors, options.events, simulator, sink, rng, say)
        sink.flush()
        reset_sequences(Order)
        report.events = sink.event_count
        report.orders = sink.order_count
    report.seconds = time.perf_counter() - started
    return report


def planted_complements(options: SeedOptions) -> dict[str, list[str]]:
    """The complementary accessories planted for each main item, by sku (for tests and benchmarks)."""
    products = build_catalog(options.products, random.Random(options.seed))
    return {p.sku: [products[i].sku for i in p.complements] for p in products if p.complements}
