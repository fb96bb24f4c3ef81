"""seed_demo: deterministic, and the planted structure is really in the data."""

from __future__ import annotations

import itertools
import random
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from behavior.models import Event
from shop.demo.catalog import build_catalog
from shop.demo.generator import (
    MIN_EVENTS,
    MIN_SESSIONS,
    SeedOptions,
    _plan_shoppers,
    _play_everyone,
    flush_demo_data,
    planted_complements,
    seed_demo,
)
from shop.demo.shoppers import SHOPPER_TYPES
from shop.demo.simulation import CatalogIndex, Simulator
from shop.models import Order, OrderItem, PlantedShopper, Product

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# 25 events per user: above the generator's floor threshold, near the benchmark's 15.
SMALL = SeedOptions(users=600, events=15_000, seed=7)
BOTS = 6  # 1 % of SMALL.users


def _signature() -> list[tuple]:
    return list(
        Event.objects.order_by("event_id").values_list(
            "event_id",
            "user__username",
            "visitor_id",
            "session_id",
            "item__sku",
            "event_type",
            "value",
            "quantity",
            "occurred_at",
        )
    )


def _summary() -> dict:
    """Plain-Python statistics of the seeded data (computed once, asserted by many tests)."""
    planted = {p.user_id: p for p in PlantedShopper.objects.all()}
    rows = list(
        Event.objects.values_list(
            "user_id",
            "visitor_id",
            "session_id",
            "event_type",
            "item__sku",
            "item__category__name",
            "item__price",
            "occurred_at",
        )
    )
    # Rank of each product's price within its category, in [0, 1] (0 = the cheapest).
    by_category: dict[str, list[tuple]] = defaultdict(list)
    for sku, category, price in Product.objects.values_list("sku", "category__name", "price"):
        by_category[category].append((price, sku))
    quantile = {
        sku: rank / max(1, len(ranked) - 1)
        for ranked in map(sorted, by_category.values())
        for rank, (_, sku) in enumerate(ranked)
    }
    view_quantiles: dict[str, list[float]] = defaultdict(list)
    sessions_per_user: dict[int, set] = defaultdict(set)
    views_by_type: dict[str, Counter] = defaultdict(Counter)
    counts_by_type: dict[str, Counter] = defaultdict(Counter)
    purchase_prices: dict[str, list] = defaultdict(list)
    sessions: dict[str, list] = defaultdict(list)
    first_purchase: dict[tuple[int, str], datetime] = {}
    events_per_user: Counter = Counter()
    for user_id, _visitor, session, kind, sku, category, price, when in rows:
        sessions[session].append((when, kind, user_id))
        if user_id is None:
            continue
        shopper = planted[user_id]
        kind_of = "bot" if shopper.is_bot else shopper.shopper_type
        counts_by_type[kind_of][kind] += 1
        events_per_user[user_id] += 1
        sessions_per_user[user_id].add(session)
        if kind == "view":
            views_by_type[kind_of][category] += 1
            view_quantiles[kind_of].append(quantile[sku])
        if kind == "purchase":
            purchase_prices[kind_of].append(price)
            key = (user_id, sku)
            first_purchase[key] = min(when, first_purchase.get(key, when))
    # Event rate: events per minute of session time, per user.
    duration: dict[int, float] = defaultdict(float)
    for events in sessions.values():
        user_id = events[0][2]
        if user_id is not None and len(events) > 1:
            times = sorted(e[0] for e in events)
            duration[user_id] += (times[-1] - times[0]).total_seconds() / 60
    rate_by_type: dict[str, list[float]] = defaultdict(list)
    for user_id, n in events_per_user.items():
        if duration[user_id] > 0:
            shopper = planted[user_id]
            rate_by_type["bot" if shopper.is_bot else shopper.shopper_type].append(n / duration[user_id])
    return {
        "views_by_type": views_by_type,
        "counts_by_type": counts_by_type,
        "purchase_prices": purchase_prices,
        "first_purchase": first_purchase,
        "rate_by_type": rate_by_type,
        "planted": planted,
        "events_per_user": events_per_user,
        "sessions_per_user": {u: len(s) for u, s in sessions_per_user.items()},
        "view_quantiles": view_quantiles,
        "sessions": sessions,
        "total": len(rows),
        "anonymous": sum(1 for r in rows if r[0] is None and r[1]),
        "anonymous_orders": Order.objects.filter(user=None).exclude(visitor_id="").count(),
        "orders": Order.objects.count(),
        "order_items": OrderItem.objects.count(),
        "purchases": sum(1 for r in rows if r[3] == "purchase"),
        "flagged_bot_events": Event.objects.filter(is_bot=True).count(),
        "products": Product.objects.count(),
        "inactive": Product.objects.filter(is_active=False).count(),
        "out_of_stock": Product.objects.filter(stock=0).count(),
    }


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """Seed the small shop once for this module, summarise it, then remove it again."""
    with django_db_blocker.unblock():
        report = seed_demo(SMALL, now=NOW)
        try:
            summary = _summary()
            summary["report"] = report
            summary["last_by_user"] = {}
            for user_id, when in Event.objects.exclude(user=None).values_list("user_id", "occurred_at"):
                summary["last_by_user"][user_id] = max(when, summary["last_by_user"].get(user_id, when))
        finally:
            flush_demo_data()
    return summary


