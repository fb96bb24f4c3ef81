"""The recommendation API's fast path: same answers as the DRF view, and exactly as strict.

A request the fast path answers runs no SQL query; one it lets through is answered by the
full stack (which then fills the fast path's entries). Every test runs against a real Redis
(``REDIS_TEST_URL``, default db 11) under a key prefix of its own.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from behavior.identity import generation, sign_visitor
from recommendations.models import Impression
from recommendations.services.serving import impressions
from tests.fastpath_modes import fast_path_mode  # noqa: F401

URL = "/api/recommendations/"
# Visitor ids as the server issues them (32 hex digits), sent as signed cookies.
VISITOR = "f" * 31 + "1"
OTHER_VISITOR = "f" * 31 + "2"


def _logged_in(user, visitor=VISITOR) -> Client:
    client = Client(HTTP_USER_AGENT="Mozilla/5.0 (tests)")
    client.force_login(user)
    client.cookies["rec_vid"] = sign_visitor(visitor)
    client.cookies["rec_vgen"] = generation(visitor)  # as a browser holds it after an answer
    return client


def _get(client: Client, **extra):
    """One request: ``(response, SQL queries it ran besides one look-up of the session's user)``.

    Every answer, the fast path's included, reads the user row (a password change or deactivation
    must refuse the next request at once); a replayed answer runs no other query.
    """
    from django.contrib.auth import get_user_model

    table = get_user_model()._meta.db_table
    with CaptureQueriesContext(connection) as captured:
        response = client.get(URL, **extra)
    user_lookups = [q for q in captured if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"]]
    return response, len(captured) - min(1, len(user_lookups))


def _warm(client: Client) -> list:
    """Requests until the fast path answers (it needs the slow path's entries); the slow answers.

    With the fast path off: one request (the full stack answers every one).
    """
    from recommendations.conf import recommender_settings

    if not recommender_settings.FAST_PATH_ENABLED:
        return [_get(client)[0]]
    slow = []
    for _ in range(6):
        response, queries = _get(client)
        if queries == 0:
            return slow
        slow.append(response)
    raise AssertionError("the fast path never answered")


def _without_id(response) -> dict:
    body = dict(response.json())
    body.pop("recommendation_id")
    return body


def _items(response) -> list[str]:
    return [item["item"] for item in response.json()["items"]]


@pytest.mark.django_db
def test_fast_answer_is_the_slow_answer_with_a_new_id(redis_cache, catalogue, user, precomputed):
    # given a fresh precomputed list
    precomputed(user, ["S5", "S6", "S7", "H1", "H2", "H3", "H4", "S1", "S2", "S3", "S4"])
    client = _logged_in(user)
    # when the slow path has filled the fast path's entries
    slow = _warm(client)[-1]
    fast, queries = _get(client)
    again, _ = _get(client)
    impressions.flush()
    # then the fast answer runs no query and matches the view's answer but for its id
    assert queries == 0
    assert fast.status_code == slow.status_code == 200
    assert dict(fast.items()) == dict(slow.items())
    assert fast["Cache-Control"] == "private, no-store"
    assert fast["Vary"] == slow["Vary"]
    assert "Authorization" in fast["Vary"] and "Cookie" in fast["Vary"]
    assert _without_id(fast) == _without_id(slow)
    assert fast.content.replace(fast.json()["recommendation_id"].encode(), b"") == slow.content.replace(
        slow.json()["recommendation_id"].encode(), b""
    )
    assert _items(fast) == ["S5", "S6", "S7", "H1", "H2", "H3", "H4", "S1", "S2", "S3"]
    ids = {
        fast.json()["recommendation_id"],
        again.json()["recommendation_id"],
        slow.json()["recommendation_id"],
    }
    assert len(ids) == 3
    # and every answer has its impression, with the id the shopper got
    rows = {str(row.recommendation_id): row for row in Impression.objects.filter(user=user)}
    assert ids <= set(rows)
    fast_row = rows[fast.json()["recommendation_id"]]
    assert (
        fast_row.item_keys,
        fast_row.visitor_id,
        fast_row.placement,
        fast_row.source,
        fast_row.model_version,
    ) == (
        _items(fast),
        VISITOR,
        "default",
        "personal",
        3,
    )


@pytest.mark.django_db
def test_each_cookie_gets_only_its_own_users_list(redis_cache, catalogue, user, other_user, precomputed):
    # given two users with different lists, both warmed up
    precomputed(user, ["S1", "S2", "S3"])
    precomputed(other_user, ["H1", "H2", "H3"], version=4)
    first, second = _logged_in(user), _logged_in(other_user, OTHER_VISITOR)
    _warm(first)
    _warm(second)
    # when both ask in turns through the fast path
    answers = [_get(client) for client in (first, second, first, second)]
    # then each gets their own list only
    assert [queries for _, queries in answers] == [0, 0, 0, 0]
    assert [_items(response)[:3] for response, _ in answers] == [["S1", "S2", "S3"], ["H1", "H2", "H3"]] * 2
    assert [response.json()["model_version"] for response, _ in answers] == [3, 4, 3, 4]


def _anonymous_answer(client: Client) -> dict:
    response, queries = _get(client)
    assert response.status_code == 200
    assert queries > 0  # the full stack answered
    return response.json()


@pytest.mark.usefixtures("fast_path_mode")
@pytest.mark.django_db
def test_password_change_ends_the_old_session(redis_cache, catalogue, user, precomputed):
    # given a warmed-up session
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    # when the password changes (elsewhere: the session keeps its old hash)
    user.set_password("another-password-123")
    user.save()
    body = _anonymous_answer(client)
    # then Django's answer: the session is no longer the user's
    assert body["source"] != "personal"
    assert _items_of(body)[:3] != ["S1", "S2", "S3"]


def _items_of(body: dict) -> list[str]:
    return [item["item"] for item in body["items"]]


@pytest.mark.usefixtures("fast_path_mode")
@pytest.mark.django_db
def test_logged_out_session_is_never_served(redis_cache, catalogue, user, precomputed):
    # given a warmed-up session whose cookie is kept after logout
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    cookie = client.cookies["sessionid"].value
    # when the shopper logs out and the old cookie is sent again
    client.logout()
    client.cookies["sessionid"] = cookie
    body = _anonymous_answer(client)
    # then
    assert body["source"] != "personal"


@pytest.mark.usefixtures("fast_path_mode")
@pytest.mark.django_db
@pytest.mark.parametrize("change", ["deactivate", "delete"])
def test_inactive_or_deleted_user_is_not_served(redis_cache, catalogue, user, precomputed, change):
    # given a warmed-up session
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    impressions.flush()  # rows naming the user are written before it goes
    # when the user is deactivated or deleted
    if change == "deactivate":
        user.is_active = False
        user.save()
    else:
        user.delete()
    body = _anonymous_answer(client)
    # then
    assert body["source"] != "personal"
    assert _items_of(body)[:3] != ["S1", "S2", "S3"]


@pytest.mark.usefixtures("fast_path_mode")
@pytest.mark.django_db
@pytest.mark.parametrize("tamper", ["other-key", "one-character", "uppercase", "too-long"])
def test_tampered_session_cookie_is_not_served(redis_cache, catalogue, user, precomputed, tamper):
    # given a warmed-up session
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    key = client.cookies["sessionid"].value
    # when the cookie is changed
    forged = {
        "other-key": uuid.uuid4().hex,
        "one-character": key[:-1] + ("a" if key[-1] != "a" else "b"),
        "uppercase": key.upper(),
        "too-long": key + "0",
    }[tamper]
    client.cookies["sessionid"] = forged
    body = _anonymous_answer(client)
    # then
    assert body["source"] != "personal"


def _edit_session(client: Client, edit) -> None:
    """Change the stored session behind the client's cookie (as another request of it would)."""
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore(client.cookies["sessionid"].value)
    edit(store)
    store.save()


@pytest.mark.usefixtures("fast_path_mode")
@pytest.mark.django_db
@pytest.mark.parametrize(
    "edit",
    [
        lambda store: store.pop("_auth_user_hash"),
        lambda store: store.__setitem__("_auth_user_hash", ""),
        lambda store: store.__setitem__("_auth_user_backend", "tests.NoSuchBackend"),
    ],
    ids=["no-hash", "empty-hash", "unknown-backend"],
)
def test_session_without_hash_or_of_another_backend_goes_to_django(
    redis_cache, catalogue, user, precomputed, edit
):
    # given a warmed-up session that Django no longer treats as logged in
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    _edit_session(client, edit)
    # when / then
    body = _anonymous_answer(client)
    assert body["source"] != "personal"


@pytest.mark.django_db
def test_a_new_event_sends_the_next_request_to_the_real_time_path(
    redis_cache, active_model, user, precomputed, django_capture_on_commit_callbacks
):
    # given a warmed-up session with a fresh precomputed list
    from behavior.services.ingest import ingest_events
    from recommendations.services.serving import recommend_for
    from shop.models import Product

    precomputed(user, ["S5", "S6", "S7", "S8"], version=99)
    client = _logged_in(user)
    _warm(client)
    # when the shopper views hats (stored through the ingest path, signal after commit)
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest_events(
            [{"event_type": "view", "item": Product.objects.get(sku=f"H{i}")} for i in range(3)],
            user=user,
            trusted=True,
        )
    response, queries = _get(client)
    # then the full stack answers from the network, as the service does
    assert result.accepted == 3
    assert queries > 0
    body = response.json()
    assert body["model_version"] == active_model.version_number
    assert body["source"] == "personal"
    assert _items(response) == recommend_for(user=user, limit=10).keys
    assert not {"H0", "H1", "H2"} & set(_items(response))
    # and the next request replays that real-time list (same inputs) without a query
    replay, replay_queries = _get(client)
    assert replay_queries == 0
    assert _without_id(replay) == _without_id(response)


@pytest.mark.django_db
def test_not_interested_and_a_new_precomputed_list_show_at_once(redis_cache, catalogue, user, precomputed):
    # given a warmed-up session
    precomputed(user, ["S1", "S2", "S3", "S4"])
    client = _logged_in(user)
    _warm(client)
    # when an item is marked "not interested", then a new list is precomputed
    client.post("/api/recommendations/not-interested/", {"item": "S1"}, content_type="application/json")
    after_mark, _ = _get(client)
    precomputed(user, ["H5", "H6", "H7"], version=5)
    from django.core.cache import cache

    from recommendations.services.serving.state import precomputed_cache_key

    cache.delete(precomputed_cache_key(user.pk))  # as the refresh replaces the cached list
    after_refresh = [_get(client)[0] for _ in range(3)]
    # then
    assert _items(after_mark)[:3] == ["S2", "S3", "S4"]
    assert all(_items(response)[:3] == ["H5", "H6", "H7"] for response in after_refresh)
    assert after_refresh[-1].json()["model_version"] == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "extra",
    [
        {"QUERY_STRING": "limit=10"},
        {"QUERY_STRING": "placement=default"},
        {"HTTP_AUTHORIZATION": "Basic bm9ib2R5Om5vdGhpbmc="},
        {"HTTP_ACCEPT": "application/json; indent=4"},
    ],
)
def test_requests_it_does_not_handle_identically_go_to_django(
    redis_cache, catalogue, user, precomputed, extra
):
    # given a warmed-up session
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    # when / then
    response, queries = _get(client, **extra)
    assert queries > 0
    assert response.status_code in {200, 401, 403}


