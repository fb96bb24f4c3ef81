"""Benchmark of the event pipeline on Postgres (loopback only, bounded in time).

1. HTTP batch ingestion: gunicorn (``shop.wsgi:application``) + concurrent client
   processes (http.client) posting ``--batch`` events per request to ``POST /api/events/``;
   events/s sustained vs a naive per-event ``Event(...).save()`` loop measured in the same
   run; then the same batches are re-sent and the row count must not change.
2. ``manage.py import_events`` of generated CSVs (``--small-rows`` and ``--rows`` rows):
   rows/s and peak RSS of the command process, to show that memory stays flat.

Usage: ``nice -n 10 .venv/bin/python bench/ingest.py [--quick] [--defer-indexes]``; only the
import: ``--skip-http`` (and ``--small-rows``/``--rows`` for smaller files). Needs
Postgres at ``--pg`` (default postgres://postgres@127.0.0.1:5432); creates and drops ``--db``.
Targets: >= 10,000 events/s over HTTP, >= 5x the naive loop, import >= 50,000 rows/s.

Besides wall-clock rates it prints CPU seconds per event of each party (gunicorn process
tree, the Postgres backends of the bench database, the client processes; sampled with
psutil), because on a shared machine wall time mostly measures the other tenants. The
import figures separate Django start-up from the import itself (the command prints its
own elapsed time). Ends with a Markdown table (copied into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import secrets
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
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--worker-class", default="gthread", help="gunicorn worker class (sync or gthread)")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (gthread)")
    p.add_argument("--skip-http", action="store_true", help="skip the HTTP phase")
    p.add_argument("--skip-import", action="store_true", help="skip the import phase")
    p.add_argument(
        "--defer-indexes",
        action="store_true",
        help="also import a second large file with import_events --defer-indexes",
    )
    p.add_argument("--naive", type=int, default=3000, help="events saved one by one")
    p.add_argument("--small-rows", type=int, default=100_000)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--writers", type=int, default=2, help="import_events --writers (Postgres writer threads)")
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


def django_environment(pg: str, db: str) -> dict[str, str]:
    """The environment of the demo project's processes on database ``db`` (no broker, no cache)."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": f"{pg}/{db}",
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "DEBUG": "0",  # no per-query logging in the workers
            "SECRET_KEY": "bench-" + secrets.token_urlsafe(48),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "THROTTLE_EVENTS": "100000000/min",  # one loopback IP would otherwise be throttled
            "CELERY_BROKER_URL": "",
            "CACHE_URL": "",
            "REDIS_URL": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def setup_environment(args: argparse.Namespace) -> dict[str, str]:
    import psycopg

    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db}"')
    env = django_environment(args.pg, args.db)
    # --skip-checks: this benchmark runs DEBUG off on the per-process cache on purpose, which the
    # checks refuse for a deployment (recommendations.E020)
    migrate = [PY, "manage.py", "migrate", "--noinput", "-v", "0", "--skip-checks"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True)
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


def make_batches(args: argparse.Namespace, skus: list[str]) -> list[tuple[bytes, str]]:
    """(body, Cookie header) per request: 5000 anonymous visitors, as browsers send them.

    A browser's visitor is the signed cookie the server issued it; this process has the
    server's settings and key, so it signs the cookies itself (``behavior.identity``).
    """
    from behavior.conf import behavior_settings
    from behavior.identity import sign_visitor

    rng = random.Random(7)
    cookies = [f"{behavior_settings.VISITOR_COOKIE_NAME}={sign_visitor(f'{v:032x}')}" for v in range(5000)]
    batches = []
    for b in range(args.events // args.batch):
        events = [
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_type": rng.choice(EVENT_TYPES),
                "item": rng.choice(skus),
                "session_id": f"s{b % 9000}",
            }
            for _ in range(args.batch)
        ]
        batches.append((json.dumps({"events": events}).encode(), cookies[b % 5000]))
    return batches


def client_worker(port: int, batches: list[tuple[bytes, str]], deadline: float, queue: mp.Queue) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "User-Agent": "Mozilla/5.0 bench"}
    accepted = duplicates = rejected = sent = errors = 0
    for body, cookie in batches:
        if time.time() > deadline:
            break
        try:
            conn.request("POST", "/api/events/", body=body, headers={**headers, "Cookie": cookie})
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
    queue.put((sent, accepted, duplicates, rejected, errors, time.process_time()))


def post_all(port: int, batches: list[tuple[bytes, str]], clients: int, max_seconds: float) -> dict:
    queue: mp.Queue = mp.Queue()
    shares = [batches[i::clients] for i in range(clients)]
    deadline = time.time() + max_seconds
    start = time.perf_counter()
    procs = [mp.Process(target=client_worker, args=(port, share, deadline, queue)) for share in shares]
    for proc in procs:
        proc.start()
    totals = [0, 0, 0, 0, 0, 0.0]
    for _ in procs:
        for i, value in enumerate(queue.get()):
            totals[i] += value
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    sent, accepted, duplicates, rejected, errors, client_cpu = totals
    return {
        "requests": sent,
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected,
        "errors": errors,
        "seconds": elapsed,
        "events_per_s": (accepted + duplicates) / elapsed,
        "client_cpu": client_cpu,
    }


