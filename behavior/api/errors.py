"""An unreachable database answers 503 with ``Retry-After`` and a JSON body, never a 500 HTML page.

:func:`exception_handler` is DRF's handler plus that one case. The plugin's views use it
whatever the project configures (``get_exception_handler``); a project may name it in
``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` so that its other API views answer the same way.
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from behavior.conf import behavior_settings
from behavior.outages import database_unavailable

UNAVAILABLE = "The database is unavailable; nothing was stored. Retry later."


def unavailable_response(detail: str = UNAVAILABLE) -> Response:
    """503 with ``Retry-After: UNAVAILABLE_RETRY_AFTER_SECONDS`` and ``{"detail": ...}``."""
    seconds = int(behavior_settings.UNAVAILABLE_RETRY_AFTER_SECONDS)
    return Response(
        {"detail": detail, "retry_after": seconds},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(seconds)},
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, with a database outage answered by :func:`unavailable_response`."""
    if database_unavailable(exc):
        return unavailable_response()
    return drf_exception_handler(exc, context)
