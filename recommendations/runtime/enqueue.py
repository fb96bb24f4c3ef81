"""Enqueue a Celery task from a web request without ever failing the request.

A broker outage must not turn an admin click or an API call into a 500 or a hang:
publishing is bounded by the project's ``CELERY_BROKER_CONNECTION_TIMEOUT`` and
``CELERY_TASK_PUBLISH_RETRY_POLICY``, and any broker error is logged and reported as
``False`` so the caller can show a message.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.exceptions import KombuError, OperationalError

logger = logging.getLogger(__name__)

__all__ = ["enqueue"]

# What a publish raises when the broker is down or unreachable.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    KombuError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def enqueue(task: Any, *args: Any, **kwargs: Any) -> bool:
    """``task.apply_async(args, kwargs)``; False (logged) when the broker cannot take it.

    ``options`` (a dict, keyword only) is passed to ``apply_async`` (e.g. ``{"queue": "training"}``).
    """
    options = kwargs.pop("options", None) or {}
    try:
        task.apply_async(args=args, kwargs=kwargs, **options)
    except BROKER_ERRORS:
        logger.exception("could not enqueue %s: the broker is unavailable", getattr(task, "name", task))
        return False
    return True


_project_app: Any = None


def remember_celery_app() -> None:
    """Keep the Celery app current while Django is set up (``RecommendationsConfig.ready``).

    Celery's ``current_app`` is per thread: a thread other than the one that created the
    project's app (the readiness checks' executor, an async view's loop) gets Celery's
    unconfigured fallback app instead, which knows no broker.
    """
    global _project_app
    from celery import current_app

    _project_app = current_app._get_current_object()


def celery_app() -> Any:
    """The project's Celery app, whichever thread asks."""
    if _project_app is not None:
        return _project_app
    from celery import current_app

    return current_app._get_current_object()