def start_gunicorn(
    env: dict[str, str], workers: int, worker_class: str = "sync", threads: int = 1
) -> tuple[subprocess.Popen, int]:
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
            "--graceful-timeout",
            "5",
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
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


class CpuMeter:
    """CPU seconds (user + system) used by a set of processes during a phase.

    A background thread samples the gunicorn process tree and/or the Postgres backends
    connected to the bench database (``pg_stat_activity``) every 0.2 s and keeps the last
    reading per pid, so backends that exit before the end still count. Processes present
    at ``start`` count from their reading then; those born later from zero.
    """

    def __init__(self, *, root_pid: int | None = None, pg: str = "", db: str = "") -> None:
        import threading

        self.root_pid, self.pg, self.db = root_pid, pg, db
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.conn = None

    def _pids(self) -> list[int]:
        import psutil

        pids = []
        if self.root_pid is not None:
            try:
                root = psutil.Process(self.root_pid)
                pids += [root.pid] + [c.pid for c in root.children(recursive=True)]
            except psutil.Error:
                pass
        if self.db:
            rows = self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [self.db]
            ).fetchall()
            pids += [r[0] for r in rows]
        return pids

    def _sample(self, baseline: bool) -> None:
        import psutil

        for pid in self._pids():
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            used = t.user + t.system
            if pid not in self.first:
                self.first[pid] = used if baseline else 0.0
            self.last[pid] = used

    def _loop(self) -> None:
        while not self.stop_event.wait(0.2):
            self._sample(False)

    def start(self) -> CpuMeter:
        if self.db:
            import psycopg

            self.conn = psycopg.connect(f"{self.pg}/postgres", autocommit=True)
        self._sample(True)
        self.thread.start()
        return self

    def stop(self) -> float:
        self._sample(False)
        self.stop_event.set()
        self.thread.join()
        if self.conn is not None:
            self.conn.close()
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


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


def run_import(path: Path, env: dict[str, str], args: argparse.Namespace, *extra: str) -> dict:
    """Run ``manage.py import_events``; wall time, the command's own import time, CPU and peak RSS."""
    import re

    import psutil

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "manage.py", "import_events", str(path), "--no-progress", "--skip-checks", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pg_meter = CpuMeter(pg=args.pg, db=args.db).start()
    ps = psutil.Process(proc.pid)
    peak = 0
    cpu = 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
            times = ps.cpu_times()
            cpu = times.user + times.system
        except psutil.Error:
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    pg_cpu = pg_meter.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"import_events failed: {err[-2000:]}")
    summary = out.strip().splitlines()[-1]
    match = re.search(r"; ([0-9.]+) s, [0-9,]+ rows/s(?:, ([0-9.]+) s CPU)?", summary)
    import_seconds = float(match.group(1)) if match else elapsed
    import_cpu = float(match.group(2)) if match and match.group(2) else cpu
    return {
        "seconds": elapsed,
        "import_seconds": import_seconds,
        "startup_seconds": elapsed - import_seconds,
        "peak_rss_mb": peak / 2**20,
        "python_cpu": cpu,
        "import_cpu": import_cpu,
        "pg_cpu": pg_cpu,
        "load": (load_before, os.getloadavg()[0]),
        "summary": summary,
    }


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
    table: list[tuple[str, str, str]] = []  # (measure, figure, target)
    print(f"catalogue: {len(skus)} products, {len(users)} users; database {args.db}; load {os.getloadavg()}")
    if not args.skip_http:
        run_http(args, env, skus, table)
    if not args.skip_import:
        run_imports(args, env, skus, users, table)
    print()
    print("| measure | figure | target |")
    print("|---|---|---|")
    for row in table:
        print(f"| {' | '.join(row)} |")
    if not args.keep_db:
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')