@pytest.mark.django_db
def test_a_cart_in_the_session_goes_to_django(redis_cache, catalogue, user, precomputed):
    # given a warmed-up session, then a cart
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    _edit_session(client, lambda store: store.__setitem__("cart", {"S1": 1}))
    # when
    response, queries = _get(client)
    # then the carted item is left out by the full stack
    assert queries > 0
    assert _items(response)[:2] == ["S2", "S3"]


@pytest.mark.django_db
def test_throttle_counts_fast_and_slow_requests_once(redis_cache, catalogue, user, precomputed, monkeypatch):
    # given 5 requests a minute
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"recommendations": "5/min"})
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    # when 7 requests are made (slow ones while warming up, then fast ones)
    statuses = [client.get(URL).status_code for _ in range(7)]
    # then exactly 5 are allowed and the sixth gets DRF's 429
    assert statuses == [200] * 5 + [429, 429]
    refused = client.get(URL)
    assert refused.status_code == 429
    assert "Retry-After" in refused


@pytest.mark.django_db
def test_redis_unavailable_still_answers_correctly(redis_cache, catalogue, user, precomputed, settings):
    # given a warmed-up session
    precomputed(user, ["S5", "S6", "S7"])
    client = _logged_in(user)
    _warm(client)
    fast, _ = _get(client)
    # when Redis goes away (nothing listens on the cache's port any more)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
            "KEY_PREFIX": redis_cache,
        }
    }
    response, queries = _get(client)
    # then the database answers with the same list (sessions are cached_db)
    assert response.status_code == 200
    assert queries > 0
    assert _items(response) == _items(fast)
    assert response.json()["source"] == "personal"


