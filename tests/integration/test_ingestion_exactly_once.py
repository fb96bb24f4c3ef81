"""Duplicate and concurrent re-delivery through gunicorn while workers die and Postgres restarts:
every event the client got a 2xx for is stored exactly once.

WARNING: restarting Postgres drops every connection on the machine (other test runs too).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
import uuid

import psutil
import pytest

from tests.conftest import normal_cpu_priority
from tests.integration.harness import SEED, free_port, stack, wait_for
from tests.integration.seed import RELAY_TOKEN

pytestmark = pytest.mark.integration

BATCHES, PER_BATCH = 60, 10


def _post(port: int, events: list[dict]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            "/api/events/",
            body=json.dumps({"events": events}),
            # a server-to-server client: it may name each event's visitor (the ids counted below)
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Mozilla/5.0",
                "Authorization": f"Token {RELAY_TOKEN}",
            },
        )
        response = conn.getresponse()
        body = response.read()
        return response.status, (json.loads(body) if response.status < 300 else {})
    finally:
        conn.close()


def _deliver(port: int, events: list[dict], acked: set, lock: threading.Lock, deadline: float) -> None:
    """Send one batch until a 2xx arrives (retrying on errors, like a beacon queue)."""
    while time.monotonic() < deadline:
        try:
            status, body = _post(port, events)
        except OSError:
            status, body = 0, {}
        if 200 <= status < 300:
            rejected = {entry["index"] for entry in body.get("rejected", [])}
            with lock:
                acked.update(e["event_id"] for i, e in enumerate(events) if i not in rejected)
            return
        time.sleep(0.2)


def test_redelivered_batches_are_stored_exactly_once_through_crashes(tmp_path):
    with stack(tmp_path) as env:
        # given: gunicorn with 2 workers and 60 batches of fixed event ids
        env.script(SEED)
        port = free_port()
        master = env.gunicorn(port, workers=2)
        wait_for(lambda: _alive(port), timeout=90, what="gunicorn")
        batches = [
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "view",
                    "item": f"P{(b + i) % 12:02d}",
                    "visitor_id": f"itest-visitor-{b:03d}",
                }
                for i in range(PER_BATCH)
            ]
            for b in range(BATCHES)
        ]
        acked: set[str] = set()
        lock = threading.Lock()
        deadline = time.monotonic() + 150

        def client(order: list[int]) -> None:
            for index in order:
                _deliver(port, batches[index], acked, lock, deadline)

        # when: two clients send every batch (one forwards, one backwards: duplicates, concurrent
        # re-delivery), a gunicorn worker is SIGKILLed, then Postgres restarts
        threads = [
            threading.Thread(target=client, args=(order,))
            for order in (list(range(BATCHES)), list(reversed(range(BATCHES))))
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        killed = psutil.Process(master.pid).children()[0].pid
        os.kill(killed, signal.SIGKILL)
        time.sleep(1.5)
        restart = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"],
            preexec_fn=normal_cpu_priority,  # the server outlives this test: never at our priority
            capture_output=True,
            text=True,
            timeout=120,
        )
        for thread in threads:
            thread.join(timeout=200)
        # and every batch once more after the storm (a client that never saw its answers)
        for events in batches:
            _deliver(port, events, acked, lock, time.monotonic() + 30)

        # then
        assert restart.returncode == 0, restart.stderr
        rows = env.query(
            "SELECT event_id::text, count(*) FROM behavior_event "
            "WHERE visitor_id LIKE 'itest-visitor-%%' GROUP BY event_id"
        )
        stored = {event_id: count for event_id, count in rows}
        assert all(count == 1 for count in stored.values())
        assert acked <= set(stored)
        assert len(acked) == BATCHES * PER_BATCH
        assert set(stored) == acked
        print(f"\n{len(acked)} events acknowledged, {len(stored)} stored once each; killed worker {killed}")


def _alive(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/api/items/popular/")
        return conn.getresponse().status == 200
    except OSError:
        return False
