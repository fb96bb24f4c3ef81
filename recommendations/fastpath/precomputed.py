"""The API's fast path: a logged-in shopper's plain ``GET /api/recommendations/`` from Redis.

``recommendations.fastpath.middleware.FastRecommendationsMiddleware`` (placed before the session and
authentication middleware) calls :func:`answer`. It answers only what it can answer exactly
as the DRF view would; anything else returns None and the request goes through the full
stack, which stays the reference behaviour. On the way back :func:`remember` stores what
the next request needs: the user's session auth hash and the response itself (status,
headers, body with the recommendation id cut out) with what the list was built from.

Round trips: (1) the session's cache entry; (2) one Lua script that counts the request for
the throttle (INCR + EXPIRE), checks the user's cached auth hash, their latest-event marker
and the fingerprints of the entries the list was built from (precomputed list, "not
interested" marks) against the stored response, and queues the impression (RPUSH) only
when it returns the stored response to be served. A session this process has parsed before
needs only (2): the script first compares the session entry's bytes with their fingerprint
from then (unchanged bytes, unchanged user, hash and cart) and otherwise returns them to be
parsed again before it counts or records anything.

It serves only when all of these hold:

- ``GET`` of exactly the list's URL, no query string, no ``Authorization`` header, an
  ``Accept`` header that is absent, ``*/*`` or ``application/json``;
- a session cookie naming an entry of the configured cache-based session engine (which
  Django itself would trust without the database), saved only when modified, holding
  ``_auth_user_id``, ``_auth_user_backend`` = ``ModelBackend`` and an ``_auth_user_hash``
  equal (constant time) to the user's current session auth hash. That hash is cached per
  user (and per ``SECRET_KEY``) only after Django authenticated the user (so active users
  only) and is replaced by a tombstone on every save or deletion of the user row (password
  change, deactivation, deletion), before and after the commit; a fill races with such a
  change only through a compare-and-set that the tombstone makes fail. A logged-out session
  has no cache entry (``flush`` deletes it);
- an empty cart and, when the visitor middleware runs, a visitor cookie whose signature
  verifies (``behavior.identity``) and a request the tracking adapter may track;
- the shopper's latest-event marker (``recommendations.services.serving.freshness``) equals the one
  the list was built for, and the precomputed list and marks are byte for byte those it
  was built from;
- the throttle allows the request (the count is handed to the DRF throttle on fall-through,
  so a request is counted once).

When everything but the stored response holds (the shopper has a newer event, usually), the
real-time lane (``api.lane``) builds the answer through the view's own service call, without
the session, authentication and DRF layers, and stores it for replay as the full stack would.

Updates made with ``QuerySet.update()`` send no signal: the auth entry expires after
``AUTH_SECONDS`` and the replayable list after ``LIST_CACHE_SECONDS``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.core.signals import setting_changed
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from behavior import identity
from behavior.adapter import get_tracking_adapter
from behavior.conf import behavior_settings
from recommendations.adapter import get_adapter
from recommendations.api.views import PRECOUNTED_ATTRIBUTE, CounterScopedRateThrottle, RecommendationsView
from recommendations.fastpath import realtime as lane
from recommendations.ops.metrics import SOURCE_ATTRIBUTE
from recommendations.services import personal_keys
from recommendations.services.serving import impressions
from recommendations.services.serving.freshness import digest, marker_key, raise_markers
from recommendations.services.serving.impressions import redis_client
from recommendations.services.serving.model import log_once
from recommendations.services.serving.service import REUSABLE_ATTRIBUTE
from recommendations.services.serving.state import not_interested_cache_key, precomputed_cache_key

logger = logging.getLogger(__name__)

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# Seconds a cached session auth hash lives (bounds changes made without signals).
AUTH_SECONDS = 600
URL_NAME = "recommendations"
CANDIDATE_ATTRIBUTE = "_recommendations_fastpath"
_ACCEPTS = frozenset({"*/*", "application/json"})
# Django's session keys: 32 characters of ascii_lowercase + digits.
_SESSION_KEY_PATTERN = re.compile(r"[a-z0-9]{32}")

# KEYS[1] auth entry; ARGV[1] the value read before the user row (""=missing), ARGV[2] new, ARGV[3] ttl.
_COMPARE_AND_SET_LUA = """
local current = redis.call('GET', KEYS[1])
if (current or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""


@dataclass(frozen=True)
class _Config:
    path_info: str
    session_cookie: str
    session_prefix: str
    visitor_cookie: str
    secret_fingerprint: str


@dataclass
class _Candidate:
    """What the fast path read for a request it let through (used by :func:`remember`)."""

    user_id: Any
    auth_raw: bytes | None
    auth_valid: bool


_config_lock = threading.Lock()
_config_cache: dict[str, _Config | None] = {}


def _build_config() -> _Config | None:
    """The fast path's settings, or None where it cannot be exact (then it stays off)."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    engine = import_module(settings.SESSION_ENGINE)
    prefix = getattr(getattr(engine, "SessionStore", None), "cache_key_prefix", None)
    if (
        prefix is None  # not a cache-based session engine
        or settings.SESSION_SAVE_EVERY_REQUEST
        or settings.DISALLOWED_USER_AGENTS  # CommonMiddleware's check would be skipped
        or MODEL_BACKEND not in settings.AUTHENTICATION_BACKENDS
        or not isinstance(caches["default"], RedisCache)
        or settings.CACHES[settings.SESSION_CACHE_ALIAS] != settings.CACHES["default"]
    ):
        return None
    try:
        path = reverse(URL_NAME)
    except NoReverseMatch:
        return None
    script_prefix = get_script_prefix()
    path_info = "/" + path[len(script_prefix) :] if path.startswith(script_prefix) else path
    visitor = "behavior.middleware.VisitorMiddleware" in settings.MIDDLEWARE
    return _Config(
        path_info=path_info,
        session_cookie=settings.SESSION_COOKIE_NAME,
        session_prefix=prefix,
        visitor_cookie=behavior_settings.VISITOR_COOKIE_NAME if visitor else "",
        secret_fingerprint=hashlib.sha256(
            f"recommendations.fastpath:{settings.SECRET_KEY}".encode()
        ).hexdigest()[:16],
    )


def _config() -> _Config | None:
    try:
        return _config_cache["config"]
    except KeyError:
        with _config_lock:
            _config_cache["config"] = _build_config()
        return _config_cache["config"]


def _reset_config(**_: Any) -> None:
    _config_cache.clear()
    _sessions.clear()
    lane.reset()


setting_changed.connect(_reset_config, dispatch_uid="recommendations.fastpath.config")


def auth_key(user_id: Any, config: _Config | None = None) -> str:
    """The cache key of a user's session auth hash (valid for this ``SECRET_KEY`` only)."""
    config = config or _config()
    fingerprint = config.secret_fingerprint if config is not None else ""
    return impressions.cache_key(personal_keys.SESSION_AUTH.key(user_id, secret=fingerprint))


def list_key(user_id: Any) -> str:
    """The cache key of the user's replayable response."""
    return impressions.cache_key(personal_keys.REPLAY.key(user_id))


class _SessionOnly:
    """What the adapter's cart hook reads from a request: its session (here a plain dict)."""

    def __init__(self, session: dict) -> None:
        self.session = session


def _session_user(session: Any) -> tuple[Any, str] | None:
    """``(user id, session auth hash)`` of a logged-in session the fast path may check, else None."""
    if not isinstance(session, dict):
        return None
    backend = session.get(BACKEND_SESSION_KEY)
    session_hash = session.get(HASH_SESSION_KEY)
    if backend != MODEL_BACKEND or not isinstance(session_hash, str) or not session_hash:
        return None
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
    except Exception:
        return None
    if user_id is None or get_adapter().get_cart_item_keys(_SessionOnly(session)):
        return None
    return user_id, session_hash


def answer(request: HttpRequest) -> HttpResponse | None:
    """The response to a plain "my list" request from Redis, or None: let the full stack answer."""
    config = _config()
    if config is None or request.method != "GET" or request.path_info != config.path_info:
        return None
    meta = request.META
    if (
        meta.get("QUERY_STRING")
        or "HTTP_AUTHORIZATION" in meta
        or meta.get("HTTP_ACCEPT", "*/*") not in _ACCEPTS
    ):
        return None
    request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware would check (DisallowedHost: a 400)
    cookies = request.COOKIES
    session_key = cookies.get(config.session_cookie, "")
    if not _SESSION_KEY_PATTERN.fullmatch(session_key):
        return None
    visitor_id = ""
    if config.visitor_cookie:
        # The id the visitor middleware would accept: a verified signature, tracking allowed;
        # otherwise the full stack answers (and issues or deletes the cookie).
        visitor = identity.read_visitor(cookies.get(config.visitor_cookie))
        if visitor is None or not get_tracking_adapter().may_track(request):
            return None
        visitor_id = visitor.id
    client = redis_client()
    if client is None:
        return None
    try:
        return _answer(request, config, client, session_key, visitor_id)
    except Exception as exc:  # Redis down or a surprise: the full stack answers (logged once)
        log_once(f"fastpath:{type(exc).__name__}", "Recommendations fast path skipped: %s", exc)
        return None


def _answer(
    request: HttpRequest, config: _Config, client: Any, session_key: str, visitor_id: str
) -> HttpResponse | None:
    # the session cache's settings equal the default cache's (``_build_config``): the same key
    session_entry = impressions.cache_key(config.session_prefix + session_key)
    known = _sessions.get(session_entry)
    if known is None:
        known = _read_session(client.get(session_entry), session_entry)
        if known is None:
            return None
        response = _serve(request, config, client, visitor_id, session_entry, known, check=False)
    else:
        response = _serve(request, config, client, visitor_id, session_entry, known, check=True)
    if response is _SESSION_CHANGED:
        # the session entry is no longer the one this process parsed: read it again
        _sessions.pop(session_entry, None)
        known = _read_session(getattr(request, _CHANGED_ATTRIBUTE), session_entry)
        if known is None:
            return None
        response = _serve(request, config, client, visitor_id, session_entry, known, check=False)
    return response if isinstance(response, HttpResponse) else None


# Sessions this process has parsed: cache entry -> (SHA-1 of its bytes, identity, session). The
# serving script compares the entry's current bytes with that fingerprint before anything else,
# so a known session costs no separate GET and no unpickling.
_sessions: dict[str, tuple[str, tuple[Any, str], dict]] = {}
_SESSIONS_KEPT = 20_000
_SESSION_CHANGED = object()
_CHANGED_ATTRIBUTE = "_recommendations_fastpath_session"


def _read_session(raw_session: bytes | None, session_entry: str) -> tuple[str, tuple[Any, str], dict] | None:
    if raw_session is None:
        return None
    session = impressions.redis_loads(raw_session)
    identity = _session_user(session)
    if identity is None:
        return None
    known = (digest(raw_session), identity, session)
    if len(_sessions) >= _SESSIONS_KEPT:
        _sessions.clear()
    _sessions[session_entry] = known
    return known


def _serve(
    request: HttpRequest,
    config: _Config,
    client: Any,
    visitor_id: str,
    session_entry: str,
    known: tuple[str, tuple[Any, str], dict],
    *,
    check: bool,
) -> Any:
    session_digest, identity, session = known
    user_id, session_hash = identity
    counter = CounterScopedRateThrottle.counter(RecommendationsView.throttle_scope, user_id)
    recommendation_id = str(uuid.uuid4())
    row_start = json.dumps(
        {
            "recommendation_id": recommendation_id,
            "user_id": user_id,
            "visitor_id": visitor_id[:64],
            "created_at": timezone.now().isoformat(),
        }
    )[:-1]
    list_entry = list_key(user_id)
    count, auth_raw, stored, queued = _serve_script(client)(
        keys=[
            auth_key(user_id, config),
            impressions.cache_key(marker_key(user_id)),
            list_entry,
            impressions.cache_key(precomputed_cache_key(user_id)),
            impressions.cache_key(not_interested_cache_key(user_id, "")),
            counter[0] if counter is not None else list_entry,
            impressions.queue_key(),
            session_entry,
        ],
        args=[
            session_hash,
            counter[1] + 1 if counter is not None else 0,
            counter[2] if counter is not None else "",
            row_start + ",",
            session_digest if check else "",
        ],
    )
    if count == -1:
        setattr(request, _CHANGED_ATTRIBUTE, auth_raw)  # the entry's current bytes (or None)
        return _SESSION_CHANGED
    auth_valid = _auth_matches(auth_raw, session_hash)
    setattr(request, CANDIDATE_ATTRIBUTE, _Candidate(user_id, auth_raw, auth_valid))
    if counter is not None:
        setattr(request, PRECOUNTED_ATTRIBUTE, (counter[0], int(count)))
    if stored is None:
        if counter is not None and int(count) > counter[2]:
            return None  # throttled: DRF answers 429 with its body and Retry-After
        return _realtime(request, client, identity, visitor_id, dict(session), auth_raw, auth_valid)
    _latest, _precomputed, _marks, _impression, head, body = stored.split(b"\n", 5)
    entry = json.loads(head)
    recommendation = recommendation_id.encode()
    cut = entry["cut"]
    response = HttpResponse(body[:cut] + recommendation + body[cut:], status=entry["status"])
    for name, value in entry["headers"]:
        response.headers[name] = value
    impressions.rows_queued(queued)
    setattr(request, SOURCE_ATTRIBUTE, "fastpath")
    return response


def _realtime(
    request: HttpRequest,
    client: Any,
    identity: tuple[Any, str],
    visitor_id: str,
    session: dict,
    auth_raw: bytes | None,
    auth_valid: bool,
) -> HttpResponse | None:
    """No replayable list (a newer event, usually): the real-time lane builds it, then stores it.

    Without a valid cached auth hash the user is authenticated as Django would (the backend's
    ``get_user``, active users only, the session's hash against the user's current one; a
    mismatch, which Django may still accept through ``SECRET_KEY_FALLBACKS`` and then rewrite
    the session, goes to the full stack), and the hash is cached as after a full-stack answer.
    """
    user_id, session_hash = identity
    user = None
    if not auth_valid:
        user = _authenticated_user(user_id, session_hash)
        if user is None:
            return None
    response = lane.answer(request, user_id, visitor_id, session, user=user)
    if response is not None:
        setattr(request, SOURCE_ATTRIBUTE, "lane")
        # one round trip: the service's writes (scored rows, impression), then the replay's
        closing = lane.closing_writes(request)
        try:
            pipe = client.pipeline(transaction=False)
            queued = closing.queue(pipe) if closing is not None else 0
            if user is not None:
                _fill_auth(pipe, user, auth_raw)
            _store_list(pipe, client, request, response, user_id)
            replies = pipe.execute()
        except Exception as exc:  # answered anyway; the next request goes through the lane again
            if closing is not None:
                closing.failed(exc)
            log_once(f"fastpath-lane:{type(exc).__name__}", "Real-time list not stored for replay: %s", exc)
        else:
            if closing is not None:
                closing.written(replies[:queued])
    return response


def _authenticated_user(user_id: Any, session_hash: str) -> Any:
    """The session's user as ``django.contrib.auth.get_user`` accepts it with the primary key, or None."""
    user = load_backend(MODEL_BACKEND).get_user(user_id)
    if user is None or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    return user


# One round trip that decides and records: KEYS auth, marker, stored response, precomputed list,
# marks, throttle counter, impression queue, session entry; ARGV session hash, counter ttl,
# allowed requests ("" = no throttle), the impression row's start, the session entry's expected
# SHA-1 ("" = not checked). Returns {count, auth entry, stored response or false, queue length},
# or {-1, the session entry's bytes} when they changed; the impression is queued only when the
# stored response is served.
# Stored response: latest \n sha1(precomputed) \n sha1(marks) \n impression fields \n head \n body.
_SERVE_LUA = r"""
if ARGV[5] ~= '' then
  local session = redis.call('GET', KEYS[8])
  if (not session) or redis.sha1hex(session) ~= ARGV[5] then return {-1, session, false, 0} end
end
local count = 0
if ARGV[3] ~= '' then
  count = redis.call('INCR', KEYS[6])
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[2]))
  if count > tonumber(ARGV[3]) then return {count, redis.call('GET', KEYS[1]), false, 0} end
end
local auth = redis.call('GET', KEYS[1])
local stored = redis.call('GET', KEYS[3])
if (not auth) or (not stored) then return {count, auth, false, 0} end
local bar = string.find(auth, '|', 1, true)
local current = bar and string.sub(auth, bar + 1) or ''
if current == '' or current ~= ARGV[1] then return {count, auth, false, 0} end
local marker = redis.call('GET', KEYS[2])
local precomputed = redis.call('GET', KEYS[4])
local marks = redis.call('GET', KEYS[5])
if (not marker) or (not precomputed) or (not marks) then return {count, auth, false, 0} end
local p1 = string.find(stored, '\n', 1, true)
local p2 = string.find(stored, '\n', p1 + 1, true)
local p3 = string.find(stored, '\n', p2 + 1, true)
local p4 = string.find(stored, '\n', p3 + 1, true)
if string.sub(stored, 1, p1 - 1) ~= marker
  or string.sub(stored, p1 + 1, p2 - 1) ~= redis.sha1hex(precomputed)
  or string.sub(stored, p2 + 1, p3 - 1) ~= redis.sha1hex(marks) then
  return {count, auth, false, 0}
end
local queued = redis.call('RPUSH', KEYS[7], ARGV[4] .. string.sub(stored, p3 + 1, p4 - 1) .. '}')
return {count, auth, stored, queued}
"""
_scripts: dict[int, Any] = {}


def _serve_script(client: Any) -> Any:
    """The serving script registered with this client (EVALSHA, loaded again if Redis lost it)."""
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_SERVE_LUA)
    return script


