"""Gives every browser a first-party anonymous visitor id (``request.visitor_id``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from behavior.adapter import get_tracking_adapter
from behavior.conf import behavior_settings

_VALID_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class VisitorMiddleware:
    """Reads or issues the visitor cookie; sets ``request.visitor_id`` and ``request.may_track``.

    The cookie is only issued when the tracking adapter allows tracking, so a shopper
    who sends Do-Not-Track gets no identifier at all.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        cookie_name = behavior_settings.VISITOR_COOKIE_NAME
        current = request.COOKIES.get(cookie_name, "")
        request.may_track = get_tracking_adapter().may_track(request)
        issue = False
        if _VALID_VISITOR_ID.match(current):
            request.visitor_id = current
        elif request.may_track:
            request.visitor_id = uuid.uuid4().hex
            issue = True
        else:
            request.visitor_id = ""
        response = self.get_response(request)
        if issue:
            response.set_cookie(
                cookie_name,
                request.visitor_id,
                max_age=behavior_settings.VISITOR_COOKIE_AGE_DAYS * 86400,
                httponly=False,  # the JS beacon reads it
                samesite="Lax",
            )
        return response
