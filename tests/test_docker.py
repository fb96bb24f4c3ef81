"""The Docker setup: compose file, Dockerfile, and the image's web preparation run directly."""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
SERVICES = ("web", "worker", "beat", "postgres", "redis")


@pytest.fixture
def compose() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((DOCKER / "compose.yml").read_text())


def test_compose_has_every_service_with_a_healthcheck(compose):
    # given / when
    services = compose["services"]

    # then
    assert set(SERVICES) <= set(services)
    missing = [name for name in SERVICES if "healthcheck" not in services[name]]
    assert missing == []


def test_compose_keeps_state_in_named_volumes(compose):
    # given
    services, volumes = compose["services"], compose.get("volumes") or {}

    # when
    mounted = {name: [v.split(":")[0] for v in services[name].get("volumes", [])] for name in SERVICES}

    # then: database, broker and model artefacts survive a container rebuild
    assert {"pgdata", "redisdata", "media"} <= set(volumes)
    assert "pgdata" in mounted["postgres"] and "redisdata" in mounted["redis"]
    assert all("media" in mounted[name] for name in ("web", "worker", "beat"))


def test_compose_app_services_use_the_entrypoint_roles(compose):
    # given
    services = compose["services"]

    # then
    assert [services[name]["command"] for name in ("web", "worker", "beat")] == [
        ["web"],
        ["worker"],
        ["beat"],
    ]
    assert services["web"]["environment"]["DEBUG"] == "0"


def test_dockerfile_is_multi_stage_pinned_and_non_root():
    # given
    text = (DOCKER / "Dockerfile").read_text()

    # when
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, flags=re.MULTILINE | re.IGNORECASE)
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, flags=re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)

    # then
    assert len(stages) >= 2
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-\S+", base.group(1)), "base image pinned to a patch"
    assert "latest" not in base.group(1)
    assert users and users[-1] not in ("root", "0")
    assert "COPY --from=" in text


def _web_preparation_steps() -> list[list[str]]:
    """The manage.py commands the entrypoint's ``web`` role runs before gunicorn."""
    text = (DOCKER / "entrypoint.sh").read_text()
    web = text.split("web)", 1)[1].split(";;", 1)[0]
    steps = [line.strip().split(">", 1)[0].split() for line in web.splitlines() if "manage.py" in line]
    return [step[step.index("manage.py") + 1 :] for step in steps]


def _production_env(tmp_path) -> dict[str, str]:
    """This process's environment as a deployment's: DEBUG off, a real secret, SQLite, eager tasks."""
    # (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process; a deployment never has it)
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "",
        # compose gives every process the Redis cache (with DEBUG off a per-process cache fails
        # the checks: recommendations.E020); none of these steps connects to it
        "CACHE_URL": "redis://127.0.0.1:6379/1",
    }


def test_entrypoint_web_preparation_and_deploy_check_pass(tmp_path):
    # given: production-like environment (DEBUG off, a real secret, HTTPS switches on)
    env = {
        **_production_env(tmp_path),
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_PRELOAD": "1",
        "SESSION_COOKIE_SECURE": "1",
        "CSRF_COOKIE_SECURE": "1",
        # collected files go to the test's folder: in the checkout, WhiteNoise would index them
        # in every later process (a benchmark's test clients paid that per request)
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    steps = _web_preparation_steps()
    assert [step[0] for step in steps] == ["migrate", "install_schedule", "collectstatic"]

    def run(step: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *step],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    # when
    results = [run(step) for step in [*steps, ["check", "--deploy", "--fail-level", "WARNING"]]]

    # then
    failures = [(r.args[2:], r.stdout[-1500:] + r.stderr[-1500:]) for r in results if r.returncode]
    assert failures == []
    assert (tmp_path / "static" / "admin").is_dir()

    # and when staff change a job in the admin and the container restarts
    database = sqlite3.connect(tmp_path / "db.sqlite3")
    with database:
        changed = database.execute(
            "UPDATE django_celery_beat_periodictask SET enabled = 0, queue = 'slow' WHERE task = ?",
            ["recommendations.refresh_recommendations"],
        ).rowcount
    restarted = [run(step) for step in steps]

    # then the restart kept the change
    assert changed == 1
    assert [r.returncode for r in restarted] == [0] * len(steps)
    with database:
        job = database.execute(
            "SELECT enabled, queue FROM django_celery_beat_periodictask WHERE task = ?",
            ["recommendations.refresh_recommendations"],
        ).fetchall()
    database.close()
    assert job == [(0, "slow")]


def _entrypoint(tmp_path, **overrides: str) -> subprocess.CompletedProcess:
    """The entrypoint with role ``true`` (any other command): its checks, then ``true``."""
    env = {
        **_production_env(tmp_path),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        **overrides,
    }
    return subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), "true"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_entrypoint_refuses_to_start_on_a_deploy_check_error_or_a_weak_key(tmp_path):
    # when: a sound configuration, a configuration error (a system check's), a weak key, none
    sound = _entrypoint(tmp_path)
    broken = _entrypoint(tmp_path, RECOMMENDER_EPOCHS="0")
    weak = _entrypoint(tmp_path, SECRET_KEY="x")
    missing = _entrypoint(tmp_path, SECRET_KEY="")

    # then: only the sound one reaches its command
    assert sound.returncode == 0, sound.stderr[-2000:]
    assert broken.returncode != 0 and "recommendations.E006" in broken.stderr
    assert weak.returncode != 0 and "SECRET_KEY is too weak" in weak.stderr
    assert missing.returncode != 0 and "SECRET_KEY must be set" in missing.stderr
