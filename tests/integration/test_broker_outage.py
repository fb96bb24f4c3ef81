"""A broker outage never blocks a web request: enqueueing returns quickly with a message."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.integration.harness import ROOT

pytestmark = pytest.mark.integration

SCRIPT = """
import json, time
import django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
from django.db import connection
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from recommendations.models import ModelVersion
from recommendations.tasks import retrain_model
from recommendations.runtime.enqueue import enqueue
staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-secret-123")
version = ModelVersion.objects.create(number=1, artifact_path="none", sha256="0")
started = time.monotonic()
queued = enqueue(retrain_model, options={"queue": "training"}, triggered_by="itest")
enqueue_seconds = time.monotonic() - started
client = Client(raise_request_exception=False)
client.force_login(staff)
started = time.monotonic()
form = {"action": "retrain", "_selected_action": [version.pk]}
response = client.post("/admin/recommendations/modelversion/", form, follow=True)
print(json.dumps({"queued": queued, "enqueue_seconds": enqueue_seconds,
                  "admin_status": response.status_code, "admin_seconds": time.monotonic() - started,
                  "page": response.content.decode(errors="replace")[-20000:]}))
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the with-block ends


def test_enqueue_and_admin_retrain_return_quickly_when_the_broker_is_down(tmp_path):
    # given: a broker URL pointing at a closed port
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{_closed_port()}/0",
        "CACHE_URL": "",
    }

    # when
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )

    # then: the helper reports False fast; the admin action answers (no 500, no hang)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["queued"] is False
    assert result["enqueue_seconds"] < 15
    assert result["admin_seconds"] < 15
    assert result["admin_status"] == 200, result["page"][-2000:]
    # and says the truth: the training was not queued
    assert "The training could not be queued: the task broker is unreachable." in result["page"]
    assert "A training was queued" not in result["page"]
    print({k: v for k, v in result.items() if k != "page"})