@pytest.mark.django_db
def test_anonymous_and_missing_cache_entries_go_to_django(redis_cache, catalogue):
    # given a browser without a session
    client = Client(HTTP_USER_AGENT="Mozilla/5.0 (tests)")
    # when
    response, queries = _get(client)
    # then
    assert response.status_code == 200
    assert queries > 0
    assert response.json()["source"] != "personal"
    assert AnonymousUser().is_authenticated is False


@pytest.mark.django_db
def test_stored_entry_is_not_served_for_another_user(redis_cache, catalogue, user, other_user, precomputed):
    # given the first user's stored response copied under the second user's key (a cache mix-up)
    from django.core.cache import caches

    from recommendations.fastpath import replay as fastpath

    precomputed(user, ["S1", "S2", "S3"])
    precomputed(other_user, ["H1", "H2", "H3"])
    first, second = _logged_in(user), _logged_in(other_user, OTHER_VISITOR)
    _warm(first)
    _warm(second)
    client = caches["default"]._cache.get_client(None, write=True)
    client.set(fastpath.list_key(other_user.pk), client.get(fastpath.list_key(user.pk)))
    # when the second user asks
    response, queries = _get(second)
    # then the entry's basis (the second user's own precomputed list) does not match
    assert queries > 0
    assert _items(response)[:3] == ["H1", "H2", "H3"]
    assert json.loads(response.content)["source"] == "personal"


