"""Benchmark of the partitioned events table on Postgres: import rate and retention drops.

Two databases with the same catalogue, in the same run: one at the head (events partitioned by
month, ``behavior.0007``), one with ``behavior`` migrated back to ``0006`` (the plain table).

1. ``manage.py import_events`` of one generated CSV of ``--rows`` events spread over
   ``--months`` months (a historical log in time order), into each database in turn, the order
   alternated over ``--repeat`` rounds (the table is emptied between rounds): rows/s and CPU per
   row of the command and of the Postgres backends; the partitioned rate as a share of the plain
   one (target >= 80 %).
2. Retention of the oldest month: ``prune_events`` with the cut at the end of that month,
   timed on each database (after ``ANALYZE``, as autovacuum leaves a loaded table): one
   ``DROP TABLE`` of a partition against row-by-row batched deletes (target < 1 s).

Usage: ``nice -n 10 .venv/bin/python bench/partitions.py [--rows N] [--months M] [--repeat R]``.
Needs Postgres at ``--pg``; creates and drops two databases (``--db``\\ ``_plain``/``_part``).
The issue's 10 M events do not fit this shared 2-core machine's time budget; the default 1 M
(about 170,000 events per monthly partition) shows the same per-row costs.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from ingest import PY, ROOT, django_environment, run_import  # noqa: E402  (bench/ is not a package)

from bench import machine  # noqa: E402

# The log ends before the month the benchmark runs in: every row is history.
LOG_END = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="bench_partitions")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--months", type=int, default=6)
    p.add_argument("--repeat", type=int, default=2, help="import rounds per table (order alternated)")
    p.add_argument("--products", type=int, default=5000)
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--writers", type=int, default=2, help="import_events --writers")
    p.add_argument("--keep-db", action="store_true")
    return p.parse_args()


def manage(env: dict[str, str], *command: str) -> str:
    """``manage.py COMMAND`` in the database of ``env``; its output."""
    checks = [] if command[0] == "shell" else ["--skip-checks"]  # shell has no such option
    done = subprocess.run(
        [PY, "manage.py", *command, *checks],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


CATALOGUE = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from shop.models import Category, Product
category = Category.objects.create(name="Bench", slug="bench")
Product.objects.bulk_create([Product(sku=f"B-{{i:06d}}", name=f"Bench {{i}}", category=category,
    price=Decimal("9.99"), stock=5) for i in range({products})], batch_size=5000)
User = get_user_model()
password = make_password(None)
User.objects.bulk_create([User(username=f"bench{{i}}", password=password) for i in range({users})],
    batch_size=5000)
"""

PRUNE = """
import time
from datetime import datetime, timedelta
from django.db import connection
from behavior.services.retention import prune_events
with connection.cursor() as cursor:
    cursor.execute("ANALYZE behavior_event")
    cursor.execute("SELECT count(*) FROM behavior_event")
    before = cursor.fetchone()[0]
cut = datetime.fromisoformat("{cut}")
started = time.perf_counter()
deleted = prune_events(retention_days=1, now=cut + timedelta(days=1))
seconds = time.perf_counter() - started
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM behavior_event")
    after = cursor.fetchone()[0]
print(f"RESULT {{before}} {{after}} {{deleted}} {{seconds:.4f}}")
"""


def create_database(args: argparse.Namespace, db: str, *, plain: bool) -> dict[str, str]:
    import psycopg

    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    env = django_environment(args.pg, db)
    manage(env, "migrate", "--noinput", "-v", "0")
    if plain:  # the events table as it was before partitioning
        manage(env, "migrate", "behavior", "0006_translatable_names", "--noinput", "-v", "0")
    manage(env, "shell", "-c", CATALOGUE.format(products=args.products, users=args.users))
    return env


def write_log(path: Path, args: argparse.Namespace) -> datetime:
    """``--rows`` events evenly over ``--months`` months ending at LOG_END; returns the log's start."""
    start = LOG_END
    for _ in range(args.months):
        start = (start - timedelta(days=1)).replace(day=1)
    span = (LOG_END - start).total_seconds()
    first = int(start.timestamp())
    rng = random.Random(7)
    types = ["view"] * 6 + ["click"] * 2 + ["add_to_cart", "purchase"]
    with open(path, "w", encoding="utf-8") as out:
        out.write("user_id,item_id,event_type,timestamp,value,session_id\n")
        for i in range(args.rows):
            stamp = first + int(i * span / args.rows)
            kind = rng.choice(types)
            value = f"{rng.randint(100, 20000) / 100:.2f}" if kind == "purchase" else ""
            sku = f"B-{rng.randrange(args.products):06d}"
            if i % 5 == 0:
                out.write(f",{sku},{kind},{stamp},{value},anon{rng.randint(0, 20000)}\n")
            else:
                out.write(f"bench{rng.randrange(args.users)},{sku},{kind},{stamp},{value},\n")
    return start