def test_sizes_are_as_asked(seeded):
    # then about 15000 events, 300 users, 400 products with a few inactive / out of stock
    assert 0.85 * 15_000 <= seeded["total"] <= 1.15 * 15_000
    assert seeded["report"].events == seeded["total"]
    assert len(seeded["planted"]) == SMALL.users
    assert seeded["products"] == 400
    assert 1 <= seeded["inactive"] <= 30 and 1 <= seeded["out_of_stock"] <= 40
    assert seeded["purchases"] == seeded["order_items"]


@pytest.mark.parametrize("shopper_type", [k for k, t in SHOPPER_TYPES.items() if t.top_categories])
def test_each_type_views_its_planted_favourite_category_most(seeded, shopper_type):
    # then the most viewed category of each type is one of its planted favourites
    top, _ = seeded["views_by_type"][shopper_type].most_common(1)[0]
    assert top in SHOPPER_TYPES[shopper_type].top_categories


def test_bargain_hunters_buy_far_cheaper_than_tech_enthusiasts(seeded):
    # then the bargain hunters' median purchase price is under a third of the tech enthusiasts'
    bargain = statistics.median(seeded["purchase_prices"]["bargain_hunter"])
    tech = statistics.median(seeded["purchase_prices"]["tech_enthusiast"])
    assert bargain < tech / 3


def test_every_type_has_its_own_favourite_categories_that_hold_most_of_its_views(seeded):
    # when taking each type's most viewed category and the share of its views in its favourites
    tops = {k: seeded["views_by_type"][k].most_common(1)[0][0] for k in SHOPPER_TYPES}
    shares = {
        k: sum(n for c, n in seeded["views_by_type"][k].items() if c in SHOPPER_TYPES[k].preferences)
        / sum(seeded["views_by_type"][k].values())
        for k in SHOPPER_TYPES
    }
    # then no two types share their top category, and each type's favourites get >= 75 % of its views
    assert len(set(tops.values())) == len(SHOPPER_TYPES)
    assert min(shares.values()) >= 0.75, shares


def test_types_view_items_at_their_own_price_level(seeded):
    # when ordering the types by the mean within-category price rank of the items they view
    means = {k: statistics.fmean(seeded["view_quantiles"][k]) for k in SHOPPER_TYPES}
    # then the order is the planted price-level order, each level at least 0.03 apart
    observed = sorted(means, key=means.get)
    planted = sorted(SHOPPER_TYPES, key=lambda k: SHOPPER_TYPES[k].price_level)
    assert observed == planted, means
    ordered = [means[k] for k in observed]
    assert min(b - a for a, b in itertools.pairwise(ordered)) >= 0.03, means
    assert observed[0] == "bargain_hunter" and means["bargain_hunter"] < 0.3


def test_every_registered_shopper_has_a_history_of_several_sessions(seeded):
    # given every planted shopper who is not a bot, churned ones included
    humans = [p.user_id for p in seeded["planted"].values() if not p.is_bot]
    churned = [p.user_id for p in seeded["planted"].values() if p.churned]
    # then each has at least MIN_EVENTS events in at least MIN_SESSIONS sessions
    assert min(seeded["events_per_user"][u] for u in humans) >= MIN_EVENTS
    assert min(seeded["sessions_per_user"].get(u, 0) for u in humans) >= MIN_SESSIONS
    assert churned and all(seeded["events_per_user"][u] >= MIN_EVENTS for u in churned)
    # and a long tail: the heaviest shoppers have several times the median history
    counts = sorted(seeded["events_per_user"][u] for u in humans)
    assert counts[-1] >= 4 * statistics.median(counts)


class _CountingSink:
    """Keeps the number of events per shopper (the simulation without a database)."""

    def __init__(self) -> None:
        self.per_user: Counter = Counter()
        self.total = 0

    def event(self, shopper, session_id, product, event_type, ts, value=None, quantity=1, context=None):
        self.total += 1
        if shopper.user_index is not None and not shopper.is_bot:
            self.per_user[shopper.user_index] += 1

    def order(self, shopper, ts, lines) -> None:
        pass


