"""Soak test: mixed traffic against gunicorn on Postgres while a retrain and a profile rebuild run.

    .venv/bin/python bench/soak.py [--minutes 10] [--quick]

Loopback only. Creates the Postgres database ``bench_soak`` (dropped and re-created each
run), seeds a small shop, starts gunicorn (2 workers), measures idle latency of
``GET /api/recommendations/``, then for the duration sends ingestion POSTs, recommendation
GETs and product page views from 4 client threads while ``train_model`` and
``rebuild_profiles`` run in a subprocess. Prints: 5xx count, p50/p99 of recommendations
idle vs under load (target: p99 within 2x), and events stored vs accepted (must be equal).
Exit status 1 when a target is missed. Every process it starts is killed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.seed import SEED  # noqa: E402  (the same small shop as the tests)

DB = "bench_soak"
PG = "postgres://postgres@127.0.0.1:5432"
UA = {"User-Agent": "Mozilla/5.0 (soak)"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        head = {**UA, **(headers or {}), **({"Content-Type": "application/json"} if data else {})}
        started = time.perf_counter()
        conn.request(method, path, body=data, headers=head)
        response = conn.getresponse()
        payload = response.read()
        return response.status, time.perf_counter() - started, payload
    finally:
        conn.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="one minute")
    args = parser.parse_args()
    minutes = 1.0 if args.quick else args.minutes

    import psycopg

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.integration.settings_integration",
        "DATABASE_URL": f"{PG}/{DB}",
        "CELERY_BROKER_URL": "",
        "CACHE_URL": "",
        "DEBUG": "0",
        "SECRET_KEY": "soak-" + uuid.uuid4().hex,
        "MEDIA_ROOT": f"/tmp/{DB}-media",
        "LOG_LEVEL": "WARNING",
    }
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*manage, "shell", "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    processes = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "shop.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _request(port, "GET", "/api/items/popular/")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.5)

        idle = [_request(port, "GET", "/api/recommendations/?limit=10")[1] for _ in range(200)]

        lock = threading.Lock()
        stats = {"5xx": 0, "requests": 0, "accepted": 0, "errors": 0}
        loaded: list[float] = []
        stop = time.monotonic() + minutes * 60

        def client(number: int) -> None:
            visitor = f"soak-{number}-{uuid.uuid4().hex[:8]}"
            step = 0
            while time.monotonic() < stop:
                step += 1
                try:
                    kind = step % 3
                    if kind == 0:
                        events = [
                            {
                                "event_type": "view",
                                "item": f"P{(step + i) % 12:02d}",
                                "visitor_id": visitor,
                                "event_id": str(uuid.uuid4()),
                            }
                            for i in range(10)
                        ]
                        status, _, body = _request(port, "POST", "/api/events/", {"events": events})
                        if status == 202:
                            with lock:
                                stats["accepted"] += json.loads(body)["accepted"]
                    elif kind == 1:
                        status, seconds, _ = _request(
                            port,
                            "GET",
                            "/api/recommendations/?limit=10",
                            headers={"Cookie": f"rec_vid={visitor}"},
                        )
                        with lock:
                            loaded.append(seconds)
                    else:
                        status, _, _ = _request(port, "GET", f"/p/P{step % 12:02d}/")
                except OSError:
                    with lock:
                        stats["errors"] += 1
                    continue
                with lock:
                    stats["requests"] += 1
                    stats["5xx"] += status >= 500

        jobs = subprocess.Popen(
            [
                *manage,
                "shell",
                "-c",
                "from recommendations.training import train_model; "
                "from recommendations.profiles import rebuild_profiles; "
                "r = train_model(triggered_by='soak'); "
                "print('train', r.status); print('profiles', rebuild_profiles(full=True))",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        processes.append(jobs)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            job_output = jobs.communicate(timeout=300)[0]
        except subprocess.TimeoutExpired:
            job_output = "(background jobs still running after the soak: killed)"
        with psycopg.connect(f"{PG}/{DB}") as conn:
            stored = conn.execute(
                "SELECT count(*) FROM behavior_event WHERE visitor_id LIKE 'soak-%%'"
            ).fetchone()[0]
        idle_p99, load_p99 = _pct(idle, 0.99), _pct(loaded, 0.99)
        print(
            f"soak: {minutes:g} min, {stats['requests']} requests, {stats['errors']} connection errors, "
            f"{stats['5xx']} responses 5xx"
        )
        print(
            f"recommendations p50/p99 idle {_pct(idle, 0.5):.1f}/{idle_p99:.1f} ms; under load "
            f"{_pct(loaded, 0.5):.1f}/{load_p99:.1f} ms ({load_p99 / idle_p99:.2f}x idle p99)"
        )
        print(f"events accepted {stats['accepted']}, stored {stored}")
        print(
            "background jobs:",
            " | ".join(line for line in job_output.splitlines() if line.startswith(("train", "profiles")))[
                :500
            ],
        )
        ok = stats["5xx"] == 0 and stored == stats["accepted"] and load_p99 <= 2 * idle_p99
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    raise SystemExit(main())
