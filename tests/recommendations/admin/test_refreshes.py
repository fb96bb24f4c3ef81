"""The list refreshes in the admin: chunks done out of the total, each chunk's range and outcome."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recommendations.services.serving import fanout
from tests.recommendations.services.serving.test_precompute import _browse


@pytest.mark.django_db
def test_a_running_refresh_shows_its_chunks_done_and_each_chunk(
    client, staff_user, user_factory, event_factory, catalogue
):
    # given a refresh of 5 shoppers in chunks of 2, two of its three chunks done
    shoppers = sorted(s.pk for s in _browse(user_factory, event_factory, catalogue, users=5))
    refresh = fanout.plan(2)
    fanout.run_chunk(refresh.pk, 0)
    fanout.run_chunk(refresh.pk, 2)
    client.force_login(staff_user)
    # when staff open the list of refreshes and the refresh
    listing = client.get(reverse("admin:recommendations_listrefresh_changelist"))
    detail = client.get(reverse("admin:recommendations_listrefresh_change", args=[refresh.pk]))
    # then the list says 2 of 3 chunks are done, and the page lists each chunk's users and status
    assert listing.status_code == 200 and "2/3" in listing.content.decode()
    page = detail.content.decode()
    assert detail.status_code == 200 and "2/3" in page
    assert page.count(">Done<") == 2 and page.count(">Pending<") == 1
    assert str(shoppers[2]) in page and str(shoppers[3]) in page