@pytest.mark.parametrize(("users", "events"), [(5000, 75_000), (2000, 100_000)])
def test_history_floors_hold_at_the_benchmark_ratio_and_the_total_stays_near_the_budget(users, events):
    # given the planned shoppers of a shop with 15 (the benchmark's ratio) or 50 events per user
    options = SeedOptions(users=users, events=events, seed=5)
    rng, id_rng = random.Random(5), random.Random(6)
    products = build_catalog(options.products, rng)
    planned_users, visitors = _plan_shoppers(options, rng, id_rng, NOW.timestamp())
    sink = _CountingSink()
    # when they are played without a database
    _play_everyone(
        planned_users + visitors,
        options.events,
        Simulator(CatalogIndex(products), rng, id_rng, NOW.timestamp()),
        sink,
        rng,
        lambda message: None,
    )
    # then every registered non-bot shopper has at least MIN_EVENTS events and the total is near --events
    humans = [p.user_index for p in planned_users if not p.is_bot]
    assert min(sink.per_user[u] for u in humans) >= MIN_EVENTS
    assert 0.9 * events <= sink.total <= 1.1 * events


def test_funnels_drop_off_by_type(seeded):
    # then view -> cart -> purchase rates fall in the planted ranges; window shoppers barely buy
    rates = {}
    for kind, counts in seeded["counts_by_type"].items():
        if kind == "bot":
            continue
        cart_rate = counts["add_to_cart"] / counts["view"]
        buy_rate = counts["purchase"] / max(1, counts["add_to_cart"])
        rates[kind] = (cart_rate, buy_rate)
        assert 0.02 <= cart_rate <= 0.45, kind
        assert counts["remove_from_cart"] > 0, kind
    assert min(rates, key=lambda k: rates[k][1]) == "window_shopper"
    assert rates["window_shopper"][1] < 0.3
    assert all(0.3 <= rates[k][1] <= 1.0 for k in rates if k != "window_shopper")


def test_complements_are_bought_after_their_main_item(seeded):
    # given the planted complements of each main item
    complements = planted_complements(SMALL)
    bought = seeded["first_purchase"]
    # when looking at shoppers who bought a main item and one of its complements
    pairs = [
        (bought[(u, main)], bought[(u, extra)])
        for (u, main) in bought
        if main in complements
        for extra in complements[main]
        if (u, extra) in bought
    ]
    # then there are many such pairs and the main item nearly always came first
    assert len(pairs) >= 30
    assert sum(main_at <= extra_at for main_at, extra_at in pairs) / len(pairs) >= 0.9


def test_bots_have_the_highest_event_rates_and_never_buy(seeded):
    # then every bot's events per session-minute beat every other type's median, and bots buy nothing
    bot_rates = seeded["rate_by_type"]["bot"]
    others = {k: statistics.median(v) for k, v in seeded["rate_by_type"].items() if k != "bot"}
    assert len(bot_rates) == BOTS
    assert min(bot_rates) > 10 * max(others.values())
    assert min(bot_rates) > 20  # dozens of events per minute
    bot_counts = seeded["counts_by_type"]["bot"]
    assert set(bot_counts) == {"view"}
    bots = [u for u, p in seeded["planted"].items() if p.is_bot]
    assert min(seeded["events_per_user"][u] for u in bots) > statistics.median(
        seeded["events_per_user"].values()
    )


def test_bot_events_are_not_flagged(seeded):
    # then no event carries the bot flag: detection has to come from behaviour
    assert seeded["flagged_bot_events"] == 0
    assert sum(p.is_bot for p in seeded["planted"].values()) == BOTS


def test_anonymous_visitors_exist(seeded):
    # then some events come from visitors without a user, some of whom bought as guests
    assert seeded["anonymous"] > 0.03 * seeded["total"]
    assert seeded["anonymous_orders"] > 0


def test_churned_shoppers_stop_visiting(seeded):
    # then about 15 % churned, and none of them has an event after their churn time
    churned = [p for p in seeded["planted"].values() if p.churned]
    assert 0.08 * SMALL.users <= len(churned) <= 0.25 * SMALL.users
    assert all(seeded["last_by_user"].get(p.user_id, p.churned_at) <= p.churned_at for p in churned)


def test_abandoned_carts_predict_purchases_in_the_following_days(seeded):
    # given each user session, whether it ended with a cart but no purchase
    by_user: dict[int, list[tuple[datetime, bool, bool]]] = defaultdict(list)
    for events in seeded["sessions"].values():
        user_id = events[0][2]
        if user_id is None:
            continue
        kinds = {e[1] for e in events}
        by_user[user_id].append(
            (
                max(e[0] for e in events),
                "add_to_cart" in kinds and "purchase" not in kinds,
                "purchase" in kinds,
            )
        )
    # when checking whether a purchase session follows within 4 days
    followed = {True: [], False: []}
    for sessions in by_user.values():
        sessions.sort()
        for i, (end, abandoned, _) in enumerate(sessions):
            if end > NOW - timedelta(days=5):
                continue
            later = any(bought and end < t <= end + timedelta(days=4) for t, _, bought in sessions[i + 1 :])
            followed[abandoned].append(later)
    # then abandoned carts are followed by a purchase far more often than other sessions
    after_abandon = sum(followed[True]) / len(followed[True])
    otherwise = sum(followed[False]) / len(followed[False])
    assert after_abandon > 0.35
    assert after_abandon > 2 * otherwise


