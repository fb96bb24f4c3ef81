"""Benchmark of merchandising: the list endpoint's CPU per request with 20 rules in force and without.

Seeds a catalogue (20 categories of 100 items), shoppers with a fresh precomputed list each and 20
merchandising rules (4 pins, 6 boosts, 5 buries, 5 exclusions, of items and categories, half on
the API's placement and half on all placements), then requests ``GET /api/recommendations/`` as
logged-in shoppers in the Django test client and measures the process's CPU time
(``time.process_time``) per request, with the rules switched on and off in alternating rounds of
one run (so a change of machine speed hits both alike). Two rows:

- **list reuse on** (the default): the API reuses a list assembled for the same inputs a little
  earlier (``LIST_CACHE_SECONDS``); the rules cost their lookup per request, and an assembly when
  the reused list expires;
- **assembled every request** (``LIST_CACHE_SECONDS = 0``): every request assembles its list,
  so the rules are applied on every request;
- **serve_list alone**: the service call of that request without the HTTP stack (no impression
  recorded), where the rules' share of the work is largest.

Both rows run the full Django stack (the optional fast path off): a response the fast path
replays runs no serving code at all, merchandising included, so it is not measured here.

Usage::

    nice -n 10 .venv/bin/python bench/merchandising.py [--requests 2000] [--rounds 6] [--users 200]
        [--database URL] [--cache URL]

``--database`` defaults to ``DATABASE_URL`` (else a temporary SQLite file) and ``--cache`` to
``CACHE_URL`` (else the local-memory cache); a Postgres database named there is flushed first.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CATEGORIES = 20
ITEMS_PER_CATEGORY = 100
LIST_LENGTH = 50


def _configure(args: argparse.Namespace) -> None:
    workdir = tempfile.mkdtemp(prefix="bench-merch-")
    os.environ["DATABASE_URL"] = args.database or f"sqlite:///{workdir}/bench.sqlite3"
    if args.cache:
        os.environ["CACHE_URL"] = args.cache
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_urlsafe(48))
    os.environ["CELERY_BROKER_URL"] = ""


def _seed(users: int) -> list:
    """The catalogue, the shoppers with their precomputed lists, and the 20 rules (switched off)."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from recommendations.models import MerchandisingRule, PrecomputedList
    from shop.models import Category, Product

    categories = Category.objects.bulk_create(
        [Category(name=f"Category {c}", slug=f"category-{c}") for c in range(CATEGORIES)]
    )
    Product.objects.bulk_create(
        [
            Product(
                sku=f"M{c:02d}{i:03d}",
                name=f"Item {c}-{i}",
                category=category,
                price=Decimal("10.00"),
                stock=5,
                is_active=True,
            )
            for c, category in enumerate(categories)
            for i in range(ITEMS_PER_CATEGORY)
        ]
    )
    skus = [f"M{c:02d}{i:03d}" for i in range(ITEMS_PER_CATEGORY) for c in range(CATEGORIES)]
    model = get_user_model()
    shoppers = model.objects.bulk_create([model(username=f"merch{u:04d}") for u in range(users)])
    now = timezone.now()
    PrecomputedList.objects.bulk_create(
        [
            PrecomputedList(
                user=shopper,
                item_keys=[skus[(u * 7 + k) % len(skus)] for k in range(LIST_LENGTH)],
                scores=[round(1 - k / 100, 6) for k in range(LIST_LENGTH)],
                reasons=[["trending"]] * LIST_LENGTH,
                model_version=1,
                computed_at=now + timedelta(hours=1),  # fresh for the whole run
            )
            for u, shopper in enumerate(shoppers)
        ]
    )
    start = now - timedelta(hours=1)

    def rule(placement: str, action: str, **target: object) -> MerchandisingRule:
        return MerchandisingRule(placement=placement, action=action, starts_at=start, active=False, **target)

    rules = [
        *(rule("default", "pin", item_key=f"M19{i:03d}", position=1 + 2 * i) for i in range(4)),
        *(rule("", "boost", category_key=f"category-{c}", strength=2) for c in (1, 2, 3)),
        *(rule("default", "boost", item_key=skus[40 + i], strength=5) for i in range(3)),
        *(rule("", "bury", category_key=f"category-{c}", strength=3) for c in (4, 5)),
        *(rule("default", "bury", item_key=skus[i], strength=4) for i in range(3)),
        rule("", "exclude", category_key="category-6"),
        *(rule("default", "exclude", item_key=skus[10 + i]) for i in range(4)),
    ]
    assert len(rules) == 20
    MerchandisingRule.objects.bulk_create(rules)
    return shoppers


