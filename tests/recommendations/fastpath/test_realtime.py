"""The fast path's real-time lane: the full stack's answer after a new event, without the stack.

Each test compares the lane's answer with the full stack's (the DRF view behind the session
and authentication middleware) for the same state, against a real Redis.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches

from recommendations.fastpath import realtime as lane
from recommendations.fastpath import replay as fastpath
from recommendations.models import Impression
from recommendations.services.serving import impressions
from recommendations.services.serving.state import mark_not_interested
from tests.recommendations.fastpath.test_precomputed import (
    OTHER_VISITOR,
    URL,
    _get,
    _items,
    _logged_in,
    _warm,
    _without_id,
)


@pytest.fixture
def lane_calls(monkeypatch):
    """Whether each lane call answered (True) or stepped aside (False)."""
    calls: list[bool] = []
    original = lane.answer

    def spy(*args, **kwargs):
        response = original(*args, **kwargs)
        calls.append(response is not None)
        return response

    monkeypatch.setattr(lane, "answer", spy)
    return calls


def _view(user, skus, capture, event_type="view"):
    """Events stored through the ingest path, with the after-commit signals run."""
    from behavior.services.ingest import ingest_events
    from shop.models import Product

    with capture(execute=True):
        result = ingest_events(
            [{"event_type": event_type, "item": Product.objects.get(sku=sku)} for sku in skus],
            user=user,
            trusted=True,
        )
    assert result.accepted == len(skus)


def _redis():
    return caches["default"]._cache.get_client(None, write=True)


def _full_stack(client, user, monkeypatch):
    """The answer of the full stack for the current state: no replay, no lane, no cached scoring."""
    redis = _redis()
    redis.delete(fastpath.list_key(user.pk))
    for key in redis.scan_iter(match="*rec:rt:*"):
        redis.delete(key)
    with monkeypatch.context() as patch:
        patch.setattr(lane, "answer", lambda *args, **kwargs: None)
        response, queries = _get(client)
    redis.delete(fastpath.list_key(user.pk))
    return response, queries


@pytest.fixture
def shopper(
    redis_cache, active_model, user, precomputed, product_factory, django_capture_on_commit_callbacks
):
    """A logged-in shopper with a purchase, a "not interested" mark, an out-of-stock and inactive
    items, new items the model never saw, a warmed-up session, then newer views (real-time)."""
    from shop.models import Category, Product

    shoes = Category.objects.get(slug="shoes")
    for i in range(4):
        product_factory(sku=f"N{i}", name=f"New shoe {i}", category=shoes)
    _view(user, ["S3"], django_capture_on_commit_callbacks, event_type="purchase")
    mark_not_interested(user_id=user.pk, visitor_id="", item_key="S5")
    sold_out = Product.objects.get(sku="S6")
    sold_out.stock = 0
    sold_out.save()
    for sku in ("S0", "S8", "S9", "H7", "H8", "H9"):
        product = Product.objects.get(sku=sku)
        product.is_active = False
        product.save()
    precomputed(user, ["S1", "S2", "H1"], version=active_model.version_number)
    client = _logged_in(user)
    _warm(client)
    _view(user, ["S1", "S2", "S4"], django_capture_on_commit_callbacks)
    return client


@pytest.mark.django_db
def test_lane_answer_equals_the_full_stack_with_rules_and_fallbacks(shopper, user, lane_calls, monkeypatch):
    # when the shopper asks after their new events
    fast, fast_queries = _get(shopper)
    slow, slow_queries = _full_stack(shopper, user, monkeypatch)
    impressions.flush()
    # then the lane answered, with fewer queries than the full stack
    assert lane_calls == [True]
    assert fast_queries < slow_queries
    # and its answer is the full stack's: status, headers, body but for the id
    assert fast.status_code == slow.status_code == 200
    assert dict(fast.items()) == dict(slow.items())
    assert _without_id(fast) == _without_id(slow)
    body = fast.json()
    assert body["source"] == "personal"
    # the rules held: no purchase, mark, sold-out, inactive or just-viewed item; the list ran
    # short of the network's items and the fallbacks filled it
    keys = _items(fast)
    assert len(keys) == 10
    assert not {"S3", "S5", "S6", "S0", "S8", "S9", "H7", "H8", "H9", "S1", "S2", "S4"} & set(keys)
    assert {item["source"] for item in body["items"]} >= {"personal", "popular"}
    assert all(item["reason"] for item in body["items"])
    # and the answer has its impression
    row = Impression.objects.get(recommendation_id=body["recommendation_id"])
    assert (row.user_id, row.item_keys, row.source) == (user.pk, keys, "personal")


@pytest.mark.django_db
def test_a_new_event_changes_the_next_lane_answer(
    shopper, user, lane_calls, django_capture_on_commit_callbacks
):
    # given the lane's answer, replayed while nothing changes
    first, _ = _get(shopper)
    replay, replay_queries = _get(shopper)
    assert replay_queries == 0 and _without_id(replay) == _without_id(first)
    # when the shopper views the first recommended item
    viewed = _items(first)[0]
    _view(user, [viewed], django_capture_on_commit_callbacks)
    second, _ = _get(shopper)
    # then the lane answers again, without that item
    assert lane_calls == [True, True]
    assert viewed not in _items(second)
    assert second.json()["source"] == "personal"


@pytest.mark.django_db
def test_an_item_sold_out_leaves_the_next_answer_at_once(
    shopper, user, lane_calls, django_capture_on_commit_callbacks
):
    # given the lane's answer
    from shop.models import Product

    first, _ = _get(shopper)
    # when its first item sells out (saved in a transaction), and the shopper views another item
    gone = Product.objects.get(sku=_items(first)[0])
    with django_capture_on_commit_callbacks(execute=True):
        gone.stock = 0
        gone.save()
    _view(user, ["H2"], django_capture_on_commit_callbacks)
    second, _ = _get(shopper)
    # then the item is no longer offered
    assert lane_calls == [True, True]
    assert gone.sku not in _items(second)


@pytest.mark.django_db
def test_each_session_gets_its_own_users_lane_answer(
    redis_cache, active_model, user, other_user, precomputed, lane_calls, django_capture_on_commit_callbacks
):
    # given two warmed-up shoppers, one into shoes and one into hats
    from recommendations.services.serving import recommend_for

    precomputed(user, ["S1"], version=active_model.version_number)
    precomputed(other_user, ["H1"], version=active_model.version_number)
    first, second = _logged_in(user), _logged_in(other_user, OTHER_VISITOR)
    _warm(first)
    _warm(second)
    lane_calls.clear()
    answers = []
    for round_ in range(2):
        # when each views new items and asks, in turns
        _view(user, [f"S{2 + round_}"], django_capture_on_commit_callbacks)
        _view(other_user, [f"H{2 + round_}"], django_capture_on_commit_callbacks)
        mine, theirs = _get(first)[0], _get(second)[0]
        expected = recommend_for(user=user, limit=10).keys, recommend_for(user=other_user, limit=10).keys
        answers.append(((_items(mine), _items(theirs)), expected))
    # then every answer came from the lane and is that user's own list
    assert lane_calls == [True] * 4
    for got, expected in answers:
        assert got == expected
        assert got[0] != got[1]


def _counter_key(throttle_class, user_id) -> str:
    """The Redis key of a signed-in user's "recommendations" counter in this minute."""
    from recommendations.services import personal_keys

    throttle = throttle_class()
    throttle.scope = "recommendations"
    _requests, duration = throttle.parse_rate(throttle.get_rate())
    base = throttle.cache_format % {"scope": "recommendations", "ident": user_id}
    return throttle.make_key(personal_keys.throttle_counter_key(base, int(throttle.timer() // duration)))


@pytest.mark.django_db
def test_lane_steps_aside_for_a_cart_a_query_or_a_throttle(shopper, user, lane_calls, monkeypatch):
    # given 1 more request allowed this minute
    from rest_framework.throttling import ScopedRateThrottle

    from recommendations.api.views import CounterScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"recommendations": "3/min"})
    _redis().set(_counter_key(CounterScopedRateThrottle, user.pk), 2, ex=60)
    # when the shopper asks with a query string, then twice plainly
    with_query = shopper.get(URL + "?limit=5")
    plain = shopper.get(URL)
    refused = shopper.get(URL)
    # then the query goes to the full stack (counted), and the throttle refuses the next ones
    assert with_query.status_code == 200 and len(with_query.json()["items"]) == 5
    assert (plain.status_code, refused.status_code) == (429, 429)
    assert lane_calls == []


@pytest.mark.parametrize("version", [None, 7])
def test_list_body_equals_the_serializer(version):
    # given a served list (a model version or none, scores as floats and numpy-like numbers)
    import numpy as np
    from rest_framework.renderers import JSONRenderer

    from recommendations.api import serializers as s
    from recommendations.services.serving.types import RecommendationResult, RecommendedItem

    result = RecommendationResult("id-1", version, "personal", "home")
    for position, score in enumerate([0.5, np.float32(0.25), 1, 1e-9], start=1):
        result.items.append(
            RecommendedItem(f"K{position}", None, score, "because", position, "popular", "Näme", "/p/x/")
        )
    # when
    got, expected = s.recommendation_list_data(result), s.RecommendationListSerializer(result).data
    # then the same values in the same order, rendered to the same bytes
    assert got == expected
    assert JSONRenderer().render(got) == JSONRenderer().render(expected)


@pytest.mark.django_db
def test_a_session_not_yet_seen_is_authenticated_by_the_lane(
    redis_cache, active_model, user, other_user, precomputed, lane_calls, django_capture_on_commit_callbacks
):
    # given a template from another shopper's full-stack answer, and a fresh login of this user
    precomputed(other_user, ["S1"])
    _warm(_logged_in(other_user, OTHER_VISITOR))
    precomputed(user, ["S1"], version=active_model.version_number)
    _view(user, ["H1"], django_capture_on_commit_callbacks)
    client = _logged_in(user)
    lane_calls.clear()
    # when the user asks for the first time, then again (their marks now cached), then once more
    first, first_queries = _get(client)
    second, _ = _get(client)
    again, again_queries = _get(client)
    # then the lane authenticated them (one user query) and answered; then the list is replayed
    assert lane_calls == [True, True]
    assert first.status_code == 200 and first.json()["source"] == "personal"
    assert _without_id(second) == _without_id(first)
    assert again_queries == 0 and _without_id(again) == _without_id(first)
    assert first_queries >= 1
    # and a session whose hash no longer matches is left to Django (which logs it out)
    user.set_password("another-password-123")
    user.save()
    _view(user, ["H2"], django_capture_on_commit_callbacks)
    after, _ = _get(client)
    assert lane_calls == [True, True]  # the user row's hash did not match: the lane was not asked
    assert after.json()["source"] != "personal"


@pytest.fixture
def round_trips(monkeypatch):
    """Requests sent to Redis (a pipeline is one), counted per call of ``count()``."""
    from redis.connection import AbstractConnection

    sent: list[int] = [0]
    original = AbstractConnection.send_packed_command

    def spy(self, *args, **kwargs):
        sent[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", spy)
    return sent


@pytest.mark.django_db
def test_a_lane_answer_costs_five_redis_round_trips(shopper, user, lane_calls, round_trips):
    # when the shopper asks after their new events
    round_trips[0] = 0
    response, _ = _get(shopper)
    # then: the session entry, the throttle's counter, the replay script (nothing to replay),
    # the shopper's cache entries (the popularity stamp of the fallbacks among them), and one
    # closing pipeline that holds the scored rows, the impression and the stored answer
    assert lane_calls == [True]
    assert round_trips[0] == 5
    redis = _redis()
    assert len(list(redis.scan_iter(match="*rec:rt:u:*"))) == 1
    assert redis.get(fastpath.list_key(user.pk)) is not None
    impressions.flush()
    row = Impression.objects.get(recommendation_id=response.json()["recommendation_id"])
    assert (row.user_id, row.item_keys) == (user.pk, _items(response))


@pytest.mark.django_db
def test_impressions_survive_a_failed_closing_pipeline(shopper, user, lane_calls, monkeypatch):
    # given a Redis that fails the lane's closing pipeline (its other round trips work)
    from redis.client import Pipeline
    from redis.exceptions import ConnectionError as RedisConnectionError

    def broken(self, *args, **kwargs):
        raise RedisConnectionError("closing pipeline lost")

    _redis().delete(fastpath.list_key(user.pk))  # the warm-up's stored answer
    # when the shopper asks after their new events
    with monkeypatch.context() as patch:
        patch.setattr(Pipeline, "execute", broken)
        response, _ = _get(shopper)
    # then the answer is served, nothing is stored for replay, and the impression is kept in
    # this process and written with the next flush
    assert lane_calls == [True] and response.status_code == 200
    assert _redis().get(fastpath.list_key(user.pk)) is None
    impressions.flush()
    row = Impression.objects.get(recommendation_id=response.json()["recommendation_id"])
    assert row.item_keys == _items(response)


@pytest.mark.django_db
def test_a_failing_lane_leaves_the_full_stack_a_clean_request(shopper, user, monkeypatch):
    # given a lane whose rendering fails after the service recorded its list
    import dataclasses

    class BrokenRenderer:
        def render(self, *args, **kwargs):
            raise RuntimeError("rendering failed")

    language = next(iter(lane._templates))
    template = dataclasses.replace(lane._templates[language], renderer=BrokenRenderer())
    monkeypatch.setitem(lane._templates, language, template)
    impressions.flush()
    before = Impression.objects.count()
    # when the shopper asks after their new events
    response, _ = _get(shopper)
    impressions.flush()
    # then the full stack answered, with the one impression of the list it served
    assert response.status_code == 200 and response.json()["source"] == "personal"
    assert Impression.objects.count() == before + 1
    assert Impression.objects.filter(recommendation_id=response.json()["recommendation_id"]).exists()
