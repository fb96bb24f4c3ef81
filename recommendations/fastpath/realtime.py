"""The fast path's real-time lane: a new list for an admitted shopper, built by the view's own service call.

When there is nothing to replay (the shopper has a newer event, usually), the service must run.
The lane calls the view's :func:`my_list` (the service's ``serve_list``, every business rule
included) for the user the gate authenticated, and renders the answer with the DRF renderer,
media type and headers of a full-stack answer of the same view in the same language, captured
by :func:`remember_template` (none yet: the full stack answers, and is captured).

The service's writes (the network's rows, the impression) come back in the answer
(``ServedList.closing``) and are sent with the replayable response in one Redis round trip.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse

from recommendations.api import serializers as s
from recommendations.api.views import my_list, query_params
from recommendations.fastpath import replay
from recommendations.fastpath.gate import Shopper
from recommendations.services.serving.model import log_once


@dataclass(frozen=True)
class _Template:
    """What a full-stack 200 answer of the list view looked like, but for its body."""

    renderer: Any
    media_type: str
    headers: tuple[tuple[str, str], ...]
    content_length: bool


_lock = threading.Lock()
_templates: dict[str, _Template] = {}
_params: dict[str, dict[str, Any]] = {}


def reset(**_: Any) -> None:
    """Forget the captured templates and parameters (settings changed)."""
    with _lock:
        _templates.clear()
        _params.clear()


def has_template(language: str) -> bool:
    """Whether a full-stack answer in ``language`` was captured in this process."""
    return language in _templates


def remember_template(response: Any, language: str) -> None:
    """Keep the renderer and headers of a full-stack answer the lane may reuse.

    Called for 200 answers without cookies to plain "my list" requests of the user the gate
    admitted: none of those headers depends on who asked (the body is rendered per request).
    """
    renderer = getattr(response, "accepted_renderer", None)
    media_type = getattr(response, "accepted_media_type", None)
    if renderer is None or not media_type:
        return
    headers = tuple((name, value) for name, value in response.items() if name.lower() != "content-length")
    with _lock:
        _templates[language] = _Template(renderer, media_type, headers, response.has_header("Content-Length"))


def _default_params() -> dict[str, Any]:
    params = _params.get("default")
    if params is None:
        params = _params["default"] = query_params(s.RecommendationQuerySerializer, {})
    return params


def answer(request: HttpRequest, client: Any, shopper: Shopper) -> HttpResponse | None:
    """The full stack's answer for an admitted shopper, built through the service; or None."""
    template = _templates.get(shopper.language)
    if template is None:
        return None
    request.visitor_id = shopper.visitor_id  # type: ignore[attr-defined]
    data, served = my_list(
        request,
        user=shopper.user,
        visitor_id=shopper.visitor_id,
        params=_default_params(),
        defer_writes=True,
    )
    body = template.renderer.render(data, template.media_type, {})
    response = HttpResponse(body, status=200)
    for name, value in template.headers:
        response.headers[name] = value
    if template.content_length:
        response.headers["Content-Length"] = str(len(response.content))
    # one round trip: the service's writes (scored rows, impression), then the replayable answer
    closing = served.closing
    try:
        pipe = client.pipeline(transaction=False)
        queued = closing.queue(pipe) if closing is not None else 0
        if served.reusable is not None and served.reusable.user_id == shopper.user.pk:
            replay.store(pipe, client, response, served.reusable)
        replies = pipe.execute()
    except Exception as exc:  # answered anyway; the next request goes through the lane again
        if closing is not None:
            closing.failed(exc)
        log_once(f"fastpath-lane:{type(exc).__name__}", "Real-time list not stored for replay: %s", exc)
    else:
        if closing is not None:
            closing.written(replies[:queued])
    return response