def _switch(on: bool) -> None:
    from recommendations.models import MerchandisingRule
    from recommendations.services.merchandising.rules import forget_rules

    MerchandisingRule.objects.update(active=on)
    forget_rules()


def _cpu_per_request(clients: list, requests: int) -> float:
    """CPU milliseconds of this process per list request, over ``requests`` requests.

    A client is a test client (one HTTP request each) or a user (one ``serve_list`` call, the
    service alone: what merchandising adds to it is not diluted by the HTTP stack).
    """
    from django.test import Client

    from recommendations.services.serving import serve_list

    started = time.process_time()
    for i in range(requests):
        client = clients[i % len(clients)]
        if not isinstance(client, Client):
            serve_list(user=client, limit=10, record=False)
            continue
        response = client.get("/api/recommendations/", {"limit": 10})
        if response.status_code != 200:
            raise SystemExit(f"unexpected answer {response.status_code}: {response.content[:200]!r}")
    return (time.process_time() - started) * 1000 / requests


def _measure(clients: list, requests: int, rounds: int) -> tuple[float, float, list[float], int | None]:
    """CPU ms per request without rules and with the 20 rules, each round's ratio, and how many
    rules the last answer's impression records."""
    from recommendations.models import Impression
    from recommendations.services.serving import impressions

    for on in (False, True):  # warm both: sessions, the item snapshot, reused lists
        _switch(on)
        _cpu_per_request(clients, len(clients))
    totals = {False: 0.0, True: 0.0}
    ratios = []
    for round_ in range(rounds):
        cells = {}
        for on in (False, True) if round_ % 2 == 0 else (True, False):
            _switch(on)
            cells[on] = _cpu_per_request(clients, requests // rounds)
            totals[on] += cells[on]
        ratios.append(cells[True] / cells[False])
    _switch(True)
    if not hasattr(clients[0], "get"):  # service calls record no impression
        return totals[False] / rounds, totals[True] / rounds, ratios, None
    clients[0].get("/api/recommendations/", {"limit": 10})
    impressions.flush()
    last = Impression.objects.order_by("-created_at").values_list("merchandising_rule_ids", flat=True).first()
    return totals[False] / rounds, totals[True] / rounds, ratios, len(last or [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per mode and row")
    parser.add_argument("--rounds", type=int, default=6, help="alternations of the two modes")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--database", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--cache", default=os.environ.get("CACHE_URL", ""))
    args = parser.parse_args()
    _configure(args)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    warnings.filterwarnings("ignore", message="No directory at")  # WhiteNoise: no collected static files
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    from django.core.cache import cache

    cache.clear()
    shoppers = _seed(args.users)
    clients = []
    for shopper in shoppers:
        client = Client(HTTP_USER_AGENT="Mozilla/5.0 (bench)")
        client.force_login(shopper)
        clients.append(client)
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(
        f"database: {connection.vendor}; cache: {backend}; {CATEGORIES * ITEMS_PER_CATEGORY} items, "
        f"{len(shoppers)} shoppers with a fresh precomputed list of {LIST_LENGTH}; 20 rules; "
        f"{args.requests} requests per cell in {args.rounds} alternating rounds; full stack (fast path off)"
    )
    print()
    print(
        "| GET /api/recommendations/?limit=10 | CPU ms/request, no rules | with 20 rules | ratio "
        "| rounds' ratios (min-max) | rules recorded |"
    )
    print("|---|---|---|---|---|---|")
    rows = [
        ("list reuse on (default)", {"FAST_PATH_ENABLED": False}, clients),
        ("assembled every request", {"FAST_PATH_ENABLED": False, "LIST_CACHE_SECONDS": 0}, clients),
        ("serve_list alone, no HTTP (assembled)", {"LIST_CACHE_SECONDS": 0}, shoppers),
    ]
    for label, overrides, callers in rows:
        with override_settings(RECOMMENDER={**settings.RECOMMENDER, **overrides}):
            none, ruled, ratios, recorded = _measure(callers, args.requests, args.rounds)
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
        shown = "-" if recorded is None else recorded
        print(f"| {label} | {none:.3f} | {ruled:.3f} | {ruled / none:.3f} | {spread} | {shown} |")


if __name__ == "__main__":
    main()
