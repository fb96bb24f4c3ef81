"""Logged-in sessions for the HTTP benchmarks, made the way the login view makes them.

Needs configured Django (call inside ``manage.py shell`` or after ``django.setup()``).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from typing import Any


def login_sessions(user_ids: Iterable[Any]) -> dict[Any, str]:
    """``{user_pk: session_key}``: one new session per existing user id.

    The configured session engine is used (cached_db in the demo project), so the session
    lands in the cache too, exactly as after a real login.
    """
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model

    session_store = import_module(settings.SESSION_ENGINE).SessionStore
    keys = {}
    for user in get_user_model().objects.filter(pk__in=list(user_ids)):
        session = session_store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        keys[user.pk] = session.session_key
    return keys
