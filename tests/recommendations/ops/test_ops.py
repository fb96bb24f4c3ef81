"""Operations tell the truth: readiness, metrics, alerts, locked refreshes, request and task ids."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from behavior.models import Event
from recommendations.models import Impression, ModelVersion, TrainingRun
from recommendations.ops import alerts
from recommendations.ops.logging import RequestAndTaskIds
from recommendations.runtime.locks import run_lock
from recommendations.services.serving import jobs
from shop.celery import app

ROOT = Path(__file__).resolve().parents[3]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- readiness --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_readiness_is_ready_when_everything_answers_and_liveness_touches_nothing(client):
    # when
    ready = client.get("/readyz")
    alive = client.get("/healthz")
    # then
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "OK", "cache": "OK", "broker": "OK", "model": "OK"},
    }
    assert "no-cache" in ready["Cache-Control"]
    assert alive.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_readiness_names_an_unreachable_cache_and_broker(client, settings, monkeypatch):
    # given: the cache and the broker on closed ports, tasks no longer run in-process
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    # (Celery reads the broker URL from the environment before its own settings)
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    # when
    response = client.get("/readyz")
    # then
    body = response.json()
    assert response.status_code == 503, body
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "OK"
    assert body["checks"]["model"] == "OK"
    assert body["checks"]["cache"].startswith("Unexpected Result")
    assert body["checks"]["broker"].startswith("Unavailable: broker unreachable")


@pytest.mark.django_db(transaction=True)  # the checks run in threads: committed rows only
def test_readiness_names_an_active_model_that_does_not_load(client):
    # given: an active version whose artefact is missing
    ModelVersion.objects.create(
        number=7, artifact_path="recommender/models/missing", sha256="0" * 64, status="active"
    )
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 503
    assert response.json()["checks"]["model"] == "Unavailable: active model v7 does not load"


def test_readiness_names_an_unreachable_database(tmp_path):
    # given: a process whose database is a closed port
    script = (
        "import django; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz'); print(r.status_code, r.content.decode())"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{_closed_port()}/none",
        "DATABASE_CONNECT_TIMEOUT": "2",
        "CELERY_BROKER_URL": "",
        "CACHE_URL": "",
    }
    # when
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    # then
    status, _, body = done.stdout.strip().splitlines()[-1].partition(" ")
    checks = json.loads(body)["checks"]
    assert status == "503", done.stderr[-2000:]
    assert checks["database"].startswith("Unavailable")
    assert checks["cache"] == checks["broker"] == "OK"
    assert checks["model"].startswith("Unavailable: not checked: database error")


# --- metrics ------------------------------------------------------------------------------------
def _scrape(client: Client, **headers: str) -> dict[str, float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    values = {}
    for line in response.content.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


@pytest.fixture
def metrics_on(settings):
    settings.RECOMMENDER = {**settings.RECOMMENDER, "METRICS_ENABLED": True}


@pytest.mark.django_db
def test_metrics_count_events_by_outcome_and_time_requests(metrics_on, product, product_factory):
    # given
    client = Client(HTTP_USER_AGENT=BROWSER)
    before = _scrape(client)
    first = {"event_type": "view", "item": product.sku, "event_id": str(uuid.uuid4())}
    batch = [first, {"event_type": "view", "item": product.sku}, {"event_type": "view", "item": "NOPE"}]
    # when: two new events and a bad one, then the first again (a retry)
    client.post("/api/events/", {"events": batch}, content_type="application/json")
    client.post("/api/events/", first, content_type="application/json")
    after = _scrape(client)

    # then
    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert grew('behavior_events_total{outcome="accepted"}') == 2
    assert grew('behavior_events_total{outcome="rejected"}') == 1
    assert grew('behavior_events_total{outcome="retried"}') == 1
    assert (
        grew(
            'recommender_request_seconds_count{endpoint="behavior-api:events",method="POST",source="django"}'
        )
        == 2
    )
    assert after["recommender_active_model_version"] == 0


@pytest.mark.django_db
def test_metrics_read_model_jobs_and_queues_from_the_database(metrics_on, client):
    # given: an active version and a succeeded training
    finished = timezone.now() - timedelta(hours=3)
    TrainingRun.objects.create(status="succeeded", finished_at=finished)
    ModelVersion.objects.create(number=4, artifact_path="x", sha256="0", status="active")
    # when
    values = _scrape(client)
    # then
    assert values["recommender_active_model_version"] == 4
    assert values['recommender_last_success_timestamp_seconds{job="training"}'] == pytest.approx(
        finished.timestamp()
    )
    assert 'recommender_last_success_timestamp_seconds{job="refresh_lists"}' not in values
    assert values['recommender_queue_depth{queue="impressions"}'] >= 0


@pytest.mark.django_db
def test_metrics_are_off_by_default_and_a_token_guards_them(client, settings):
    assert client.get("/metrics").status_code == 404
    settings.RECOMMENDER = {**settings.RECOMMENDER, "METRICS_ENABLED": True, "METRICS_TOKEN": "s3cret"}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


# --- alerts ---------------------------------------------------------------------------------------
@pytest.fixture
def admins(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    received: list[dict] = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    alerts.alert_raised.connect(receiver)
    yield received
    alerts.alert_raised.disconnect(receiver)


@pytest.mark.django_db
def test_a_failed_training_mails_the_admins_and_sends_the_signal_once(admins):
    # given: a running training
    run = TrainingRun.objects.create(status="running", triggered_by="schedule")
    assert mail.outbox == []
    # when: it fails, and is saved again
    run.status, run.error = "failed", "Traceback ...\nValueError: boom"
    run.save()
    run.save()
    # then: one mail, one signal, naming the run and the error
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert f"training run {run.pk} failed" in mail.outbox[0].subject
    assert "ValueError: boom" in mail.outbox[0].body
    assert [(a["kind"], a["details"]["run"]) for a in admins] == [("training_failed", run.pk)]


@pytest.mark.django_db
def test_no_promotion_for_days_raises_an_alert(admins, settings):
    # given: the last promotion 8 days ago, 7 days allowed
    settings.RECOMMENDER = {**settings.RECOMMENDER, "ALERT_NO_PROMOTION_DAYS": 7}
    version = ModelVersion.objects.create(
        number=1,
        artifact_path="x",
        sha256="0",
        status="active",
        promoted_at=timezone.now() - timedelta(days=8),
    )
    # when
    raised = alerts.check_no_promotion()
    version.promoted_at = timezone.now() - timedelta(days=2)
    version.save()
    mail.outbox.clear()
    # then
    assert raised is True
    assert admins[0]["kind"] == "no_promotion" and admins[0]["details"]["days"] == 8
    assert alerts.check_no_promotion() is False
    assert mail.outbox == []


def _traffic(placement: str, *, hours_ago: float, shown: int, clicks: int, item) -> None:
    moment = timezone.now() - timedelta(hours=hours_ago)
    rows = [Impression(placement=placement, item_keys=["A"], created_at=moment) for _ in range(shown)]
    Impression.objects.bulk_create(rows)
    Event.objects.bulk_create(
        [
            Event(
                event_type="click",
                item=item,
                visitor_id="v-alerts",
                occurred_at=moment,
                placement=placement,
                recommendation_id=row.recommendation_id,
            )
            for row in rows[:clicks]
        ]
    )


@pytest.mark.django_db
def test_a_sharp_click_through_drop_raises_an_alert_for_that_placement_only(admins, settings, product):
    # given: "home" fell from 10 % to 2 %, "cart" held at 10 %
    settings.RECOMMENDER = {**settings.RECOMMENDER, "ALERT_CTR_MIN_IMPRESSIONS": 50, "ALERT_CTR_DROP": 0.5}
    _traffic("home", hours_ago=72, shown=200, clicks=20, item=product)
    _traffic("home", hours_ago=2, shown=100, clicks=2, item=product)
    _traffic("cart", hours_ago=72, shown=200, clicks=20, item=product)
    _traffic("cart", hours_ago=2, shown=100, clicks=10, item=product)
    _traffic("tiny", hours_ago=2, shown=10, clicks=0, item=product)  # too few to judge
    # when
    raised = alerts.check_alerts()
    again = alerts.check_ctr_drops()
    # then
    assert raised["ctr_drop"] == ["home"]
    assert again == []  # not repeated within ALERT_REPEAT_HOURS
    assert admins[0]["details"]["placement"] == "home"
    assert admins[0]["details"]["recent_ctr"] == pytest.approx(0.02)
    assert admins[0]["details"]["baseline_ctr"] == pytest.approx(0.10)
    assert "click-through of 'home' fell from 10.0% to 2.0%" in mail.outbox[0].subject


# --- refreshes hold a lock ----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("lock", "job"), [(jobs.LISTS_LOCK, "refresh_lists"), (jobs.RELATIONS_LOCK, "refresh_relations")]
)
def test_a_refresh_is_skipped_while_another_process_holds_its_lock(lock, job):
    from recommendations import tasks

    task = {
        "refresh_lists": tasks.refresh_recommendations,
        "refresh_relations": tasks.refresh_item_relations,
    }[job]
    # given: another process holds the lock / when: the task and the command run
    with run_lock(lock, lease_seconds=60) as held:
        assert held is not None
        skipped = task.apply().get()
        with pytest.raises(CommandError, match="Another process is refreshing"):
            call_command(
                "refresh_recommendations", **({"lists_only": True} if job == "refresh_lists" else {})
            )
    # then: after the release it runs
    assert skipped is None
    assert task.apply().get() is not None


# --- request and task ids in the logs -------------------------------------------------------------------
@pytest.mark.django_db
def test_log_lines_carry_the_request_id_and_the_task_id(client):
    from django_guid import set_guid

    log_filter = RequestAndTaskIds()

    def record() -> logging.LogRecord:
        entry = logging.LogRecord("t", logging.INFO, __file__, 1, "m", (), None)
        log_filter.filter(entry)
        return entry

    @app.task(name="tests.ops.ids")
    def ids() -> tuple[str, str]:
        entry = record()
        return entry.request_id, entry.task_id

    # outside any request or task
    set_guid(None)
    assert (record().request_id, record().task_id) == ("-", "-")
    # in a request: django-guid's id (a valid incoming Correlation-ID is kept)
    incoming = uuid.uuid4().hex
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.addFilter(log_filter)
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger("django.request").addHandler(handler)
    try:
        client.get("/no-such-page/", HTTP_CORRELATION_ID=incoming)  # Django logs the 404
    finally:
        logging.getLogger("django.request").removeHandler(handler)
    assert [entry.request_id for entry in seen] == [incoming]
    # in a task: its own id
    result = ids.apply(task_id="task-1234")
    assert result.get()[1] == "task-1234"
