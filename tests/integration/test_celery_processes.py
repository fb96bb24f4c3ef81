"""Real Celery worker and beat processes against a throwaway Postgres database and Redis."""

from __future__ import annotations

import itertools
import json
import signal
import time

import pytest

from tests.integration.harness import SEED, stack, wait_for

pytestmark = pytest.mark.integration

INTERVAL = 8  # seconds between scheduled retrains
RUNS = "recommendations_trainingrun"

SCHEDULE = f"""
from django_celery_beat.models import IntervalSchedule, PeriodicTask
every = IntervalSchedule.objects.create(every={INTERVAL}, period=IntervalSchedule.SECONDS)
PeriodicTask.objects.create(name="itest retrain", task="recommendations.retrain_model", interval=every,
                            kwargs='{{"triggered_by": "schedule"}}', queue="training")
print("scheduled")
"""


def _received(env, worker) -> int:
    return env.log(worker).count("] received")


def _status_counts(env) -> dict[str, int]:
    return dict(env.query(f"SELECT status, count(*) FROM {RUNS} GROUP BY status"))


def test_scheduled_retrain_runs_once_per_period_with_two_racing_beats(tmp_path):
    with stack(tmp_path) as env:
        # given: a small shop, a retrain every INTERVAL s, one worker and TWO beats
        env.script(SEED)
        env.script(SCHEDULE)
        worker = env.worker(env={"INTEGRATION_EPOCHS": "30"})
        beats = [env.beat("beat1"), env.beat("beat2")]

        # when: we watch for two periods after the first run started
        wait_for(lambda: env.scalar(f"SELECT count(*) FROM {RUNS}"), timeout=120, what="the first run")
        most_running, deadline = 0, time.monotonic() + 3 * INTERVAL
        while time.monotonic() < deadline:
            most_running = max(
                most_running, env.scalar(f"SELECT count(*) FROM {RUNS} WHERE status='running'")
            )
            time.sleep(0.1)
        for beat in beats:
            env.kill(beat, signal.SIGTERM)
        wait_for(
            lambda: (
                env.scalar(f"SELECT count(*) FROM {RUNS} WHERE status='running'") == 0
                and _received(env, worker) == env.scalar(f"SELECT count(*) FROM {RUNS}")
            ),
            timeout=120,
            interval=0.5,
            what="the worker to drain",
        )

        # then: every delivery made exactly one run row, never two trainings at once,
        # at most one training per period, and each successful run registered a version
        sent = sum(env.log(beat).count("Sending due task itest retrain") for beat in beats)
        counts = _status_counts(env)
        assert most_running == 1
        assert sum(counts.values()) == sent == _received(env, worker)
        assert set(counts) <= {"succeeded", "skipped"}, counts
        assert counts.get("succeeded", 0) >= 1
        starts = [
            row[0]
            for row in env.query(
                f"SELECT extract(epoch FROM started_at) FROM {RUNS} "
                "WHERE status='succeeded' ORDER BY started_at"
            )
        ]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(gap >= INTERVAL * 0.5 for gap in gaps), gaps
        assert env.scalar("SELECT count(*) FROM recommendations_modelversion") == counts["succeeded"]
        print(f"\nbeats sent {sent} tasks; runs by status {counts}; gaps between trainings {gaps}")


ENQUEUE = """
from recommendations.tasks import retrain_model
retrain_model.apply_async(kwargs={"triggered_by": "itest"}, queue="training")
print("queued")
"""

ACTIVE_AND_API = """
import json
from django.test import Client
from recommendations.services.registry import get_active_model
loaded = get_active_model()
from django.contrib.auth import get_user_model
client = Client()
client.force_login(get_user_model().objects.get(username="shopper0"))  # a shopper with history
response = client.get("/api/recommendations/?limit=3", HTTP_USER_AGENT="Mozilla/5.0")
print(json.dumps({"active": loaded.version_number if loaded else None, "status": response.status_code,
                  "model_version": response.json().get("model_version"), "n": len(response.json()["items"])}))
"""


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_worker_killed_during_training_keeps_serving_and_recovers(tmp_path):
    with stack(tmp_path) as env:
        # given: an active v1, then a slow training on a worker
        env.script(SEED)
        env.manage("retrain", timeout=300)
        env.script(
            "from recommendations.models import ModelVersion; from recommendations.services.registry import "
            "activate_version; v = ModelVersion.objects.get(number=1); "
            "v.status == 'active' or activate_version(v, by='itest')"
        )
        slow = {"INTEGRATION_EPOCHS": "100000", "INTEGRATION_STALE_SECONDS": "4"}
        worker = env.worker("slow-worker", env=slow, concurrency=1)
        # A fresh Redis has no binding for the "training" queue until a worker declares it:
        # messages published before that are dropped by kombu, so wait for the worker.
        wait_for(lambda: " ready." in env.log(worker), timeout=180, what="the worker")
        env.script(ENQUEUE)
        wait_for(
            lambda: env.scalar(f"SELECT count(*) FROM {RUNS} WHERE status='running'"),
            timeout=120,
            what="the slow training to start",
        )
        time.sleep(2)  # well inside the fit

        # when: the worker (and its pool child) die with SIGKILL
        env.kill(worker)
        served = _last_json(env.script(ACTIVE_AND_API, env=slow))
        time.sleep(5)  # the dead run's heartbeat goes stale
        fresh = env.worker("fresh-worker", env={"INTEGRATION_STALE_SECONDS": "4"}, concurrency=1)
        wait_for(lambda: " ready." in env.log(fresh), timeout=180, what="the fresh worker")
        env.script(ENQUEUE)
        wait_for(
            lambda: env.scalar(f"SELECT count(*) FROM {RUNS} WHERE status='succeeded'") >= 2,
            timeout=180,
            interval=0.5,
            what="the next run to succeed",
        )

        # then: v1 kept serving, the killed run is abandoned, the next run made v2
        assert served == {"active": 1, "status": 200, "model_version": 1, "n": 3}
        runs = env.query(f"SELECT status, error FROM {RUNS} ORDER BY id")
        assert [status for status, _ in runs] == ["succeeded", "abandoned", "succeeded"]
        assert "no heartbeat" in runs[1][1]
        assert env.scalar("SELECT max(number) FROM recommendations_modelversion") == 2
