"""Real processes for the integration tests: a throwaway Postgres database, Django scripts,
Celery workers and beats, gunicorn; every process is killed and the database dropped at the end.

Nothing here talks to the database through the test process's Django connection: the test
creates ``itest_<random>``, migrates it with ``manage.py migrate`` in a subprocess, and reads
it back with plain psycopg.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.integration.seed import SEED  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BIN = Path(PYTHON).parent
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis databases reserved for the integration tests (broker, cache).
BROKER_DB, CACHE_DB = 6, 7


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def require_postgres_and_redis() -> None:
    require_service("Postgres", reachable("127.0.0.1", 5432))
    require_service("Redis", reachable(REDIS_HOST, REDIS_PORT))


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """One throwaway environment: database, env vars, processes."""

    def __init__(self, tmp_path: Path, *, broker_db: int = BROKER_DB) -> None:
        import psycopg

        self.psycopg = psycopg
        self.name = f"itest_{uuid.uuid4().hex[:10]}"
        self.tmp = tmp_path
        self.processes: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.integration.settings_integration",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.name}",
            "CELERY_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{broker_db}",
            "CACHE_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{CACHE_DB}",
            "CACHE_KEY_PREFIX": self.name,
            "MEDIA_ROOT": str(tmp_path / "media"),
            "CONN_MAX_AGE": "0",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
        self.env.pop("CI_KEEP", None)

    # --- database -------------------------------------------------------------------------
    def create(self) -> None:
        with self.psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.manage("migrate", "--noinput", timeout=240)

    def drop(self) -> None:
        with contextlib.suppress(Exception), self.psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement on the test database (fresh connection: survives restarts)."""
        url = self.env["DATABASE_URL"]
        with self.psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def scalar(self, sql: str, params: tuple = ()) -> Any:
        return self.query(sql, params)[0][0]

    # --- processes --------------------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 300, env: dict | None = None) -> str:
        done = subprocess.run(
            ["nice", "-n", "15", PYTHON, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            pytest.fail(f"manage.py {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def script(self, code: str, *, timeout: float = 300, env: dict | None = None) -> str:
        """Run Python with Django set up (``manage.py shell -c``); return its stdout."""
        return self.manage("shell", "-c", code, timeout=timeout, env=env)

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("w")
        process = subprocess.Popen(
            ["nice", "-n", "15", *argv],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log_path = self.tmp / f"{name}.log"  # type: ignore[attr-defined]
        self.processes.append(process)
        return process

    def worker(self, name: str = "worker", env: dict | None = None, concurrency: int = 2) -> subprocess.Popen:
        return self.spawn(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "shop",
                "worker",
                "-Q",
                "celery,training",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(concurrency),
                "--prefetch-multiplier",
                "1",
                "-n",
                f"{name}-{self.name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env,
        )

    def beat(self, name: str = "beat") -> subprocess.Popen:
        return self.spawn(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "shop",
                "beat",
                "--loglevel",
                "INFO",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
                "--pidfile",
                str(self.tmp / f"{name}.pid"),
                "--max-interval",
                "1",
            ],
        )

    def gunicorn(
        self, port: int, workers: int = 2, name: str = "web", env: dict | None = None
    ) -> subprocess.Popen:
        # the Docker image's gunicorn settings (prometheus-client's multiprocess folder)
        return self.spawn(
            name,
            [
                str(BIN / "gunicorn"),
                "shop.wsgi:application",
                "--config",
                "python:shop.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                "30",
                "--graceful-timeout",
                "5",
            ],
            env,
        )

    @staticmethod
    def kill(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal the process's whole group (the worker's pool children too) and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(Exception):
            process.wait(timeout=15)

    def log(self, process: subprocess.Popen) -> str:
        return Path(process.log_path).read_text(errors="replace")  # type: ignore[attr-defined]

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                self.kill(process, signal.SIGTERM)
            if process.poll() is None:
                self.kill(process)
        self.drop()
        self.flush_redis()

    def flush_redis(self) -> None:
        import redis

        with contextlib.suppress(Exception):
            redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB).flushdb()
            client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=CACHE_DB)
            for key in client.scan_iter(match=f"{self.name}*"):
                client.delete(key)


@contextlib.contextmanager
def stack(tmp_path: Path, **kwargs: Any) -> Iterator[Stack]:
    require_postgres_and_redis()
    env = Stack(tmp_path, **kwargs)
    try:
        env.create()
        yield env
    finally:
        env.close()
