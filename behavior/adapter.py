"""Tracking policy a shop can override (allauth-style adapter)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from behavior.conf import behavior_settings

# The model permission a server-to-server client's user needs to name visitors in events.
RECORD_FOR_VISITORS_PERMISSION = "behavior.record_for_visitors"


class DefaultTrackingAdapter:
    """Decides whether a request may be tracked, who the shopper is, and whom to trust."""

    def may_track(self, request: HttpRequest) -> bool:
        """False when the shopper opted out (Do-Not-Track / Global Privacy Control) or has not consented.

        Without tracking the shopper gets no visitor cookie (an existing one is deleted) and
        no event of theirs is stored.
        """
        if behavior_settings.HONOR_DO_NOT_TRACK and self.opted_out(request):
            return False
        return not self.consent_required() or self.has_consent(request)

    def opted_out(self, request: HttpRequest) -> bool:
        """The browser asks not to be tracked: ``DNT: 1`` or ``Sec-GPC: 1`` (Global Privacy Control)."""
        return request.headers.get("DNT") == "1" or request.headers.get("Sec-GPC") == "1"

    def consent_required(self) -> bool:
        """Whether tracking waits for consent: ``REQUIRE_CONSENT``, or a ``CONSENT_COOKIE_NAME`` set."""
        return bool(behavior_settings.REQUIRE_CONSENT or behavior_settings.CONSENT_COOKIE_NAME)

    def has_consent(self, request: HttpRequest) -> bool:
        """The shop's consent signal. Default: the ``CONSENT_COOKIE_NAME`` cookie equals ``"1"``.

        Override it to read a consent-management platform's own cookie or a user setting;
        without a cookie name the default never finds consent (then this hook must decide).
        """
        cookie = behavior_settings.CONSENT_COOKIE_NAME
        return bool(cookie) and request.COOKIES.get(cookie) == "1"

    def is_bot(self, request: HttpRequest) -> bool:
        """True when the User-Agent looks like an automated client."""
        agent = request.headers.get("User-Agent", "").lower()
        if not agent:
            return True
        return any(pattern in agent for pattern in behavior_settings.BOT_USER_AGENT_PATTERNS)

    def is_trusted_client(self, request: Any) -> bool:
        """Whether a (DRF) request comes from a server-to-server client that may name visitors.

        Default: the request authenticated with a DRF token (``TokenAuthentication`` or a
        subclass: an API-key scheme) and its user holds the explicit model permission
        ``behavior.record_for_visitors``. A browser session or basic authentication never
        qualifies, whatever the user's permissions: a page's script must not name visitors.
        """
        from rest_framework.authentication import TokenAuthentication

        authenticator = getattr(request, "successful_authenticator", None)
        user = getattr(request, "user", None)
        return (
            isinstance(authenticator, TokenAuthentication)
            and user is not None
            and user.is_authenticated
            and user.is_active
            and user.has_perm(RECORD_FOR_VISITORS_PERMISSION)
        )


def get_tracking_adapter() -> DefaultTrackingAdapter:
    """The configured adapter instance (``RECOMMENDER["TRACKING_ADAPTER"]``)."""
    return behavior_settings.TRACKING_ADAPTER()
