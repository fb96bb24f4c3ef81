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
