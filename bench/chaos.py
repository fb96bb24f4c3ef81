"""Chaos benchmark: beacon-like ingest through gunicorn while Redis is killed and Postgres restarted.

    nice -n 5 .venv/bin/python bench/chaos.py [--seconds 300] [--clients 6]

Everything it disturbs is its own: a private ``redis-server`` on a free port (the cache, the
throttles, the sessions) and, unless ``--database-url`` names an existing database, a private
Postgres cluster (``initdb`` in a temporary folder, a free port) that it restarts. It never
touches the machine's shared Redis or Postgres. Every process it starts is stopped at the end.

Clients behave like ``behavior/static/behavior/beacon.js``: each sends batches of 25 view
events with its own event ids and ``occurred_at`` times, keeps its visitor cookie, and
resends a batch unchanged after a 503/429 (after ``Retry-After``, at most 2 s), a 500, or a
connection error, until it is acknowledged (2xx). Timeline (default 300 s of sending): no
fault until ``--redis-down-at`` (60 s), Redis killed (SIGKILL) for ``--redis-down-for``
(30 s) and started again empty, Postgres restarted (``pg_ctl restart -m fast``) at
``--postgres-restart-at`` (150 s); then the clients stop making new batches and get every
pending one acknowledged (up to 120 s more).

Counted from the clients' records and the database afterwards: events sent, acknowledged,
stored; acknowledged and not stored (target 0); stored twice (0); responses of 500 (0);
sent and never stored after the retries (0); the acknowledged-event rate in each phase,
next to the no-fault rate of the same run. ``--json`` writes the figures; the printed heading
and table replace the chaos section of bench/RESULTS.md. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.seed import SEED  # noqa: E402  (the same small shop: products P00..P11)

BATCH = 25
UA = "Mozilla/5.0 (chaos bench)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


# --- private services ------------------------------------------------------------------------
class PrivateRedis:
    """A ``redis-server`` of our own: no persistence, so a restart comes back empty (worst case)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), 20, "redis-server")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


class PrivatePostgres:
    """A Postgres cluster of our own in a temporary folder (``initdb``, ``pg_ctl``), trust auth."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.data = folder / "pgdata"
        self.socket_dir = folder / "pgsock"
        # initdb refuses to run as root: the cluster then belongs to the postgres account
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "postgres.log"), *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        subprocess.run(
            [*self.as_user, "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._ctl("-o", options, "-w", "start")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/chaos"
        import psycopg

        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE chaos")

    def restart(self) -> None:
        self._ctl("-m", "fast", "-w", "restart")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("-m", "immediate", "-w", "stop")


# --- clients -----------------------------------------------------------------------------------
@dataclass
class Tally:
    """What the clients saw (shared, under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    ack_times: list[tuple[float, int]] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    unacked: int = 0

    def status(self, code: int) -> None:
        with self.lock:
            self.statuses[code] = self.statuses.get(code, 0) + 1


class Beacon(threading.Thread):
    """One browser's beacon: batches of 25, resent unchanged until acknowledged."""

    def __init__(
        self, port: int, tally: Tally, start: float, stop_new: float, give_up: float, seed: int
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.tally, self.start_at = port, tally, start
        self.stop_new, self.give_up = stop_new, give_up
        self.rng = random.Random(seed)
        self.cookies: dict[str, str] = {}

    def run(self) -> None:
        while time.monotonic() < self.stop_new:
            now = datetime.now(UTC).isoformat()
            batch = [
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "view",
                    "item": f"P{self.rng.randrange(12):02d}",
                    "occurred_at": now,
                }
                for _ in range(BATCH)
            ]
            with self.tally.lock:
                self.tally.sent.update(event["event_id"] for event in batch)
            if not self.deliver(batch):
                with self.tally.lock:
                    self.tally.unacked += len(batch)

    def deliver(self, batch: list[dict]) -> bool:
        body = json.dumps({"events": batch})
        delay = 0.25
        while time.monotonic() < self.give_up:
            try:
                status, headers, payload = self.post(body)
            except (OSError, http.client.HTTPException):
                with self.tally.lock:
                    self.tally.errors += 1
                time.sleep(delay)
                delay = min(2.0, delay * 2)
                continue
            self.tally.status(status)
            if status in (202, 400):
                rejected = {batch[entry["index"]]["event_id"] for entry in payload.get("rejected", [])}
                ids = [event["event_id"] for event in batch if event["event_id"] not in rejected]
                with self.tally.lock:
                    self.tally.acked.update(ids)
                    self.tally.rejected.update(rejected)
                    self.tally.ack_times.append((time.monotonic() - self.start_at, len(ids)))
                return True
            wait = delay
            with contextlib.suppress(TypeError, ValueError):
                wait = float(headers.get("retry-after"))
            time.sleep(min(2.0, max(0.1, wait)))
            delay = min(2.0, delay * 2)
        return False

    def post(self, body: str) -> tuple[int, dict, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            headers = {"Content-Type": "application/json", "User-Agent": UA}
            if self.cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request("POST", "/api/events/", body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            for value in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(value).items():
                    if morsel.value:
                        self.cookies[name] = morsel.value
                    else:
                        self.cookies.pop(name, None)
            payload = {}
            if response.headers.get("Content-Type", "").startswith("application/json"):
                with contextlib.suppress(ValueError):
                    payload = json.loads(raw)
            return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
        finally:
            conn.close()


# --- the run ----------------------------------------------------------------------------------------
def manage(env: dict, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def stored_counts(database_url: str, ids: set[str]) -> dict[str, int]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT event_id::text, count(*) FROM behavior_event GROUP BY event_id"
        ).fetchall()
    return {event_id: count for event_id, count in rows if event_id in ids}


def rate(tally: Tally, start: float, end: float) -> float:
    if end <= start:
        return 0.0
    return sum(n for at, n in tally.ack_times if start <= at < end) / (end - start)


def run(args: argparse.Namespace) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="chaos-"))
    redis = PrivateRedis(folder)
    postgres = None if args.database_url else PrivatePostgres(folder)
    web = None
    try:
        redis.start()
        if postgres is not None:
            postgres.start()
        database_url = args.database_url or postgres.url
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "DEBUG": "0",
            "SECRET_KEY": "chaos-" + secrets.token_urlsafe(48),
            "DATABASE_URL": database_url,
            "DATABASE_CONNECT_TIMEOUT": "2",
            "CACHE_URL": f"redis://127.0.0.1:{redis.port}/0",
            "CELERY_BROKER_URL": "",
            "THROTTLE_EVENTS": "10000000/min",
            "LOG_LEVEL": "WARNING",
        }
        manage(env, "migrate", "--noinput")
        manage(env, "shell", "-c", SEED)
        port = free_port()
        log = (folder / "gunicorn.log").open("w")
        web = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "shop.wsgi:application",
                "--config",
                "python:shop.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--timeout",
                "30",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: port_open(port), 60, "gunicorn")
        time.sleep(2)

        tally = Tally()
        start = time.monotonic()
        stop_new = start + args.seconds
        give_up = stop_new + args.drain_seconds
        clients = [Beacon(port, tally, start, stop_new, give_up, seed) for seed in range(args.clients)]
        for client in clients:
            client.start()
        faults: list[tuple[str, float, float]] = []

        def at(offset: float) -> None:
            time.sleep(max(0.0, start + offset - time.monotonic()))

        at(args.redis_down_at)
        redis.kill()
        down = time.monotonic() - start
        at(args.redis_down_at + args.redis_down_for)
        redis.start()
        faults.append(("Redis killed", down, time.monotonic() - start))
        if postgres is not None and args.postgres_restart_at is not None:
            at(args.postgres_restart_at)
            began = time.monotonic() - start
            postgres.restart()
            faults.append(("Postgres restarted", began, time.monotonic() - start))
        for client in clients:
            client.join(timeout=max(1.0, give_up - time.monotonic() + 5))

        counts = stored_counts(database_url, tally.sent)
        stored = set(counts)
        baseline_end = min(args.redis_down_at, args.seconds)
        phases = [("no fault (before the first fault)", 5.0, baseline_end)]
        for name, began, ended in faults:
            phases.append((f"{name} ({began:.0f}-{ended:.0f} s)", began, max(ended, began + 10)))
        last = max((ended for _, _, ended in faults), default=baseline_end)
        phases.append(("after the faults", last + 10, args.seconds))
        return {
            "seconds": args.seconds,
            "clients": args.clients,
            "workers": args.workers,
            "sent": len(tally.sent),
            "acknowledged": len(tally.acked),
            "stored": len(stored),
            "acknowledged_not_stored": len(tally.acked - stored),
            "stored_twice": sum(1 for count in counts.values() if count > 1),
            "rejected": len(tally.rejected),
            "never_stored": len(tally.sent - stored),
            "responses_500": sum(n for code, n in tally.statuses.items() if code >= 500 and code != 503),
            "statuses": {str(code): n for code, n in sorted(tally.statuses.items())},
            "connection_errors": tally.errors,
            "unacknowledged_at_the_end": tally.unacked,
            "rates": [(name, round(rate(tally, a, b), 1)) for name, a, b in phases],
            "faults": faults,
        }
    finally:
        if web is not None and web.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(web.pid, signal.SIGTERM)
            with contextlib.suppress(Exception):
                web.wait(timeout=20)
        redis.kill()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


