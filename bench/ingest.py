"""Benchmark of the event pipeline on Postgres (loopback only, bounded in time).

1. HTTP batch ingestion: gunicorn (``shop.wsgi:application``) + concurrent client
   processes (http.client) posting ``--batch`` events per request to ``POST /api/events/``;
   events/s sustained vs a naive per-event ``Event(...).save()`` loop measured in the same
   run; then the same batches are re-sent and the row count must not change.
2. ``manage.py import_events`` of generated CSVs (``--small-rows`` and ``--rows`` rows):
   rows/s and peak RSS of the command process, to show that memory stays flat.

Usage: ``nice -n 10 .venv/bin/python bench/ingest.py [--quick]``. Needs Postgres at
``--pg`` (default postgres://postgres@127.0.0.1:5432); creates and drops ``--db``.
Targets: >= 10,000 events/s over HTTP, >= 5x the naive loop, import >= 50,000 rows/s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
EVENT_TYPES = ["view"] * 6 + ["click"] * 2 + ["add_to_cart", "purchase"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="bench_ingest")
    p.add_argument("--products", type=int, default=5000)
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--events", type=int, default=200_000, help="events posted over HTTP")
    p.add_argument("--batch", type=int, default=100, help="events per request")
    p.add_argument("--clients", type=int, default=6, help="concurrent client processes")
    p.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    p.add_argument("--naive", type=int, default=3000, help="events saved one by one")
    p.add_argument("--small-rows", type=int, default=100_000)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--max-seconds", type=float, default=120.0, help="cap of the HTTP phase")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.events, args.naive, args.small_rows, args.rows = 20_000, 500, 20_000, 100_000
        args.products, args.users = 1000, 1000
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_environment(args: argparse.Namespace) -> dict[str, str]:
    import psycopg

    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db}"')
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": f"{args.pg}/{args.db}",
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "DEBUG": "0",  # no per-query logging in the workers
            "SECRET_KEY": "bench-only-secret-key",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "THROTTLE_EVENTS": "100000000/min",  # one loopback IP would otherwise be throttled
            "CELERY_BROKER_URL": "",
            "CACHE_URL": "",
            "REDIS_URL": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    return env


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def create_catalogue(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from shop.models import Category, Product

    category = Category.objects.create(name="Bench", slug="bench")
    skus = [f"B-{i:06d}" for i in range(args.products)]
    Product.objects.bulk_create(
        [
            Product(sku=s, name=f"Bench product {s}", category=category, price=Decimal("9.99"), stock=5)
            for s in skus
        ],
        batch_size=5000,
    )
    password = make_password(None)
    names = [f"bench{i}" for i in range(args.users)]
    get_user_model().objects.bulk_create(
        [get_user_model()(username=n, password=password) for n in names], batch_size=5000
    )
    return skus, names


def naive_loop(n: int, skus: list[str]) -> float:
    """Events/s of one Event(...).save() per event (autocommit), in this process."""
    from django.utils import timezone

    from behavior.models import Event
    from shop.models import Product

    ids = list(Product.objects.filter(sku__in=skus[:200]).values_list("pk", flat=True))
    start = time.perf_counter()
    for i in range(n):
        Event(
            event_type="view",
            item_id=ids[i % len(ids)],
            visitor_id=f"naive{i % 97:04d}",
            occurred_at=timezone.now(),
        ).save()
    return n / (time.perf_counter() - start)


def make_batches(args: argparse.Namespace, skus: list[str]) -> list[bytes]:
    rng = random.Random(7)
    batches = []
    for b in range(args.events // args.batch):
        visitor = f"visitor{b % 5000:06d}"
        events = [
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_type": rng.choice(EVENT_TYPES),
                "item": rng.choice(skus),
                "visitor_id": visitor,
                "session_id": f"s{b % 9000}",
            }
            for _ in range(args.batch)
        ]
        batches.append(json.dumps({"events": events}).encode())
    return batches


def client_worker(port: int, batches: list[bytes], deadline: float, queue: mp.Queue) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "User-Agent": "Mozilla/5.0 bench"}
    accepted = duplicates = rejected = sent = errors = 0
    for body in batches:
        if time.time() > deadline:
            break
        try:
            conn.request("POST", "/api/events/", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            errors += 1
            continue
        if response.status != 202:
            errors += 1
            continue
        result = json.loads(data)
        accepted += result["accepted"]
        duplicates += result["duplicates"]
        rejected += len(result["rejected"])
        sent += 1
    queue.put((sent, accepted, duplicates, rejected, errors))


def post_all(port: int, batches: list[bytes], clients: int, max_seconds: float) -> dict:
    queue: mp.Queue = mp.Queue()
    shares = [batches[i::clients] for i in range(clients)]
    deadline = time.time() + max_seconds
    start = time.perf_counter()
    procs = [mp.Process(target=client_worker, args=(port, share, deadline, queue)) for share in shares]
    for proc in procs:
        proc.start()
    totals = [0, 0, 0, 0, 0]
    for _ in procs:
        for i, value in enumerate(queue.get()):
            totals[i] += value
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    sent, accepted, duplicates, rejected, errors = totals
    return {
        "requests": sent,
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected,
        "errors": errors,
        "seconds": elapsed,
        "events_per_s": (accepted + duplicates) / elapsed,
    }


def start_gunicorn(env: dict[str, str], workers: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            GUNICORN,
            "shop.wsgi:application",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--keep-alive",
            "5",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("gunicorn did not start")


def write_csv(path: Path, rows: int, skus: list[str], users: list[str], seed: int) -> None:
    rng = random.Random(seed)
    base = 1_700_000_000 + seed * 10_000_000
    with open(path, "w", encoding="utf-8") as out:
        out.write("user_id,item_id,event_type,timestamp,value,session_id\n")
        for i in range(rows):
            event_type = rng.choice(EVENT_TYPES)
            value = f"{rng.randint(100, 20000) / 100:.2f}" if event_type == "purchase" else ""
            if i % 5 == 0:
                out.write(
                    f",{rng.choice(skus)},{event_type},{base + i},{value},anon{rng.randint(0, 20000)}\n"
                )
            else:
                out.write(f"{rng.choice(users)},{rng.choice(skus)},{event_type},{base + i},{value},\n")


def run_import(path: Path, env: dict[str, str]) -> dict:
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "manage.py", "import_events", str(path), "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"import_events failed: {err[-2000:]}")
    return {"seconds": elapsed, "peak_rss_mb": peak / 2**20, "summary": out.strip().splitlines()[-1]}


def event_count() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM behavior_event")
        return cursor.fetchone()[0]


def main() -> None:
    args = parse_args()
    env = setup_environment(args)
    django_setup()
    skus, users = create_catalogue(args)
    print(f"catalogue: {len(skus)} products, {len(users)} users; database {args.db}")

    naive = naive_loop(args.naive, skus)
    print(f"naive Event(...).save() loop: {args.naive} events, {naive:,.0f} events/s")

    batches = make_batches(args, skus)
    gunicorn, port = start_gunicorn(env, args.workers)
    try:
        before = event_count()
        first = post_all(port, batches, args.clients, args.max_seconds)
        after_first = event_count()
        resent = post_all(port, batches[: first["requests"]], args.clients, args.max_seconds)
        after_resend = event_count()
    finally:
        gunicorn.terminate()
        gunicorn.wait(10)
    print(
        f"HTTP ingest ({args.workers} gunicorn workers, {args.clients} clients, {args.batch}/request): "
        f"{first['accepted']:,} events in {first['seconds']:.1f}s = {first['events_per_s']:,.0f} events/s "
        f"({first['requests']} requests, {first['errors']} errors, {first['rejected']} rejected)"
    )
    print(f"  ratio to the naive loop: {first['events_per_s'] / naive:.1f}x")
    print(
        f"re-send of the same batches: accepted {resent['accepted']}, duplicates {resent['duplicates']:,}, "
        f"{resent['events_per_s']:,.0f} events/s; rows before/after: {after_first:,}/{after_resend:,} "
        f"({'OK, nothing stored twice' if after_resend == after_first else 'DUPLICATES STORED'})"
    )
    assert after_first - before == first["accepted"]

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        results = {}
        for label, rows, seed in (("small", args.small_rows, 1), ("large", args.rows, 2)):
            path = Path(tmp) / f"events-{rows}.csv"
            write_csv(path, rows, skus, users, seed)
            results[label] = run_import(path, env)
            r = results[label]
            print(
                f"import_events {rows:,} rows: {r['seconds']:.1f}s = {rows / r['seconds']:,.0f} rows/s "
                f"(wall time incl. start-up), peak RSS {r['peak_rss_mb']:.0f} MB; {r['summary']}"
            )
            path.unlink()
    small, large = results["small"], results["large"]
    print(
        f"  peak RSS {args.small_rows:,} vs {args.rows:,} rows: {small['peak_rss_mb']:.0f} MB vs "
        f"{large['peak_rss_mb']:.0f} MB (ratio {large['peak_rss_mb'] / small['peak_rss_mb']:.2f})"
    )

    http_ok = first["events_per_s"] >= 10_000
    ratio_ok = first["events_per_s"] >= 5 * naive
    import_ok = args.rows / large["seconds"] >= 50_000
    print(
        f"targets: HTTP >= 10,000 events/s: {'met' if http_ok else 'MISSED'}; >= 5x naive: "
        f"{'met' if ratio_ok else 'MISSED'}; import >= 50,000 rows/s: {'met' if import_ok else 'MISSED'}"
    )

    if not args.keep_db:
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
