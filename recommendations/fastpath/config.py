"""The fast path's view of the settings: None where it cannot answer exactly (then it stays off)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.urls import NoReverseMatch, get_script_prefix, reverse

from behavior.conf import behavior_settings
from recommendations.conf import recommender_settings

URL_NAME = "recommendations"
LOCALE_MIDDLEWARE = "django.middleware.locale.LocaleMiddleware"
VISITOR_MIDDLEWARE = "behavior.middleware.VisitorMiddleware"


@dataclass(frozen=True)
class Config:
    """What the fast path reads from the settings once per process."""

    path_info: str
    session_cookie: str
    visitor_cookie: str  # "" when the visitor middleware does not run
    generation_cookie: str  # the visitor id's script-readable marker, which the middleware repairs
    locale: bool  # LocaleMiddleware picks each request's language


_lock = threading.Lock()
_held: dict[str, Config | None] = {}


def _build() -> Config | None:
    if (
        not recommender_settings.FAST_PATH_ENABLED
        or settings.SESSION_SAVE_EVERY_REQUEST  # the full stack would save the session and set a cookie
        or settings.DISALLOWED_USER_AGENTS  # CommonMiddleware's checks would be skipped
        or settings.PREPEND_WWW
    ):
        return None
    try:
        path = reverse(URL_NAME)
    except NoReverseMatch:
        return None
    script_prefix = get_script_prefix()
    path_info = "/" + path[len(script_prefix) :] if path.startswith(script_prefix) else path
    visitor = VISITOR_MIDDLEWARE in settings.MIDDLEWARE
    return Config(
        path_info=path_info,
        session_cookie=settings.SESSION_COOKIE_NAME,
        visitor_cookie=behavior_settings.VISITOR_COOKIE_NAME if visitor else "",
        generation_cookie=behavior_settings.VISITOR_GENERATION_COOKIE_NAME if visitor else "",
        locale=LOCALE_MIDDLEWARE in settings.MIDDLEWARE,
    )


def current() -> Config | None:
    """The fast path's configuration, or None when it is off (the setting, or settings it cannot honour)."""
    try:
        return _held["config"]
    except KeyError:
        with _lock:
            _held["config"] = _build()
        return _held["config"]


def reset(**_: Any) -> None:
    """Forget the configuration (settings changed)."""
    _held.clear()


setting_changed.connect(reset, dispatch_uid="recommendations.fastpath.config")