def truncate(args: argparse.Namespace, db: str) -> None:
    import psycopg

    with psycopg.connect(f"{args.pg}/{db}", autocommit=True) as conn:
        conn.execute("TRUNCATE behavior_event")
        conn.execute("CHECKPOINT")


def import_round(args: argparse.Namespace, path: Path, label: str, db: str, env: dict[str, str]) -> dict:
    truncate(args, db)
    ns = argparse.Namespace(pg=args.pg, db=db)
    result = run_import(path, env, ns, "--writers", str(args.writers))
    rate = args.rows / result["import_seconds"]
    cpu_us = (result["import_cpu"] + result["pg_cpu"]) / args.rows * 1e6
    print(
        f"{label}: {rate:,.0f} rows/s ({result['import_seconds']:.1f} s); CPU per row: python "
        f"{result['import_cpu'] / args.rows * 1e6:.1f} us + postgres "
        f"{result['pg_cpu'] / args.rows * 1e6:.1f} us = {cpu_us:.1f} us; load {result['load'][0]:.1f}; "
        f"{result['summary']}",
        flush=True,
    )
    return {"rate": rate, "cpu_us": cpu_us}


def prune(env: dict[str, str], cut: datetime) -> tuple[int, int, int, float]:
    out = manage(env, "shell", "-c", PRUNE.format(cut=cut.isoformat()))
    match = re.search(r"RESULT (\d+) (\d+) (\d+) ([0-9.]+)", out)
    if match is None:
        raise RuntimeError(f"prune failed: {out}")
    before, after, deleted, seconds = match.groups()
    return int(before), int(after), int(deleted), float(seconds)


def main() -> None:
    args = parse_args()
    speed_start = machine.measure()
    databases = {"plain": f"{args.db}_plain", "partitioned": f"{args.db}_part"}
    envs = {label: create_database(args, db, plain=label == "plain") for label, db in databases.items()}
    results: dict[str, list[dict]] = {"plain": [], "partitioned": []}
    with tempfile.TemporaryDirectory(prefix="bench-partitions-") as tmp:
        path = Path(tmp) / "events.csv"
        start = write_log(path, args)
        print(f"log: {args.rows:,} events, {start:%Y-%m-%d} to {LOG_END:%Y-%m-%d}; load {os.getloadavg()}")
        for round_ in range(args.repeat):
            order = ["plain", "partitioned"] if round_ % 2 == 0 else ["partitioned", "plain"]
            for label in order:
                results[label].append(import_round(args, path, label, databases[label], envs[label]))
    # the oldest month ends where the second one starts
    cut = (start + timedelta(days=32)).replace(day=1)
    drops = {label: prune(envs[label], cut) for label in databases}
    speed_end = machine.measure()

    plain_rate = sum(r["rate"] for r in results["plain"]) / args.repeat
    part_rate = sum(r["rate"] for r in results["partitioned"]) / args.repeat
    plain_cpu = sum(r["cpu_us"] for r in results["plain"]) / args.repeat
    part_cpu = sum(r["cpu_us"] for r in results["partitioned"]) / args.repeat
    rows = [
        (
            f"import_events {args.rows:,} rows over {args.months} months, plain table (baseline)",
            f"{plain_rate:,.0f} rows/s; {plain_cpu:.1f} us CPU/row (mean of {args.repeat})",
            "",
        ),
        (
            f"import_events {args.rows:,} rows, partitioned by month",
            f"{part_rate:,.0f} rows/s = **{part_rate / plain_rate:.0%}** of the plain rate; "
            f"{part_cpu:.1f} us CPU/row ({part_cpu / plain_cpu:.2f}x)",
            ">= 80 % of the plain rate",
        ),
    ]
    for label in ("partitioned", "plain"):
        before, after, deleted, seconds = drops[label]
        how = "one partition dropped" if label == "partitioned" else "batched row deletes"
        rows.append(
            (
                f"retention of the oldest month ({before - after:,} of {before:,} rows), {label}",
                f"**{seconds:.3f} s** ({how}; reported {deleted:,})",
                "< 1 s" if label == "partitioned" else "",
            )
        )
    rows.append(("machine speed (start -> end)", machine.describe(speed_start, speed_end), ""))
    print()
    print("| measure | figure | target |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    if not args.keep_db:
        import psycopg

        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            for db in databases.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
