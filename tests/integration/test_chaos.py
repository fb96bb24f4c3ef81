"""bench/chaos.py for 60 s in CI: beacon-like ingest through gunicorn while a private Redis is
killed for 30 s. Every acknowledged event is stored, none twice, no 500, and every event sent is
stored once after the clients' retries.

The Redis killed is a ``redis-server`` of the benchmark's own on a free port (never the one the
suite's cache and broker use); the database is a throwaway one on the shared Postgres, which
this test never restarts (the full benchmark restarts a private Postgres cluster instead).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.harness import ROOT, stack

pytestmark = pytest.mark.integration


def test_sixty_seconds_of_ingest_with_redis_killed_for_thirty_loses_and_doubles_nothing(tmp_path):
    with stack(tmp_path) as env:
        figures = tmp_path / "chaos.json"
        done = subprocess.run(
            [
                sys.executable,
                "bench/chaos.py",
                "--seconds",
                "60",
                "--clients",
                "3",
                "--workers",
                "2",
                "--redis-down-at",
                "15",
                "--redis-down-for",
                "30",
                "--database-url",
                env.env["DATABASE_URL"],
                "--drain-seconds",
                "60",
                "--json",
                str(figures),
            ],
            cwd=ROOT,
            env={k: v for k, v in env.env.items() if k != "DJANGO_SETTINGS_MODULE"},
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert figures.exists(), done.stdout[-3000:] + done.stderr[-3000:]
        result = json.loads(figures.read_text())

    print(done.stdout)
    assert result["sent"] > 1000
    assert result["acknowledged_not_stored"] == 0
    assert result["stored_twice"] == 0
    assert result["responses_500"] == 0
    assert result["never_stored"] == 0
    assert result["stored"] == result["sent"] == result["acknowledged"]
    # Redis was really down for a while, and events kept being acknowledged meanwhile
    (name, down, up), *_ = result["faults"]
    assert name == "Redis killed" and up - down >= 29
    redis_rate = dict(result["rates"])[f"Redis killed ({down:.0f}-{up:.0f} s)"]
    assert redis_rate > 0
    assert done.returncode == 0
