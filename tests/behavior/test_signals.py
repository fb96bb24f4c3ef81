"""Anonymous history is attached to the user at login (``user_logged_in``); new ids at login and logout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import login, logout
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from django.utils import timezone

from behavior.items import item_key
from behavior.models import Event
from behavior.services import ingest as services

pytestmark = [pytest.mark.swappable, pytest.mark.django_db]


def _request(visitor_id: str, issued_at):
    """A login request as the visitor middleware leaves it."""
    request = RequestFactory().post("/login/")
    request.session = SessionStore()
    request.user = AnonymousUser()
    request.visitor_id, request.visitor_issued_at, request.may_track = visitor_id, issued_at, True
    return request


def test_login_merges_the_visitors_events_into_the_user_and_issues_a_new_id(item, user):
    # given
    issued = timezone.now() - timedelta(hours=1)
    services.ingest_events([{"event_type": "view", "item": item_key(item)}], visitor_id="visitor-0777")
    services.ingest_events([{"event_type": "view", "item": item_key(item)}], visitor_id="someone-else")
    request = _request("visitor-0777", issued)
    # when
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    # then
    assert list(Event.objects.filter(user=user).values_list("visitor_id", flat=True)) == ["visitor-0777"]
    assert Event.objects.filter(user__isnull=True).count() == 1
    assert request.visitor_id not in {"visitor-0777", ""} and len(request.visitor_id) == 32


def test_login_merges_only_the_events_stored_since_the_id_was_issued(item, user):
    # given: events stored under the id two days before it was issued to this browser
    issued = timezone.now() - timedelta(hours=1)
    event = {"event_type": "view", "item": item_key(item)}
    services.ingest_events([event], visitor_id="visitor-0777", now=issued - timedelta(days=2))
    services.ingest_events([event], visitor_id="visitor-0777", now=issued + timedelta(minutes=5))
    # when
    login(_request("visitor-0777", issued), user, backend="django.contrib.auth.backends.ModelBackend")
    # then
    merged = Event.objects.filter(user=user).values_list("received_at", flat=True)
    assert list(merged) == [issued + timedelta(minutes=5)]
    assert Event.objects.filter(user__isnull=True, visitor_id="visitor-0777").count() == 1


def test_logout_issues_a_new_visitor_id(user):
    # given
    request = _request("visitor-0777", timezone.now())
    request.user = user
    # when
    logout(request)
    # then
    assert request.visitor_id not in {"visitor-0777", ""} and len(request.visitor_id) == 32


def test_login_through_the_client_uses_the_visitor_cookie(client, item, user):
    # given
    services.ingest_events([{"event_type": "view", "item": item_key(item)}], visitor_id="visitor-0888")
    client.cookies["rec_vid"] = "visitor-0888"
    # when: force_login builds a bare request; the handler falls back to nothing and must not fail
    client.force_login(user)
    # then
    assert Event.objects.filter(user__isnull=True).count() == 1
