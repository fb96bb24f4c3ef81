"""Gives every trackable browser a server-issued anonymous visitor id (``request.visitor_id``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from behavior import identity
from behavior.adapter import get_tracking_adapter


class VisitorMiddleware:
    """Reads or issues the signed visitor cookie; sets ``request.visitor_id`` and ``request.may_track``.

    - tracking allowed and a cookie whose signature verifies: its id (``request.visitor_issued_at``
      is when it was issued);
    - tracking allowed and no cookie, or one that is unsigned, forged or expired: a new id,
      set on the response (the old value is never used);
    - tracking not allowed (Do-Not-Track, Global Privacy Control, no consent): no id, and
      the response deletes visitor cookies the browser still has.

    Login and logout issue a new id (``behavior.signals``); this middleware writes it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        may_track = get_tracking_adapter().may_track(request)
        request.may_track = may_track  # type: ignore[attr-defined]
        visitor = identity.read_request_visitor(request) if may_track else None
        if visitor is not None:
            request.visitor_id = visitor.id  # type: ignore[attr-defined]
            request.visitor_issued_at = visitor.issued_at  # type: ignore[attr-defined]
            identity.check_generation(request)
        elif may_track:
            identity.issue_visitor(request)
        else:
            identity.forget_visitor(request)
        response = self.get_response(request)
        identity.write_cookies(request, response)
        return response