@pytest.mark.django_db
def test_history_merged_at_login_sends_the_next_request_to_django(
    redis_cache, catalogue, user, precomputed, django_capture_on_commit_callbacks
):
    # given a warmed-up session, and anonymous views of the same browser made after the list
    from behavior.services.identity import merge_visitor_into_user
    from behavior.services.ingest import ingest_events

    precomputed(user, ["S5", "S6", "S7"])
    client = _logged_in(user)
    _warm(client)
    ingest_events(
        [{"event_type": "view", "item": "H1"}], visitor_id="visitor-anon-0001", user_agent="Mozilla/5.0"
    )
    # when they become the user's at login (signal after the commit)
    with django_capture_on_commit_callbacks(execute=True):
        merged = merge_visitor_into_user("visitor-anon-0001", user)
    response, queries = _get(client)
    # then the list is rebuilt by the full stack from the merged history
    assert merged == 1
    assert queries > 0
    assert "H1" not in _items(response)


@pytest.mark.usefixtures("fast_path_mode")
@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [{"password": "pbkdf2_sha256$1$x$changed-elsewhere"}, {"is_active": False}],
    ids=["password", "is_active"],
)
def test_an_update_without_signals_refuses_the_next_request(
    redis_cache, catalogue, user, precomputed, change
):
    # given a warmed-up session (with the fast path on, its answers replayed from Redis)
    from django.contrib.auth import get_user_model

    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    assert _items(_get(client)[0])[:3] == ["S1", "S2", "S3"]
    # when the password or the active flag changes through QuerySet.update() (no signal, no save)
    get_user_model().objects.filter(pk=user.pk).update(**change)
    # then the very next request is refused the user's list, exactly as the full stack refuses it
    body = _anonymous_answer(client)
    assert body["source"] != "personal"
    assert _items_of(body)[:3] != ["S1", "S2", "S3"]


