"""``FastRecommendationsMiddleware``: the API's optional fast path (see ``recommendations.fastpath``)."""

from __future__ import annotations

from collections.abc import Callable

from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from recommendations.api.views import RecommendationsView
from recommendations.fastpath import config, gate, realtime, replay
from recommendations.ops.metrics import answered_by
from recommendations.services.serving.impressions import redis_client
from recommendations.services.serving.model import log_once

setting_changed.connect(realtime.reset, dispatch_uid="recommendations.fastpath.templates")


class FastRecommendationsMiddleware:
    """Answers a logged-in shopper's plain "my list" request without the middleware stack when it
    can do so exactly; only while ``RECOMMENDER["FAST_PATH_ENABLED"]`` is on.

    Place it after ``SecurityMiddleware`` (and WhiteNoise) and before ``SessionMiddleware``:
    what it cannot answer with certainty goes on to the full stack.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        settings_now = config.current()
        if settings_now is None or not gate.plain_request(request, settings_now):
            return self.get_response(request)
        client = redis_client()
        shopper = gate.admit(request, settings_now) if client is not None else None
        if shopper is None:
            return self.get_response(request)
        if not realtime.has_template(shopper.language):
            response = self.get_response(request)
            user = getattr(request, "user", None)
            if (
                response.status_code == 200
                and not response.cookies
                and user is not None
                and user.is_authenticated
                and user.pk == shopper.user.pk
            ):
                realtime.remember_template(response, shopper.language)
            return response
        if not gate.allowed(request, shopper, RecommendationsView):
            return self.get_response(request)  # the full stack's 403 or 429
        answered = self._answer(request, client, shopper)
        return answered if answered is not None else self.get_response(request)

    @staticmethod
    def _answer(request: HttpRequest, client: object, shopper: gate.Shopper) -> HttpResponse | None:
        with translation.override(shopper.language):
            try:
                response = replay.replay(client, shopper.user.pk, shopper.visitor_id, shopper.language)
            except Exception as exc:  # Redis down or a surprise: the lane answers
                log_once(f"fastpath:{type(exc).__name__}", "Stored recommendations not replayed: %s", exc)
                response = None
            if response is not None:
                answered_by(request, "fastpath")
                return response
            try:
                response = realtime.answer(request, client, shopper)
            except Exception as exc:  # the full stack answers (and reports the error if it has it too)
                log_once(f"fastpath-lane:{type(exc).__name__}", "Real-time lane skipped: %s", exc)
                return None
        if response is not None:
            answered_by(request, "lane")
        return response