@pytest.mark.django_db
def test_demo_logins_exist_with_their_types():
    # given a tiny seeded shop
    seed_demo(SeedOptions(users=40, events=2000, seed=3, demo_logins=True), now=NOW)
    # then the staff login and the three shoppers of different types can log in and have a history
    from django.contrib.auth import authenticate

    admin = authenticate(username="admin", password="admin-demo-pass")
    assert admin is not None and admin.is_staff and admin.is_superuser
    types = set()
    for name in ("alice", "bob", "carol"):
        user = authenticate(username=name, password="shopper-demo-pass")
        assert user is not None
        assert Event.objects.filter(user=user, event_type="view").count() >= 5
        types.add(user.planted_shopper.shopper_type)
    assert len(types) == 3


@pytest.mark.django_db
def test_same_seed_gives_the_same_data_and_another_seed_differs():
    # given a small shop seeded twice with the same seed, then with another seed
    options = SeedOptions(users=60, events=3000, seed=11)
    seed_demo(options, now=NOW)
    first = _signature()
    first_products = list(
        Product.objects.order_by("sku").values_list("sku", "name", "price", "stock", "is_active")
    )
    flush_demo_data()
    seed_demo(options, now=NOW)
    second = _signature()
    second_products = list(
        Product.objects.order_by("sku").values_list("sku", "name", "price", "stock", "is_active")
    )
    flush_demo_data()
    seed_demo(SeedOptions(users=60, events=3000, seed=12), now=NOW)
    other = _signature()
    # then the first two are identical row for row, and the third is not
    assert len(first) > 2000
    assert first == second
    assert first_products == second_products
    assert {r[0] for r in other}.isdisjoint({r[0] for r in first})


@pytest.mark.django_db
def test_command_refuses_to_overwrite_and_validates_options():
    # given a seeded shop
    call_command("seed_demo", "--users", "30", "--events", "600", stdout=StringIO())
    # when seeding again without --flush / with --skip-if-seeded / with a bad option
    with pytest.raises(CommandError, match="--flush"):
        call_command("seed_demo", "--users", "30", "--events", "600", stdout=StringIO())
    skipped = StringIO()
    call_command("seed_demo", "--skip-if-seeded", stdout=skipped)
    with pytest.raises(CommandError, match="--users must be at least 10"):
        call_command("seed_demo", "--users", "3", "--flush", stdout=StringIO())
    # then nothing changed, and --flush replaces the data
    assert "nothing to do" in skipped.getvalue()
    first_ids = set(Event.objects.values_list("event_id", flat=True))
    out = StringIO()
    call_command(
        "seed_demo", "--users", "30", "--events", "600", "--flush", "--seed", "5", "--demo-logins", stdout=out
    )
    assert Product.objects.count() == 400
    assert PlantedShopper.objects.count() == 30
    assert first_ids.isdisjoint(Event.objects.values_list("event_id", flat=True))
    assert "Seeded 400 products, 30 users" in out.getvalue()
    assert "alice / shopper-demo-pass" in out.getvalue()


def test_print_logins_only_prints():
    # when / then (no database needed)
    out = StringIO()
    call_command("seed_demo", "--print-logins", stdout=out)
    assert out.getvalue().splitlines() == [
        "Demo logins:",
        "  admin / admin-demo-pass  (staff (admin site))",
        "  alice / shopper-demo-pass  (tech enthusiast)",
        "  bob / shopper-demo-pass  (home cook)",
        "  carol / shopper-demo-pass  (book lover)",
    ]


@pytest.mark.django_db
def test_without_the_flag_no_demo_login_exists():
    # given / when: seeded as anywhere but a local demo
    out = StringIO()
    call_command("seed_demo", "--users", "30", "--events", "600", stdout=out)
    # then: the named accounts exist as data, but nobody can log in with a published password
    from django.contrib.auth import authenticate, get_user_model

    assert not get_user_model().objects.filter(username="admin").exists()
    assert not get_user_model().objects.filter(is_superuser=True).exists()
    assert get_user_model().objects.filter(username="alice").exists()
    assert authenticate(username="alice", password="shopper-demo-pass") is None
    assert "No demo logins created" in out.getvalue()
    assert "admin-demo-pass" not in out.getvalue()