def run_http(args: argparse.Namespace, env: dict[str, str], skus: list[str], table: list) -> None:
    """Naive loop, then HTTP batches through gunicorn, then the same batches again."""
    naive = naive_loop(args.naive, skus)
    print(f"naive Event(...).save() loop: {args.naive} events, {naive:,.0f} events/s")

    batches = make_batches(args, skus)
    gunicorn, port = start_gunicorn(env, args.workers, args.worker_class, args.threads)
    try:
        before = event_count()
        web_meter = CpuMeter(root_pid=gunicorn.pid).start()
        pg_meter = CpuMeter(pg=args.pg, db=args.db).start()
        first = post_all(port, batches, args.clients, args.max_seconds)
        web_cpu, pg_cpu = web_meter.stop(), pg_meter.stop()
        after_first = event_count()
        resent = post_all(port, batches[: first["requests"]], args.clients, args.max_seconds)
        after_resend = event_count()
    finally:
        gunicorn.terminate()
        try:
            gunicorn.wait(30)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
            gunicorn.wait()
    n = max(first["accepted"] + first["duplicates"], 1)
    workers = f"{args.workers} {args.worker_class} workers"
    if args.threads > 1:
        workers += f" x {args.threads} threads"
    print(
        f"HTTP ingest ({workers}, {args.clients} clients, {args.batch}/request): "
        f"{first['accepted']:,} events in {first['seconds']:.1f}s = {first['events_per_s']:,.0f} events/s "
        f"({first['requests']} requests, {first['errors']} errors, {first['rejected']} rejected)"
    )
    per_event = {
        name: cpu / n * 1e6
        for name, cpu in (("gunicorn", web_cpu), ("postgres", pg_cpu), ("clients", first["client_cpu"]))
    }
    server = (web_cpu + pg_cpu) / n * 1e6
    print(
        "  CPU per event: "
        + ", ".join(f"{k} {v:.0f} us" for k, v in per_event.items())
        + f"; server (gunicorn + postgres) {server:.0f} us = {1e6 / server:,.0f} events per CPU-second"
    )
    ratio = first["events_per_s"] / naive
    print(f"  ratio to the naive loop: {ratio:.1f}x")
    stored_once = after_resend == after_first and after_first - before == first["accepted"]
    print(
        f"re-send of the same batches: accepted {resent['accepted']}, duplicates {resent['duplicates']:,}, "
        f"{resent['events_per_s']:,.0f} events/s; rows before/after: {after_first:,}/{after_resend:,} "
        f"({'OK, nothing stored twice' if stored_once else 'DUPLICATES STORED'})"
    )
    table += [
        (
            "HTTP batch ingest, wall",
            f"{first['events_per_s']:,.0f} events/s "
            f"({first['accepted']:,} events, {workers}, {args.clients} clients, {args.batch}/request, "
            f"{first['errors']} errors)",
            ">= 10,000 events/s",
        ),
        (
            "HTTP batch ingest, server CPU per event",
            f"{per_event['gunicorn']:.0f} us gunicorn + "
            f"{per_event['postgres']:.0f} us postgres = {1e6 / server:,.0f} events per CPU-second "
            f"(clients {per_event['clients']:.0f} us)",
            "2 cores: <= 200 us",
        ),
        ("naive Event.save() loop", f"{naive:,.0f} events/s; HTTP batches = {ratio:.1f}x", ">= 5x"),
        (
            "re-send of the same batches",
            f"{resent['duplicates']:,} duplicates, "
            f"{resent['accepted']} stored; rows {after_first:,} -> {after_resend:,}",
            "nothing stored twice",
        ),
    ]


def run_imports(
    args: argparse.Namespace, env: dict[str, str], skus: list[str], users: list[str], table: list
) -> None:
    """import_events of a small and a large generated file (optionally a large one with --defer-indexes)."""
    writers = ("--writers", str(args.writers))
    runs = [("small", args.small_rows, 1, writers), ("large", args.rows, 2, writers)]
    if args.defer_indexes:
        runs.append(("large, --defer-indexes", args.rows, 3, ("--defer-indexes", *writers)))
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        results = {}
        for label, rows, seed, extra in runs:
            path = Path(tmp) / f"events-{rows}-{seed}.csv"
            write_csv(path, rows, skus, users, seed)
            r = results[label] = run_import(path, env, args, *extra)
            rate = rows / r["import_seconds"]
            python_us, pg_us = r["import_cpu"] / rows * 1e6, r["pg_cpu"] / rows * 1e6
            print(
                f"import_events {rows:,} rows ({label}): {r['seconds']:.1f}s wall = start-up "
                f"{r['startup_seconds']:.1f}s + import {r['import_seconds']:.1f}s ({rate:,.0f} rows/s); "
                f"CPU per row: python {python_us:.1f} us (import only; "
                f"{r['python_cpu'] / rows * 1e6:.0f} us with start-up), postgres {pg_us:.1f} us; "
                f"peak RSS {r['peak_rss_mb']:.0f} MB; load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}; "
                f"{r['summary']}"
            )
            table.append(
                (
                    f"import_events {rows:,} rows ({label})",
                    f"{rate:,.0f} rows/s steady ({r['import_seconds']:.1f}s; start-up "
                    f"{r['startup_seconds']:.1f}s separate); CPU/row: python {python_us:.1f} us, "
                    f"postgres {pg_us:.1f} us (= {1e6 / (python_us + pg_us):,.0f} rows per CPU-second); "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB; load {r['load'][0]:.1f}",
                    ">= 50,000 rows/s, memory flat",
                )
            )
            path.unlink()
    small, large = results["small"], results["large"]
    table.append(
        (
            "import peak RSS, small vs large",
            f"{small['peak_rss_mb']:.0f} MB ({args.small_rows:,} rows) vs "
            f"{large['peak_rss_mb']:.0f} MB ({args.rows:,} rows)",
            "flat",
        )
    )


if __name__ == "__main__":
    main()
