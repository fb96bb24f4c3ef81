"""Soak test: mixed traffic against gunicorn on Postgres + Redis while retrains and profile rebuilds run.

    nice -n 5 .venv/bin/python bench/soak.py [--minutes 10] [--baseline-seconds 60] [--quick]

Loopback only. One run:

1. (Re)creates the Postgres database ``bench_soak``, seeds the demo shop
   (``seed_demo --users 1000 --events 80000`` by default), trains the first model, precomputes
   lists and profiles (``prepare_demo``) and logs a set of demo shoppers in.
2. Starts gunicorn with the production settings (Redis cache and sessions).
3. Baseline: ``--baseline-seconds`` of the mixed traffic below with nothing in the background.
4. Soak: ``--minutes`` of the same traffic while ``manage.py retrain`` and
   ``manage.py rebuild_profiles --full`` run back to back in a loop for the whole duration
   (the same services and the same lowered CPU priority as the Celery tasks).

Traffic (``--clients`` threads, a new connection per request as a browser's first request
would): event batches of 10 posted by anonymous visitors, ``GET /api/recommendations/`` of
logged-in shoppers (precomputed lists) and of those visitors (real-time session path), and
product pages. Prints: 5xx count, connection errors, p50/p99 of the recommendation requests
in the baseline and during the soak (target: soak p99 within 2x of the baseline p99; the p99
of sequential single requests on the idle server is printed too), and events stored vs
accepted (must be equal). Exit status 1 when a target is missed. Every process it starts is
killed at the end, and the database is dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB = "bench_soak"
PG = "postgres://postgres@127.0.0.1:5432"
UA = {"User-Agent": "Mozilla/5.0 (soak)"}

# Logs shoppers with a precomputed list in (bench/sessions.py); run with ``manage.py shell -c``.
LOGIN_SCRIPT = """
import sys
sys.path.insert(0, "bench")
from sessions import login_sessions
from recommendations.models import PrecomputedList
ids = PrecomputedList.objects.order_by("user_id").values_list("user_id", flat=True)[:{count}]
for key in login_sessions(ids).values():
    print("COOKIE sessionid=" + key)
"""

# Retrain and rebuild profiles back to back until the file named by argv[1] disappears, in one
# long-lived process as a Celery worker runs its tasks: Django, torch and scikit-learn are
# imported once (a worker does that at boot, not per task), and the process is at background
# priority from its first line (``lower_cpu_priority`` once more in each command is a no-op).
# Starting ``manage.py`` per job instead made each start-up (about 3 s of CPU for the imports)
# run at normal priority in the middle of the soak, which a deployment never does.
JOBS_SCRIPT = """
import os, sys, time
sys.path.insert(0, os.getcwd())
flag = sys.argv[1]
import django
django.setup()
from django.core.management import call_command
from django.core.management.base import CommandError
from recommendations.runtime.priority import lower_cpu_priority
lower_cpu_priority()
while os.path.exists(flag):
    for command in (["retrain"], ["rebuild_profiles", "--full"]):
        started = time.monotonic()
        try:
            call_command(*command, stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
            status = 0
        except CommandError as exc:
            status = exc.returncode
            if status not in (0, 2):
                print(str(exc)[-1500:], flush=True)
        print(" ".join(command), status, f"{time.monotonic() - started:.0f}s", flush=True)
        if not os.path.exists(flag):
            break
"""


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


def _visitor_cookie(port: int) -> str:
    """The ``name=value`` of the visitor cookie the server issues a new browser on its home page."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/", headers=UA)
        response = conn.getresponse()
        response.read()
        jar = SimpleCookie()
        for header in response.msg.get_all("Set-Cookie") or []:
            jar.load(header)
        return f"rec_vid={jar['rec_vid'].value}" if "rec_vid" in jar else ""
    finally:
        conn.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


