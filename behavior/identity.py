"""The anonymous visitor id: issued, signed and renewed by the server, never named by a browser.

A visitor id is a random 32-hex-digit token that the server issues in a **signed**
(``django.core.signing.TimestampSigner``: HMAC with ``SECRET_KEY``), ``HttpOnly``,
``SameSite=Lax`` cookie. A cookie whose signature does not verify (an unsigned value, a
forged one, one signed with another key, or older than ``VISITOR_COOKIE_AGE_DAYS``) is
ignored and replaced by a new id, so nobody can take over an id by knowing or guessing it,
and page scripts cannot read it. The id is renewed at login and at logout, so a shared
browser never carries one person's history into the next person's account.

The signature's timestamp is the moment the id was issued: the login merge attaches only
the events stored under that id since then (:func:`behavior.signals.merge_visitor_at_login`).

Beside it, a second, script-readable cookie carries the id's *generation*: a keyed hash of
the id that tells the beacon that the server issued a new id (then it empties its outbox of
unsent events, which belonged to the previous shopper) without revealing the id itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import get_random_string, salted_hmac

from behavior.conf import behavior_settings

# Salt of the visitor cookie's signature (Django adds the cookie name to it).
SIGNING_SALT = "behavior.visitor"
_GENERATION_SALT = "behavior.visitor.generation"
_ID_CHARS = "0123456789abcdef"
_ID_LENGTH = 32
# What a signed id may look like: those issued here, or signed for tests and load generators.
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
# Attribute of a request whose response must carry a newly issued visitor cookie.
_ISSUED_ATTRIBUTE = "_behavior_visitor_issued"
# Attribute of a request whose response must set the generation cookie again.
_GENERATION_ATTRIBUTE = "_behavior_visitor_generation"
# Attribute of a request whose response must delete the visitor cookies (tracking not allowed).
_CLEARED_ATTRIBUTE = "_behavior_visitor_cleared"


@dataclass(frozen=True)
class Visitor:
    """A verified visitor id and the moment the server issued it."""

    id: str
    issued_at: datetime


def _signer() -> signing.TimestampSigner:
    # Always a TimestampSigner (SECRET_KEY, then SECRET_KEY_FALLBACKS: keys rotate without
    # logging every visitor out), whatever SIGNING_BACKEND says: the timestamp is the issue time.
    return signing.TimestampSigner(salt=f"{SIGNING_SALT}:{behavior_settings.VISITOR_COOKIE_NAME}")


def _max_age() -> int:
    return int(behavior_settings.VISITOR_COOKIE_AGE_DAYS * 86400)


def read_visitor(value: str | None) -> Visitor | None:
    """The visitor of a cookie value, or None when it is missing, unsigned, forged or expired."""
    if not value or len(value) > 256:
        return None
    signer = _signer()
    try:
        visitor_id = signer.unsign(value, max_age=_max_age())
    except signing.BadSignature:  # SignatureExpired is a BadSignature too
        return None
    if not _ACCEPTED_ID.fullmatch(visitor_id):
        return None  # signed by this server, so it never happens; a value of another kind would
    # "id:timestamp:signature", verified above; the timestamp is base 62 seconds.
    stamp = signing.b62_decode(value.rsplit(signer.sep, 2)[1])
    return Visitor(visitor_id, datetime.fromtimestamp(stamp, UTC))


def read_request_visitor(request: HttpRequest) -> Visitor | None:
    """The verified visitor of a request's cookie (see :func:`read_visitor`)."""
    return read_visitor(request.COOKIES.get(behavior_settings.VISITOR_COOKIE_NAME))


def new_visitor_id() -> str:
    """A fresh random visitor id (128 bits)."""
    return get_random_string(_ID_LENGTH, _ID_CHARS)


def generation(visitor_id: str) -> str:
    """The script-readable marker of a visitor id: changes with the id, reveals nothing of it."""
    return salted_hmac(_GENERATION_SALT, visitor_id, algorithm="sha256").hexdigest()[:16]


def issue_visitor(request: HttpRequest) -> str:
    """Give ``request`` a new visitor id; its response will carry the new cookie. Returns the id."""
    visitor_id = new_visitor_id()
    request.visitor_id = visitor_id  # type: ignore[attr-defined]
    request.visitor_issued_at = timezone.now()  # type: ignore[attr-defined]
    setattr(request, _ISSUED_ATTRIBUTE, visitor_id)
    return visitor_id


def check_generation(request: HttpRequest) -> None:
    """Have the response set the generation cookie again when the browser's does not match its id.

    The beacon stops queueing without it (a browser that deleted that cookie alone).
    """
    name = behavior_settings.VISITOR_GENERATION_COOKIE_NAME
    if request.COOKIES.get(name) != generation(request.visitor_id):  # type: ignore[attr-defined]
        setattr(request, _GENERATION_ATTRIBUTE, True)


def forget_visitor(request: HttpRequest) -> None:
    """Drop the request's visitor id; its response deletes the visitor cookies (no tracking)."""
    request.visitor_id = ""  # type: ignore[attr-defined]
    request.visitor_issued_at = None  # type: ignore[attr-defined]
    setattr(request, _ISSUED_ATTRIBUTE, None)
    setattr(request, _CLEARED_ATTRIBUTE, True)


def sign_visitor(visitor_id: str, issued_at: datetime | None = None) -> str:
    """The visitor cookie's value for ``visitor_id`` issued at ``issued_at`` (default: now).

    For the server's own use (the middleware, tests, load generators that play browsers):
    a value signed with this server's key is exactly what :func:`read_visitor` accepts.
    """
    signer = _signer()
    if issued_at is None:
        return signer.sign(visitor_id)
    stamp = signing.b62_encode(int(issued_at.timestamp()))
    return signing.Signer.sign(signer, f"{visitor_id}{signer.sep}{stamp}")


def write_cookies(request: HttpRequest, response: HttpResponse) -> None:
    """Set (or delete) the visitor cookies on ``response``, as issue_visitor / forget_visitor asked."""
    name = behavior_settings.VISITOR_COOKIE_NAME
    generation_name = behavior_settings.VISITOR_GENERATION_COOKIE_NAME
    issued = getattr(request, _ISSUED_ATTRIBUTE, None)
    secure = _secure(request)
    if issued:
        max_age = _max_age()
        response.set_cookie(
            name, sign_visitor(issued), max_age=max_age, samesite="Lax", secure=secure, httponly=True
        )
        response.set_cookie(
            generation_name,
            generation(issued),
            max_age=max_age,
            samesite="Lax",
            secure=secure,
            httponly=False,
        )
    elif getattr(request, _GENERATION_ATTRIBUTE, False):
        visitor_id = request.visitor_id  # type: ignore[attr-defined]
        response.set_cookie(
            generation_name, generation(visitor_id), max_age=_max_age(), samesite="Lax", secure=secure
        )
    elif getattr(request, _CLEARED_ATTRIBUTE, False):
        if name in request.COOKIES:
            response.delete_cookie(name, samesite="Lax")
        if generation_name in request.COOKIES:
            response.delete_cookie(generation_name, samesite="Lax")


def _secure(request: HttpRequest) -> bool:
    configured: Any = behavior_settings.VISITOR_COOKIE_SECURE
    if configured is None:  # follow the session cookie, or the request itself
        return bool(settings.SESSION_COOKIE_SECURE or request.is_secure())
    return bool(configured)
