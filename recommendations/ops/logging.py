"""Log records that say which request or task they belong to.

``RequestAndTaskIds`` (a ``logging.Filter``) sets on every record:

- ``request_id``: the id django-guid gives the current web request (its middleware reads a
  valid ``Correlation-ID`` header from a proxy, else makes one); in a Celery task, the id of
  the request (or scheduled run) that queued it, which django-guid's Celery integration
  passes along; ``-`` outside both;
- ``task_id``: the running Celery task's id, ``-`` outside a task.

The demo's ``LOGGING`` puts both in every line: ``... [req=<id> task=<id>] logger: message``.
"""

from __future__ import annotations

import logging

__all__ = ["RequestAndTaskIds"]


class RequestAndTaskIds(logging.Filter):
    """Adds ``request_id`` and ``task_id`` to each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from django_guid import get_guid

        record.request_id = get_guid() or "-"
        record.task_id = _task_id() or "-"
        return True


def _task_id() -> str | None:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a dependency
        return None
    request = getattr(current_task, "request", None) if current_task else None
    return getattr(request, "id", None)