def _auth_matches(auth_raw: bytes | None, session_hash: str) -> bool:
    if not auth_raw:
        return False
    _token, _, current_hash = auth_raw.decode().partition("|")
    return bool(current_hash) and constant_time_compare(current_hash, session_hash)


def remember(request: HttpRequest, response: HttpResponse) -> None:
    """After a full-stack answer to a request the fast path let through: store what it lacked."""
    candidate = getattr(request, CANDIDATE_ATTRIBUTE, None)
    if candidate is None or response.status_code != 200 or response.cookies:
        return
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.pk != candidate.user_id:
        return  # Django did not authenticate this session's user: cache nothing
    client = redis_client()
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        if not candidate.auth_valid:
            _fill_auth(pipe, user, candidate.auth_raw)
        _store_list(pipe, client, request, response, user.pk)
        pipe.execute()
    except Exception as exc:
        log_once(f"fastpath-fill:{type(exc).__name__}", "Recommendations fast path not filled: %s", exc)


def _fill_auth(pipe: Any, user: Any, auth_raw: bytes | None) -> None:
    """Cache the user's session auth hash, unless the entry changed since ``auth_raw`` was read."""
    token, _, _ = (auth_raw or b"").decode().partition("|")
    value = f"{token or uuid.uuid4().hex}|{user.get_session_auth_hash()}"
    expected = (auth_raw or b"").decode()
    pipe.eval(_COMPARE_AND_SET_LUA, 1, auth_key(user.pk), expected, value, AUTH_SECONDS)


