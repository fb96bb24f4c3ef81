"""Outages of the database and the shared cache: how to recognise them, and say so once a minute."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.db import InterfaceError, OperationalError

_last: dict[str, float] = {}
_lock = threading.Lock()


def warn_now_and_then(
    logger: logging.Logger, key: str, message: str, *args: Any, seconds: float = 60
) -> bool:
    """Log ``message`` as a warning unless the same ``key`` was logged less than ``seconds`` ago.

    Returns whether it was logged. Per process: each web worker says it once a minute.
    """
    now = time.monotonic()
    with _lock:
        if now - _last.get(key, float("-inf")) < seconds:
            return False
        _last[key] = now
    logger.warning(message, *args)
    return True


def reset_warnings() -> None:
    """Forget when each warning was last logged (the next one of each key is logged at once)."""
    with _lock:
        _last.clear()


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached now (down, restarting, connection lost).

    ``OperationalError`` covers a refused or dropped connection and a server shutting down;
    ``InterfaceError`` a connection that is already closed. Both pass once the database is
    back: the client should retry. Data errors (a bad value, a constraint) are not these.
    """
    return isinstance(exc, OperationalError | InterfaceError)
