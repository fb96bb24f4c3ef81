"""``behavior.tracking.record_event``: the helper the shop's views call."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory

from behavior.models import Event
from behavior.tracking import record_event

pytestmark = [pytest.mark.swappable, pytest.mark.django_db]


def _request(user=None, *, may_track=True, agent="Mozilla/5.0 Firefox/120.0"):
    request = RequestFactory().get("/p/", HTTP_USER_AGENT=agent)
    request.user = user or AnonymousUser()
    request.session = SessionStore()
    request.visitor_id = "visitor-0042"
    request.may_track = may_track
    return request


def test_record_event_stores_the_request_shopper(item, user):
    # given
    rec = uuid.uuid4()
    # when
    event = record_event(
        _request(user), "view", item, recommendation_id=str(rec), placement="home", position="2"
    )
    # then
    assert event is not None and event.pk is not None
    stored = Event.objects.get()
    assert (stored.user_id, stored.visitor_id, stored.item_id) == (user.pk, "visitor-0042", item.pk)
    assert (stored.recommendation_id, stored.placement, stored.position) == (rec, "home", 2)
    assert stored.is_bot is False


def test_record_event_drops_malformed_attribution_but_records_the_event(item):
    # when
    event = record_event(_request(), "view", item, recommendation_id="garbage", position="x")
    # then
    assert event is not None
    assert (event.recommendation_id, event.position, event.visitor_id) == (None, None, "visitor-0042")


def test_record_event_returns_none_when_tracking_is_not_allowed(item):
    # when
    event = record_event(_request(may_track=False), "view", item)
    # then
    assert event is None
    assert Event.objects.count() == 0


def test_record_event_never_raises_on_bad_input(item):
    # when
    event = record_event(_request(), "teleport", item)
    # then
    assert event is None
    assert Event.objects.count() == 0


def test_record_event_flags_bots(item):
    # when
    event = record_event(_request(agent="AhrefsBot/7.0"), "view", item)
    # then
    assert event.is_bot is True
