"""Erasure leaves no key of the person in Redis: found by scanning Redis, not from a list.

A shopper browses anonymously, marks an item, logs in, buys, gets recommendations through
the full stack, the real-time lane and the fast path's replay, then logs out. Every key of
the Redis database is then read (names and values) and those naming the person are counted:
before the erasure there must be many (or the scan proves nothing), after it none.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.core.cache import caches
from django.test import Client

from behavior.conf import behavior_settings
from behavior.identity import read_visitor, sign_visitor
from behavior.models import Event
from recommendations.models import Impression, NotInterested
from recommendations.services.privacy import forget_user
from recommendations.services.serving import impressions

pytestmark = pytest.mark.django_db

PASSWORD = "Erasure-pass-9321"
# A user id no other row or key of the suite uses, so a match means this person.
SUBJECT_ID = 987_654_321


def _redis():
    return caches["default"]._cache.get_client(None, write=True)


def _values(client, key: bytes) -> list[bytes]:
    kind = client.type(key).decode()
    if kind == "string":
        return [client.get(key) or b""]
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return list(client.smembers(key))
    if kind == "hash":
        return [b"%s=%s" % pair for pair in client.hgetall(key).items()]
    if kind == "zset":
        return [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
    return []


def _keys_of(person: dict) -> dict[str, list[str]]:
    """Every key of the whole Redis database whose name or value names the person: key -> why."""
    client = _redis()
    number = re.compile(rb"(?<![0-9])" + str(person["id"]).encode() + rb"(?![0-9])")
    texts = [text.encode() for text in (person["username"], person["email"], *person["visitors"])]
    found: dict[str, list[str]] = {}
    for key in client.scan_iter(count=1000):
        reasons = []
        if number.search(key) or any(text in key for text in texts):
            reasons.append("name")
        for value in _values(client, key):
            if any(text in value for text in texts):
                reasons.append("value")
            # JSON rows (the impression queue) name users by number
            if re.search(rb'"user_id":\s*' + str(person["id"]).encode() + rb"\b", value):
                reasons.append("json user_id")
        if reasons:
            found[key.decode(errors="replace")] = reasons
    return found


def _family(key: str, prefix: str) -> str:
    """``rec:rt:u`` for ``<prefix>:1:rec:rt:u:987654321:...``: what kind of key it is."""
    name = key.split(f"{prefix}:1:", 1)[-1]
    return re.split(r"[:_](?=[0-9a-f]{32}\b|" + str(SUBJECT_ID) + r"\b)", name)[0]


def _visitor_of(client: Client) -> str:
    visitor = read_visitor(client.cookies[behavior_settings.VISITOR_COOKIE_NAME].value)
    assert visitor is not None
    return visitor.id


@pytest.fixture
def shopping_session(redis_cache, active_model, user_factory, precomputed, settings):
    """A whole visit of one shopper; returns what identifies them."""
    # impressions stay queued in Redis (a worker writes them every IMPRESSION_FLUSH_SECONDS)
    settings.RECOMMENDER = {**settings.RECOMMENDER, "IMPRESSION_FLUSH_SECONDS": 3600}
    impressions.flush()
    user = user_factory(id=SUBJECT_ID, username=f"erasure-{uuid.uuid4().hex[:8]}", email="gone@example.com")
    user.set_password(PASSWORD)
    user.save()
    browser = Client(HTTP_USER_AGENT="Mozilla/5.0 (tests)")
    anonymous = uuid.uuid4().hex
    browser.cookies[behavior_settings.VISITOR_COOKIE_NAME] = sign_visitor(anonymous)

    # anonymous: two product pages, recommendations, a "not interested" mark, a cart
    for sku in ("S1", "S2"):
        assert browser.get(f"/p/{sku}/").status_code == 200
    assert browser.get("/api/recommendations/").status_code == 200
    marked = browser.post(
        "/api/recommendations/not-interested/", {"item": "S3"}, content_type="application/json"
    )
    assert marked.status_code == 201
    assert browser.get("/api/recommendations/").status_code == 200
    assert browser.post("/cart/add/", {"sku": "S4", "quantity": "1"}).status_code == 302

    # logs in (the anonymous history is merged, a new visitor id issued) and buys
    assert (
        browser.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
    )
    signed_in = _visitor_of(browser)
    assert browser.post("/checkout/", {"email": "gone@example.com"}).status_code == 302
    assert browser.get("/p/H1/").status_code == 200
    beacon = {"event_type": "view", "item": "H2", "event_id": str(uuid.uuid4())}
    assert browser.post("/api/events/", beacon, content_type="application/json").status_code == 202

    # signed-in recommendations: full stack, real-time lane, replay; a mark of the user
    precomputed(user, ["H3", "H4", "H5", "S5", "S6"], version=active_model.version_number)
    for _ in range(4):
        assert browser.get("/api/recommendations/").status_code == 200
    marked = browser.post(
        "/api/recommendations/not-interested/", {"item": "H5"}, content_type="application/json"
    )
    assert marked.status_code == 201
    for _ in range(3):
        assert browser.get("/api/recommendations/").status_code == 200
    assert browser.post("/accounts/logout/").status_code == 302
    return {
        "user": user,
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "visitors": [anonymous, signed_in],
        "prefix": redis_cache,
    }


def test_erasure_leaves_no_key_of_the_person_in_redis(shopping_session):
    person = shopping_session
    before = _keys_of(person)
    families = {_family(key, person["prefix"]) for key in before}
    queued = [
        json.loads(raw)
        for raw in _redis().lrange(impressions.queue_key(), 0, -1)
        if json.loads(raw)["user_id"] == person["id"] or json.loads(raw)["visitor_id"] in person["visitors"]
    ]

    # when
    result = forget_user(person["user"], requested_by="test")
    impressions.flush()

    # then: the scan found the person's keys before, and finds none after
    assert len(families) >= 8, sorted(before)
    assert {"rec:pre", "rec:fast", "rec:latest:u", "rec:bought", "rec:ni:u", "rec:ni:v"} <= families
    assert queued, "the session left no impression in the queue"
    assert _keys_of(person) == {}
    assert result.cache_keys >= len(before) - 1  # all but the shared queue (cleaned, not deleted)
    assert not Impression.objects.filter(user_id=person["id"]).exists()
    assert not Impression.objects.filter(visitor_id__in=person["visitors"]).exists()
    assert not Event.objects.filter(user_id=person["id"]).exists()
    assert not NotInterested.objects.filter(user_id=person["id"]).exists()


def _queue_impression(*, user_id: int | None, visitor_id: str) -> None:
    row = {"recommendation_id": str(uuid.uuid4()), "user_id": user_id, "visitor_id": visitor_id}
    row |= {"placement": "home", "model_version": None, "item_keys": ["S1"], "source": "popular"}
    impressions.push({**row, "created_at": "2026-01-01T00:00:00+00:00"}, deferred=True)


def test_an_impression_taken_from_the_queue_before_the_erasure_is_not_written_after_it(
    redis_cache, catalogue, user_factory
):
    # given: rows of the person and of someone else, taken from the queue by a worker that has
    # not written them yet when the erasure runs
    person, bystander = user_factory(), user_factory()
    visitor = uuid.uuid4().hex
    rows = [
        {"user_id": person.pk, "visitor_id": ""},
        {"user_id": None, "visitor_id": visitor},
        {"user_id": bystander.pk, "visitor_id": ""},
    ]
    Event.objects.create(event_type="view", user=person, visitor_id=visitor, item=catalogue["shoes"][0])
    for row in rows:
        _queue_impression(**row)
    taken = impressions._take_queued()

    # when
    forget_user(person, requested_by="test")
    written = impressions.write_taken(taken)

    # then: only the bystander's row is written
    assert len(taken) == 3
    assert written == 1
    assert list(Impression.objects.values_list("user_id", flat=True)) == [bystander.pk]


def test_erasure_takes_the_persons_rows_out_of_the_queue_and_keeps_the_others(redis_cache, user_factory):
    # given
    person, bystander = user_factory(), user_factory()
    for user in (person, bystander, person):
        _queue_impression(user_id=user.pk, visitor_id="")

    # when
    removed = impressions.forget(person.pk, [])

    # then
    assert removed == 2
    left = [json.loads(raw)["user_id"] for raw in _redis().lrange(impressions.queue_key(), 0, -1)]
    assert left == [bystander.pk]