def table(result: dict) -> str:
    rows = [
        ("events sent", result["sent"], "–"),
        ("acknowledged (2xx)", result["acknowledged"], "–"),
        ("stored", result["stored"], "= sent"),
        ("acknowledged and not stored", result["acknowledged_not_stored"], "0"),
        ("stored twice", result["stored_twice"], "0"),
        ("responses of 500", result["responses_500"], "0"),
        ("sent and never stored after the retries", result["never_stored"], "0"),
        ("rejected (400 per event)", result["rejected"], "0"),
        ("connection errors (retried)", result["connection_errors"], "–"),
        ("answers by status", ", ".join(f"{k}: {v}" for k, v in result["statuses"].items()), "–"),
    ]
    rows += [(f"acknowledged events/s, {name}", value, "–") for name, value in result["rates"]]
    lines = ["| figure | value | target |", "| --- | --- | --- |"]
    lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)


def missed(result: dict) -> list[str]:
    checks = {
        "acknowledged_not_stored": result["acknowledged_not_stored"],
        "stored_twice": result["stored_twice"],
        "responses_500": result["responses_500"],
        "never_stored": result["never_stored"],
    }
    return [name for name, value in checks.items() if value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--redis-down-at", type=float, default=60)
    parser.add_argument("--redis-down-for", type=float, default=30)
    parser.add_argument("--postgres-restart-at", type=float, default=150)
    parser.add_argument("--drain-seconds", type=float, default=120)
    parser.add_argument("--database-url", help="an existing database (no private Postgres, no restart)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result = run(args)
    # the heading and table for bench/RESULTS.md (which keeps the current run only)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    faults = "; ".join(f"{name} at {a:.0f}-{b:.0f} s" for name, a, b in result["faults"])
    print(
        f"{when}: {result['seconds']:.0f} s, {result['clients']} clients, {result['workers']} gunicorn"
        f" workers ({platform.machine()}, {os.cpu_count()} CPUs). Faults: {faults}.\n\n{table(result)}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))

    failures = missed(result)
    if failures:
        print("MISSED:", ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
