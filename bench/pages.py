"""Benchmark of the demo shop's product page in the Django test client.

Seeds a small demo shop into a throw-away SQLite database (or ``--database URL``), then
requests product pages and prints the median and p95 render time and the number of SQL
queries per request, for the page without recommendation blocks and for the real page
(with "Frequently bought together" and "Similar items").

Usage: ``nice -n 10 .venv/bin/python bench/pages.py [--requests 200] [--users 300 --events 15000]``.
Targets: median < 20 ms without blocks, < 30 ms with the two recommendation blocks.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--events", type=int, default=15_000)
    parser.add_argument("--database", default="", help="database URL (default: a temporary SQLite file)")
    parser.add_argument(
        "--sqlite-wal",
        action="store_true",
        help="SQLite only: journal_mode=WAL + synchronous=NORMAL on every connection "
        "(what a settings OPTIONS init_command would do): no fsync per event commit",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print the SQL of one request and a cProfile of each page variant",
    )
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-pages-")
    os.environ["DATABASE_URL"] = args.database or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_urlsafe(48))
    os.environ["CELERY_BROKER_URL"] = ""

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from shop.demo.generator import SeedOptions, demo_data_exists, seed_demo
    from shop.models import Product

    if args.sqlite_wal:
        from django.db.backends.signals import connection_created

        def wal(sender, connection, **kwargs):
            if connection.vendor == "sqlite":
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")

        connection_created.connect(wal, weak=False)
    call_command("migrate", verbosity=0)
    if not demo_data_exists():
        seed_demo(SeedOptions(users=args.users, events=args.events))
    skus = list(Product.objects.filter(is_active=True).order_by("sku").values_list("sku", flat=True))

    # A copy of the product template without the recommendation blocks, for the baseline figure.
    template_dir = Path(workdir) / "templates" / "shop"
    template_dir.mkdir(parents=True)
    source = (ROOT / "shop" / "templates" / "shop" / "product.html").read_text()
    (template_dir / "product.html").write_text(
        "\n".join(line for line in source.splitlines() if "{% show_" not in line)
    )
    from django.conf import settings

    plain_templates = [{**settings.TEMPLATES[0], "DIRS": [str(Path(workdir) / "templates")]}]

    def measure(label: str) -> None:
        client = Client(HTTP_USER_AGENT="Mozilla/5.0 (bench)")
        client.get(f"/p/{skus[0]}/")  # warm caches, session and visitor cookie
        timings, queries = [], []
        for i in range(args.requests):
            sku = skus[(i * 7) % len(skus)]
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(f"/p/{sku}/")
                timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
            queries.append(len(captured))
        timings.sort()
        if args.profile:
            profile(client, skus)
        print(
            f"{label:<34} median {statistics.median(timings):6.2f} ms  "
            f"p95 {timings[int(0.95 * len(timings)) - 1]:6.2f} ms  "
            f"queries median {statistics.median(queries):.0f} (max {max(queries)})"
        )

    def profile(client: Client, skus: list[str]) -> None:
        import cProfile
        import pstats

        with CaptureQueriesContext(connection) as captured:
            client.get(f"/p/{skus[1]}/")
        for query in captured:
            print(f"    SQL {query['time']}s: {query['sql'][:160]}")
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(50):
            client.get(f"/p/{skus[(i * 11) % len(skus)]}/")
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)

    mode = " (WAL, synchronous=NORMAL)" if args.sqlite_wal else ""
    print(f"database: {connection.vendor}{mode}, {len(skus)} active products, {args.requests} requests each")
    with override_settings(TEMPLATES=plain_templates):
        measure("product page, no rec blocks")
    measure("product page, 2 rec blocks")
    print("targets: < 20 ms median without blocks, < 30 ms with two blocks")


if __name__ == "__main__":
    main()
