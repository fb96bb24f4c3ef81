"""The read-only event admin."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory

from behavior.models import Event


@pytest.mark.django_db
def test_event_changelist_renders_for_staff(client, staff_user, event_factory):
    # given
    event_factory.create_batch(3)
    client.force_login(staff_user)
    # when
    response = client.get("/admin/behavior/event/")
    # then
    assert response.status_code == 200
    assert response.content.count(b'class="action-select"') == 3


@pytest.mark.django_db
def test_events_cannot_be_added_or_changed_and_only_superusers_delete(staff_user, user_factory):
    # given
    model_admin = site._registry[Event]
    request = RequestFactory().get("/admin/")
    staff = user_factory(username="plainstaff", is_staff=True)
    # when / then
    request.user = staff_user
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request) is False
    assert model_admin.has_delete_permission(request) is True
    request.user = staff
    assert model_admin.has_delete_permission(request) is False