class Traffic:
    """The mixed client load; one instance per phase so each phase has its own figures."""

    def __init__(self, port: int, cookies: list[str], skus: list[str]) -> None:
        self.port, self.cookies, self.skus = port, cookies, skus
        self.lock = threading.Lock()
        self.stats = {"5xx": 0, "requests": 0, "accepted": 0, "errors": 0}
        self.latency: dict[str, list[float]] = {"personal": [], "session": []}

    def _client(self, number: int, stop: float) -> None:
        rng = random.Random(number)
        # Each client is one browser: the visitor cookie the server issues it on its first page,
        # and a session id of its own that tells its events apart in the final count.
        session = f"soak-{number}-{uuid.uuid4().hex[:8]}"
        visitor = ""
        step = 0
        while time.monotonic() < stop:
            step += 1
            try:
                if not visitor:
                    visitor = _visitor_cookie(self.port)
                kind = step % 4
                if kind == 0:
                    events = [
                        {
                            "event_type": "view",
                            "item": rng.choice(self.skus),
                            "session_id": session,
                            "event_id": str(uuid.uuid4()),
                        }
                        for _ in range(10)
                    ]
                    status, _, body = _request(
                        self.port, "POST", "/api/events/", {"events": events}, headers={"Cookie": visitor}
                    )
                    if status == 202:
                        with self.lock:
                            self.stats["accepted"] += json.loads(body)["accepted"]
                elif kind in (1, 3):
                    personal = kind == 1
                    cookie = rng.choice(self.cookies) if personal else visitor
                    status, seconds, _ = _request(
                        self.port, "GET", "/api/recommendations/?limit=10", headers={"Cookie": cookie}
                    )
                    with self.lock:
                        self.latency["personal" if personal else "session"].append(seconds)
                else:
                    status, _, _ = _request(self.port, "GET", f"/p/{rng.choice(self.skus)}/")
            except OSError:
                with self.lock:
                    self.stats["errors"] += 1
                continue
            with self.lock:
                self.stats["requests"] += 1
                self.stats["5xx"] += status >= 500

    def run(self, seconds: float, clients: int) -> Traffic:
        stop = time.monotonic() + seconds
        threads = [threading.Thread(target=self._client, args=(n, stop)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self

    @property
    def recommendations(self) -> list[float]:
        return self.latency["personal"] + self.latency["session"]

    def summary(self) -> str:
        parts = [
            f"{self.stats['requests']} requests, {self.stats['errors']} connection errors, "
            f"{self.stats['5xx']} 5xx"
        ]
        for name, values in (("all", self.recommendations), *self.latency.items()):
            parts.append(
                f"{name} p50/p99 {_pct(values, 0.5):.1f}/{_pct(values, 0.99):.1f} ms (n={len(values)})"
            )
        return "; ".join(parts)


def _cpu_by_group(gunicorn: int, jobs: int | None = None) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of processes on this machine.

    Processes that ended in between are missing from a difference of two readings, so the
    machine-wide busy time is read too (``machine``): what the groups leave unexplained.
    """
    import psutil

    def tree(pid: int | None) -> set[int]:
        if pid is None:
            return set()
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            return {root.pid, *(child.pid for child in root.children(recursive=True))}
        return set()

    groups = {"gunicorn": tree(gunicorn), "jobs": tree(jobs), "clients": {os.getpid()}}
    totals = dict.fromkeys([*groups, "postgres", "redis"], 0.0)
    for process in psutil.process_iter(["name", "cpu_times"]):
        times = process.info["cpu_times"]
        if times is None:
            continue
        seconds = times.user + times.system
        name = process.info["name"] or ""
        group = next((g for g, pids in groups.items() if process.pid in pids), None)
        if group is None and name.startswith("postgres"):
            group = "postgres"
        elif group is None and name.startswith("redis"):
            group = "redis"
        if group is not None:
            totals[group] += seconds
    machine = psutil.cpu_times()
    totals["machine"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    return totals


def _cpu_report(before: dict[str, float], after: dict[str, float], seconds: float, requests: int) -> str:
    """CPU share of each group over a phase, and web CPU (gunicorn + Postgres + Redis) per request."""
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    shares = ", ".join(f"{name} {used[name] / seconds * 100:.0f}%" for name in used)
    web = (used["gunicorn"] + used["postgres"] + used["redis"]) * 1000 / max(requests, 1)
    return f"CPU share (100% = one core): {shares}; gunicorn+Postgres+Redis {web:.2f} ms per request"


def _manage(env: dict, *args: str, capture: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=capture, text=True
    )
    if done.returncode:
        raise SystemExit(f"manage.py {args[0]} failed ({done.returncode}):\n{(done.stderr or '')[-2000:]}")
    return done.stdout or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--baseline-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="1 minute soak, 20 s baseline, a smaller shop")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--events", type=int, default=80_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.baseline_seconds = 1.0, 20.0
        args.users, args.events = 400, 30_000

    import psycopg

    flag = Path(f"/tmp/{DB}-{uuid.uuid4().hex}.running")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DATABASE_URL": f"{PG}/{DB}",
        "CACHE_URL": args.redis,
        "CACHE_KEY_PREFIX": f"soak-{uuid.uuid4().hex[:6]}",
        "CELERY_BROKER_URL": "",
        "DEBUG": "0",
        "SECRET_KEY": "soak-" + secrets.token_urlsafe(48),
        "MEDIA_ROOT": f"/tmp/{DB}-media",
        "LOG_LEVEL": "WARNING",
        # the soak measures latency, not the throttle: keep every request under the limits
        "THROTTLE_EVENTS": "1000000/min",
        "THROTTLE_RECOMMENDATIONS": "1000000/min",
        "THROTTLE_ANON": "1000000/min",
        "THROTTLE_USER": "1000000/min",
        # a retrain of the demo shop in about a minute, so that several run during the soak
        "RECOMMENDER_EPOCHS": os.environ.get("RECOMMENDER_EPOCHS", "5"),
    }
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    processes: list[subprocess.Popen] = []
    try:
        started = time.monotonic()
        _manage(env, "migrate", "--noinput")
        _manage(env, "seed_demo", "--users", str(args.users), "--events", str(args.events))
        _manage(env, "prepare_demo")
        cookies = [
            line.split(" ", 1)[1]
            for line in _manage(env, "shell", "-c", LOGIN_SCRIPT.replace("{count}", "200")).splitlines()
            if line.startswith("COOKIE ")
        ]
        skus = json.loads(
            _manage(
                env,
                "shell",
                "-c",
                "import json; from shop.models import Product; "
                "skus = Product.objects.filter(is_active=True).values_list('sku', flat=True); "
                "print(json.dumps(list(skus)))",
            )
            .strip()
            .splitlines()[-1]
        )
        print(
            f"prepared in {time.monotonic() - started:.0f} s: {len(skus)} products, "
            f"{len(cookies)} logged-in shoppers"
        )

        port = _free_port()
        processes.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "gunicorn"),
                    "shop.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(args.workers),
                    "--threads",
                    str(args.threads),
                    "--worker-class",
                    "gthread",
                    "--timeout",
                    "60",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if _request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.5)
        warmup = Traffic(port, cookies, skus).run(5, args.clients)  # every worker and connection warm
        single = [
            _request(
                port, "GET", "/api/recommendations/?limit=10", headers={"Cookie": random.choice(cookies)}
            )[1]
            for _ in range(300)
        ]
        cpu_before = _cpu_by_group(processes[0].pid)
        baseline = Traffic(port, cookies, skus).run(args.baseline_seconds, args.clients)
        baseline_cpu = _cpu_report(
            cpu_before, _cpu_by_group(processes[0].pid), args.baseline_seconds, baseline.stats["requests"]
        )

        flag.touch()
        jobs = subprocess.Popen(
            [sys.executable, "-c", JOBS_SCRIPT, str(flag)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        processes.append(jobs)
        cpu_before = _cpu_by_group(processes[0].pid, jobs.pid)
        soak = Traffic(port, cookies, skus).run(args.minutes * 60, args.clients)
        soak_cpu = _cpu_report(
            cpu_before, _cpu_by_group(processes[0].pid, jobs.pid), args.minutes * 60, soak.stats["requests"]
        )
        flag.unlink()
        # the job running when the soak ends is cut short: its figures are not part of the soak
        with contextlib.suppress(ProcessLookupError):
            os.killpg(jobs.pid, signal.SIGKILL)
        job_output = jobs.communicate(timeout=60)[0]
        with psycopg.connect(f"{PG}/{DB}") as conn:
            stored = conn.execute(
                "SELECT count(*) FROM behavior_event WHERE session_id LIKE 'soak-%%'"
            ).fetchone()[0]
        accepted = sum(phase.stats["accepted"] for phase in (warmup, baseline, soak))
        baseline_p99, soak_p99 = _pct(baseline.recommendations, 0.99), _pct(soak.recommendations, 0.99)
        fivexx = sum(phase.stats["5xx"] for phase in (warmup, baseline, soak))
        print(
            f"idle server, sequential requests: p50/p99 {_pct(single, 0.5):.1f}/{_pct(single, 0.99):.1f} ms"
        )
        print(
            f"baseline ({args.baseline_seconds:g} s, {args.clients} clients, no background jobs): "
            f"{baseline.summary()}"
        )
        print(f"  {baseline_cpu}")
        print(f"soak ({args.minutes:g} min, retrain + rebuild_profiles looping): {soak.summary()}")
        print(f"  {soak_cpu}")
        print(
            f"recommendations p99: soak {soak_p99:.1f} ms vs baseline {baseline_p99:.1f} ms "
            f"({soak_p99 / baseline_p99:.2f}x; vs idle sequential {soak_p99 / _pct(single, 0.99):.2f}x)"
        )
        print(f"events accepted {accepted}, stored {stored}")
        lines = [line for line in job_output.splitlines() if line.strip()]
        print(f"background jobs ({len(lines)} lines):", " | ".join(lines)[:1500])
        ok = fivexx == 0 and stored == accepted and soak_p99 <= 2 * baseline_p99
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            flag.unlink()
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    raise SystemExit(main())
