"""``FastRecommendationsMiddleware``: the recommendation API's fast path (see ``api.fastpath``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from recommendations.fastpath import precomputed as fastpath


class FastRecommendationsMiddleware:
    """Answers a logged-in shopper's plain "my list" request from Redis when it can do so exactly.

    Place it after ``SecurityMiddleware`` (and WhiteNoise) and before ``SessionMiddleware``:
    what it cannot answer with certainty goes on to the full stack, whose answer then fills
    the entries the next request reads.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = fastpath.answer(request)
        if response is not None:
            return response
        response = self.get_response(request)
        fastpath.remember(request, response)
        return response
