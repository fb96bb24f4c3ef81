"""Who is asking: the checks the full stack makes on every request, made here with its public APIs.

Nothing is cached between requests: a password change or deactivation, even one made with
``QuerySet.update()`` (no signal), refuses the very next request, exactly as the full stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.http import HttpRequest
from django.utils import translation
from django.utils.crypto import constant_time_compare

from behavior import identity
from behavior.adapter import get_tracking_adapter
from recommendations.adapter import get_adapter
from recommendations.fastpath.config import Config

_ACCEPTS = frozenset({"*/*", "application/json"})


@dataclass
class Shopper:
    """A request the fast path may answer: its session, authenticated user, visitor and language."""

    session: Any
    user: Any
    visitor_id: str
    language: str


class _SessionOnly:
    """What the adapter's cart hook reads from a request: its session."""

    def __init__(self, session: Any) -> None:
        self.session = session


def plain_request(request: HttpRequest, config: Config) -> bool:
    """A ``GET`` of exactly the list's URL whose answer depends on nothing but the shopper."""
    if request.method != "GET" or request.path_info != config.path_info:
        return False
    meta = request.META
    return (
        not meta.get("QUERY_STRING")
        and "HTTP_AUTHORIZATION" not in meta
        and meta.get("HTTP_ACCEPT", "*/*") in _ACCEPTS
        and bool(request.COOKIES.get(config.session_cookie))
    )


def session_user(session: Any) -> Any:
    """The session's user as ``django.contrib.auth.get_user`` accepts it, or None.

    The session's backend must be configured; the backend's ``get_user`` (``ModelBackend``: active
    users only) loads the user; the session's auth hash must equal the user's current one
    (constant time). What Django would still accept only through ``SECRET_KEY_FALLBACKS`` (and
    then rewrite the session) is left to the full stack: None.
    """
    try:
        backend_path = session[BACKEND_SESSION_KEY]
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
    except Exception:
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)
    if user is None or not getattr(user, "is_active", True):
        return None
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    return user


def request_language(request: HttpRequest, config: Config) -> str:
    """The language the full stack would activate for this request (``LocaleMiddleware``'s rule)."""
    if not config.locale:
        return translation.get_language() or settings.LANGUAGE_CODE
    urlconf = getattr(request, "urlconf", settings.ROOT_URLCONF)
    patterns_used, prefixed_default = is_language_prefix_patterns_used(urlconf)
    language = translation.get_language_from_request(request, check_path=patterns_used)
    if patterns_used and not prefixed_default and not translation.get_language_from_path(request.path_info):
        language = settings.LANGUAGE_CODE
    return language


def admit(request: HttpRequest, config: Config) -> Shopper | None:
    """The request's shopper when the fast path may answer for them, else None (the full stack answers)."""
    request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware would check (DisallowedHost: a 400)
    visitor_id = ""
    if config.visitor_cookie:
        # the id the visitor middleware would accept: a verified signature, tracking allowed, and
        # the generation marker it would not set again; otherwise the full stack answers (and
        # issues, repairs or deletes the cookies)
        visitor = identity.read_visitor(request.COOKIES.get(config.visitor_cookie))
        if visitor is None or not get_tracking_adapter().may_track(request):
            return None
        if request.COOKIES.get(config.generation_cookie) != identity.generation(visitor.id):
            return None
        visitor_id = visitor.id
    store = import_module(settings.SESSION_ENGINE).SessionStore
    session = store(request.COOKIES[config.session_cookie])
    user = session_user(session)
    if user is None or get_adapter().get_cart_item_keys(_SessionOnly(session)):
        return None
    return Shopper(session, user, visitor_id, request_language(request, config))


def allowed(request: HttpRequest, shopper: Shopper, view_class: Any) -> bool:
    """The view's own authentication, permissions and throttles, as DRF's ``APIView.initial`` checks them.

    The throttles count this request; on a refusal the full stack answers (its 403 or 429), and
    a refused request is one DRF's throttles do not record.
    """
    view = view_class()
    request.session = shopper.session
    request.user = shopper.user
    drf_request = view.initialize_request(request)
    view.request = drf_request
    view.args, view.kwargs, view.headers = (), {}, {}
    # the view's own authenticators must see the same user (a project whose API does not take
    # session authentication answers this cookie as anonymous: the full stack does that)
    authenticated = drf_request.user
    if not authenticated.is_authenticated or authenticated.pk != shopper.user.pk:
        return False
    for permission in view.get_permissions():
        if not permission.has_permission(drf_request, view):
            return False
    # every throttle counts, as DRF's check_throttles asks each of them
    answers = [throttle.allow_request(drf_request, view) for throttle in view.get_throttles()]
    return all(answers)
