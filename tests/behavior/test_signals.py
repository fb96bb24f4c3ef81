"""Anonymous history is attached to the user at login (``user_logged_in``)."""

from __future__ import annotations

import pytest
from django.contrib.auth import login
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory

from behavior.items import item_key
from behavior.models import Event
from behavior.services import ingest as services

pytestmark = [pytest.mark.swappable, pytest.mark.django_db]


def test_login_merges_the_visitors_events_into_the_user(item, user):
    # given
    services.ingest_events([{"event_type": "view", "item": item_key(item)}] * 1, visitor_id="visitor-0777")
    services.ingest_events([{"event_type": "view", "item": item_key(item)}], visitor_id="someone-else")
    request = RequestFactory().post("/login/")
    request.session = SessionStore()
    request.user = AnonymousUser()
    request.visitor_id = "visitor-0777"
    # when
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    # then
    assert list(Event.objects.filter(user=user).values_list("visitor_id", flat=True)) == ["visitor-0777"]
    assert Event.objects.filter(user__isnull=True).count() == 1


def test_login_through_the_client_uses_the_visitor_cookie(client, item, user):
    # given
    services.ingest_events([{"event_type": "view", "item": item_key(item)}], visitor_id="visitor-0888")
    client.cookies["rec_vid"] = "visitor-0888"
    # when: force_login builds a bare request; the handler falls back to nothing and must not fail
    client.force_login(user)
    # then
    assert Event.objects.filter(user__isnull=True).count() == 1