@pytest.mark.django_db
def test_a_replayed_list_never_outlives_the_catalogue_check(redis_cache, catalogue, user, precomputed):
    # given a warmed-up session and a catalogue snapshot whose availability was checked 25 s ago
    import dataclasses
    import time

    from django.core.cache import caches

    from recommendations.fastpath import replay
    from recommendations.services.serving import catalogue as snapshots

    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    held = dict(snapshots._snapshots)
    assert held, "the list was assembled against the snapshot"
    for key, snapshot in held.items():
        snapshots._snapshots[key] = dataclasses.replace(snapshot, checked=time.monotonic() - 25)
    redis = caches["default"]._cache.get_client(None, write=True)
    redis.delete(replay.list_key(user.pk))
    for key in redis.scan_iter(match="*rec:list:*"):
        redis.delete(key)
    # when the list is assembled again and stored for replay
    response, _ = _get(client)
    assert response.status_code == 200
    # then neither the stored response nor the reused list lives past the snapshot's 30 s: an item
    # deactivated with QuerySet.update() just after that check leaves every answer within 30 s
    assert 0 < redis.ttl(replay.list_key(user.pk)) <= 5
    assembled = list(redis.scan_iter(match="*rec:list:*"))
    assert assembled and all(0 < redis.ttl(key) <= 5 for key in assembled)


@pytest.mark.django_db
def test_each_language_gets_reasons_in_its_own_words(
    redis_cache, catalogue, user, precomputed, settings, monkeypatch
):
    # given the locale middleware, two languages, and a catalogue that words each message per language
    from django.utils import translation

    from recommendations.services.serving import explain

    settings.LANGUAGES = [("en-us", "English"), ("zh-hans", "Chinese")]
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(
        middleware.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
        "django.middleware.locale.LocaleMiddleware",
    )
    settings.MIDDLEWARE = middleware
    monkeypatch.setattr(explain, "gettext", lambda message: f"<{translation.get_language()}> {message}")
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    # when the shopper asks in Chinese until the answer is replayed, then in English again
    chinese = [_get(client, HTTP_ACCEPT_LANGUAGE="zh-hans") for _ in range(4)]
    english, _ = _get(client)

    def reasons(response) -> set[str]:
        return {item["reason"].split(">")[0] + ">" for item in response.json()["items"]}

    # then every answer is worded, and labelled, in the language asked for, the replays included
    assert chinese[-1][1] == 0  # replayed from Redis
    assert {reasons(response).pop() for response, _ in chinese} == {"<zh-hans>"}
    assert {response["Content-Language"] for response, _ in chinese} == {"zh-hans"}
    assert reasons(english) == {"<en-us>"} and english["Content-Language"] == "en-us"


@pytest.mark.django_db
def test_a_missing_generation_cookie_goes_to_django_which_sets_it(redis_cache, catalogue, user, precomputed):
    # given a warmed-up session whose browser then lost the visitor's generation cookie alone
    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    del client.cookies["rec_vgen"]
    # when it asks again
    response, queries = _get(client)
    # then the full stack answers, and its answer sets the cookie again, as for any other page
    assert queries > 0
    assert response.cookies["rec_vgen"].value
    # and with the cookie back, the fast path answers again
    assert _get(client)[1] == 0


@pytest.mark.django_db
def test_an_api_without_session_authentication_answers_the_cookie_as_anonymous(
    redis_cache, catalogue, user, precomputed, monkeypatch
):
    # given a warmed-up session, then an API that authenticates by Basic credentials only
    from rest_framework.authentication import BasicAuthentication

    from recommendations.api.views import RecommendationsView

    precomputed(user, ["S1", "S2", "S3"])
    client = _logged_in(user)
    _warm(client)
    monkeypatch.setattr(RecommendationsView, "authentication_classes", [BasicAuthentication])
    # when the session cookie alone asks
    body = _anonymous_answer(client)
    # then the answer is the full stack's anonymous one, not the session user's list
    assert body["source"] != "personal"


@pytest.mark.django_db
def test_a_replayed_answer_keeps_the_merchandising_and_records_its_rules(
    redis_cache, catalogue, user, precomputed, rule_factory
):
    # given a pin on the API's list, held by this process
    from recommendations.services.merchandising.rules import forget_rules

    precomputed(user, ["S1", "S2", "S3", "S4", "S5"])
    rule = rule_factory(action="pin", item_key="H2", position=1, placement="default")
    forget_rules()
    client = _logged_in(user)
    # when the fast path replays the list
    slow = _warm(client)[-1]
    fast, queries = _get(client)
    impressions.flush()
    # then the replay is the merchandised list, and its impression names the rule
    assert queries == 0
    assert _items(fast) == _items(slow)
    assert _items(fast)[:6] == ["H2", "S1", "S2", "S3", "S4", "S5"]
    row = Impression.objects.get(recommendation_id=fast.json()["recommendation_id"])
    assert row.merchandising_rule_ids == [rule.pk]
