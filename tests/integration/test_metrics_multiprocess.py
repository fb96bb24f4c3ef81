"""/metrics under several gunicorn workers: prometheus-client's multiprocess mode adds them up.

Each request may land on any worker; whichever worker answers a scrape, the counts are the
sum over all of them.
"""

from __future__ import annotations

import http.client
import json
import re

import pytest

from tests.integration.harness import SEED, free_port, stack, wait_for

pytestmark = pytest.mark.integration

EVENTS = 60


def _request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json", "User-Agent": "Mozilla/5.0 (itest)"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def _value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_counts_of_every_worker_are_added_up_at_each_scrape(tmp_path):
    with stack(tmp_path) as env:
        env.script(SEED)
        port = free_port()
        web = env.gunicorn(
            port,
            workers=3,
            env={"METRICS_ENABLED": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")},
        )
        wait_for(lambda: _up(port), timeout=60, what="gunicorn")

        # when: events one connection each (spread over the workers), then several scrapes
        statuses = [
            _request(port, "POST", "/api/events/", {"event_type": "view", "item": f"P{i % 12:02d}"})[0]
            for i in range(EVENTS)
        ]
        scrapes = [_request(port, "GET", "/metrics") for _ in range(6)]
        pids = {int(name.split("_")[-1].split(".")[0]) for name in _files(tmp_path / "prometheus")}

        # then: every scrape counts all accepted events and every request, whichever worker answered
        assert statuses == [202] * EVENTS, env.log(web)[-3000:]
        assert {status for status, _ in scrapes} == {200}
        accepted = [_value(text, 'behavior_events_total{outcome="accepted"}') for _, text in scrapes]
        timed = [
            _value(
                text,
                'recommender_request_seconds_count{endpoint="behavior-api:events",method="POST",source="django"}',
            )
            for _, text in scrapes
        ]
        assert accepted == [EVENTS] * len(scrapes)
        assert timed == [EVENTS] * len(scrapes)
        assert len(pids) >= 2  # more than one worker really counted
        assert _value(scrapes[0][1], "recommender_active_model_version") == 0


def _up(port: int) -> bool:
    try:
        return _request(port, "GET", "/healthz")[0] == 200
    except OSError:
        return False


def _files(folder):
    return [path.name for path in folder.iterdir() if path.suffix == ".db"]
