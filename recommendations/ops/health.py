"""``/readyz``: is this process ready to serve? Database, cache, broker and the active model.

``/healthz`` (the shop's) stays a liveness probe that touches nothing. Readiness runs the
checks of django-health-check (``Database``, ``Cache``) plus two of the recommender's own,
concurrently, each within its timeout, and answers 200 when all pass, else **503** with the
failing parts named (django-health-check's own view answers 500, which a load balancer
reads as a broken application rather than one that is not ready yet)::

    {"status": "unavailable", "checks": {"database": "OK", "cache": "OK",
     "broker": "Unavailable: broker unreachable (OperationalError)", "model": "OK"}}

- ``broker``: a connection to Celery's broker (skipped, "OK (no broker: tasks run
  in-process)", when tasks run eagerly);
- ``model``: the active model version loads (no active version is ready: the fallback
  chain serves popular items until the first training).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any, ClassVar

from django.http import HttpRequest, JsonResponse
from django.utils.cache import add_never_cache_headers
from health_check.base import HealthCheck
from health_check.checks import Cache, Database
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

__all__ = ["ActiveModel", "Broker", "ReadinessView"]


@dataclasses.dataclass
class Broker(HealthCheck):
    """Celery's broker accepts a connection (nothing to check when tasks run in-process)."""

    timeout: ClassVar[datetime.timedelta] = datetime.timedelta(seconds=4)

    def run(self) -> None:
        from recommendations.runtime.enqueue import celery_app

        app = celery_app()
        if app.conf.task_always_eager or not app.conf.broker_url:
            return
        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=3)
        except Exception as exc:  # kombu wraps socket errors in its own types
            raise ServiceUnavailable(f"broker unreachable ({type(exc).__name__})") from exc


@dataclasses.dataclass
class ActiveModel(HealthCheck):
    """The active model version loads in this process (none active: ready, the fallbacks serve)."""

    timeout: ClassVar[datetime.timedelta] = datetime.timedelta(seconds=30)

    def run(self) -> None:
        from django.db import Error as DatabaseError

        from recommendations.models import ModelVersion
        from recommendations.services.registry import get_active_model

        try:
            number = (
                ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
                .values_list("number", flat=True)
                .first()
            )
        except DatabaseError as exc:
            raise ServiceUnavailable(f"not checked: database error ({type(exc).__name__})") from exc
        if number is not None and get_active_model() is None:
            raise ServiceUnavailable(f"active model v{number} does not load")


class ReadinessView(HealthCheckView):
    """The readiness probe: JSON, 200 when every check passes, 503 naming the failing ones."""

    checks: ClassVar[tuple] = (Database, Cache, Broker, ActiveModel)
    names: ClassVar[dict[type, str]] = {
        Database: "database",
        Cache: "cache",
        Broker: "broker",
        ActiveModel: "model",
    }

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        with self.get_executor() as executor:
            results = await asyncio.gather(*(check.get_result(executor) for check in self.get_checks()))
        report = {
            self.names.get(type(result.check), type(result.check).__name__): (
                "OK" if result.error is None else str(result.error)
            )
            for result in results
        }
        failing = any(result.error is not None for result in results)
        response = JsonResponse(
            {"status": "unavailable" if failing else "ok", "checks": report}, status=503 if failing else 200
        )
        add_never_cache_headers(response)
        return response