def _store_list(pipe: Any, client: Any, request: HttpRequest, response: HttpResponse, user_id: Any) -> None:
    reusable = getattr(request, REUSABLE_ATTRIBUTE, None)
    if reusable is None or reusable.user_id != user_id:
        return
    body = bytes(response.content)
    recommendation_id = reusable.result.recommendation_id.encode()
    if body.count(recommendation_id) != 1:
        return
    cut = body.index(recommendation_id)
    head = {"status": response.status_code, "headers": list(response.items()), "cut": cut}
    impression = json.dumps(impressions.list_fields(reusable.result), separators=(",", ":"))[1:-1]
    stored = b"\n".join(
        [
            reusable.latest.encode(),
            *(part.encode() for part in reusable.basis),
            impression.encode(),
            json.dumps(head, separators=(",", ":")).encode(),
            body[:cut] + body[cut + len(recommendation_id) :],
        ]
    )
    pipe.set(list_key(user_id), stored, ex=max(1, reusable.seconds))
    raise_markers(client, {user_id: reusable.latest}, pipeline=pipe)
    lane.remember_template(response)


# --- invalidation -------------------------------------------------------------------------------
def forget_user(user_id: Any) -> None:
    """Replace a user's cached session auth hash with a tombstone (now and after the commit)."""
    client = redis_client()
    if client is None or user_id is None:
        return
    key = auth_key(user_id)

    def bury() -> None:
        try:
            client.set(key, f"{uuid.uuid4().hex}|", ex=AUTH_SECONDS)
        except Exception:
            logger.error("Could not invalidate the cached auth hash of user %s", user_id, exc_info=True)

    bury()
    transaction.on_commit(bury)


def _on_user_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    with contextlib.suppress(Exception):
        forget_user(instance.pk)


def connect() -> None:
    """Connect the user-change receivers (called by ``RecommendationsConfig.ready``)."""
    from django.db.models.signals import post_delete, post_save

    user_model = get_user_model()
    post_save.connect(_on_user_changed, sender=user_model, dispatch_uid="recommendations.fastpath.user_saved")
    post_delete.connect(
        _on_user_changed, sender=user_model, dispatch_uid="recommendations.fastpath.user_deleted"
    )
