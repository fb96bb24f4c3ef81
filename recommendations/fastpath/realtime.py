"""The fast path's real-time lane: a new list for a logged-in shopper without the middleware stack.

When the fast path (``api.fastpath``) has no replayable response for a request it has
otherwise fully checked (session from the cache, the user's session auth hash, throttle
counted and allowed, empty cart, plain ``GET``), the shopper usually has a newer event than
their list: the service must run. Session, authentication and DRF middleware would cost
more CPU than the answer itself (a user row query, the session store, DRF's request
wrapping and negotiation), so this lane calls the view's own :func:`my_list_data` (the
service's ``recommend_for``, every business rule included) directly, with

- a user that is the session's authenticated user id (what the fast path verified against
  the cached session auth hash, or against the user row as Django does) for the service, and
  the real user on ``request.user`` (loaded lazily) for adapter hooks that read it;
- the session as a plain dict (the cart hook reads it; the lane only runs with an empty cart);
- the DRF renderer, media type and headers of a full-stack answer of the same view,
  captured by :func:`remember_template` (none yet in this process: the full stack answers).

Why not a second implementation of the rules: the service stays the only one, so the lane
answers exactly what the view would; it only leaves out work whose outcome is already known.
Any error before the list is recorded falls back to the full stack with a clean request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from recommendations.api import serializers as s
from recommendations.api.views import my_list_data, query_params
from recommendations.services.serving.service import REUSABLE_ATTRIBUTE, SHOWN_ATTRIBUTE, STATE_ATTRIBUTE
from recommendations.services.serving.state import CLOSING_WRITES_ATTRIBUTE, ClosingWrites

_ATTRIBUTES = (REUSABLE_ATTRIBUTE, SHOWN_ATTRIBUTE, STATE_ATTRIBUTE, CLOSING_WRITES_ATTRIBUTE)


@dataclass(frozen=True)
class _Template:
    """What a full-stack 200 answer of the list view looked like, but for its body."""

    renderer: Any
    media_type: str
    headers: tuple[tuple[str, str], ...]
    content_length: bool


class _SessionUser:
    """The session's authenticated user as the service sees it: an id, authenticated."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, pk: Any) -> None:
        self.pk = pk


_lock = threading.Lock()
_state: dict[str, Any] = {}


def reset() -> None:
    """Forget the captured template and parameters (settings changed)."""
    with _lock:
        _state.clear()


def remember_template(response: Any) -> None:
    """Keep the renderer and headers of a full-stack answer the fast path may replay.

    Called for answers of plain "my list" requests of authenticated users without cookies
    set: none of those headers depends on who asked (the body is rendered per request).
    """
    renderer = getattr(response, "accepted_renderer", None)
    media_type = getattr(response, "accepted_media_type", None)
    if renderer is None or not media_type:
        return
    headers = tuple((name, value) for name, value in response.items() if name.lower() != "content-length")
    template = _Template(renderer, media_type, headers, response.has_header("Content-Length"))
    with _lock:
        _state["template"] = template


def _default_params() -> dict[str, Any]:
    params = _state.get("params")
    if params is None:
        params = _state["params"] = query_params(s.RecommendationQuerySerializer, {})
    return params


def answer(
    request: HttpRequest, user_id: Any, visitor_id: str, session: dict, *, user: Any = None
) -> HttpResponse | None:
    """The full stack's answer to a checked plain request, built by the service directly; or None.

    ``user``: the authenticated user when already loaded (else loaded if an adapter asks).
    """
    template = _state.get("template")
    if template is None:
        return None
    request.session = session  # type: ignore[assignment]
    request.user = (
        user
        if user is not None
        else SimpleLazyObject(lambda: get_user_model()._default_manager.get(pk=user_id))
    )
    request.visitor_id = visitor_id  # type: ignore[attr-defined]
    # the service's cache and impression writes wait for the pipeline that stores the answer
    setattr(request, CLOSING_WRITES_ATTRIBUTE, ClosingWrites())
    try:
        data = my_list_data(
            request, user=_SessionUser(user_id), visitor_id=visitor_id, params=_default_params()
        )
        body = template.renderer.render(data, template.media_type, {})
    except Exception:
        for name in _ATTRIBUTES:  # the full stack must start from a clean request
            if hasattr(request, name):
                delattr(request, name)
        raise
    response = HttpResponse(body, status=200)
    for name, value in template.headers:
        response.headers[name] = value
    if template.content_length:
        response.headers["Content-Length"] = str(len(response.content))
    return response


def closing_writes(request: HttpRequest) -> ClosingWrites | None:
    """Take the writes :func:`answer` left for the caller's closing pipeline off the request."""
    closing = getattr(request, CLOSING_WRITES_ATTRIBUTE, None)
    if closing is not None:
        delattr(request, CLOSING_WRITES_ATTRIBUTE)
    return closing
