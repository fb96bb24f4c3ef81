"""The profile rebuilds in the admin: chunks done out of the total, each chunk, the users who kept
their profiles."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recommendations.models import ProfileRunChunk
from recommendations.services.profiles import fanout
from tests.recommendations.services.profiles.test_fanout import _shop

pytestmark = pytest.mark.usefixtures("users_scored_alone")


@pytest.mark.django_db
def test_a_rebuild_shows_its_chunks_done_each_chunk_and_the_users_who_kept_their_profiles(
    client, staff_user, user_factory, event_factory, catalogue
):
    # given a full rebuild of 5 shoppers in chunks of 2 whose second chunk failed for good
    shoppers = sorted(s.pk for s in _shop(user_factory, event_factory, catalogue, users=5))
    run = fanout.plan("full", shoppers, chunk_users=2)
    for index in (0, 2):
        fanout.run_chunk(run.pk, index)
    fanout.fail_chunk(run.pk, 1, ValueError("unreadable"))  # the last of the first pass: the fit runs
    fanout.run_chunk(run.pk, 0)  # chunk 0 writes its profiles
    client.force_login(staff_user)
    # when staff open the list of profile runs while chunk 2 is still to write
    listing = client.get(reverse("admin:recommendations_profilerun_changelist"))
    # then it says 1 of 3 chunks is done, and what the rebuild is doing
    assert listing.status_code == 200
    assert "1/3" in listing.content.decode() and "Writing profiles" in listing.content.decode()
    # when the last chunk is written and staff open the run
    fanout.run_chunk(run.pk, 2)
    detail = client.get(reverse("admin:recommendations_profilerun_change", args=[run.pk]))
    # then the page lists each chunk, its status and error, and the users who kept their profiles
    page = detail.content.decode()
    assert detail.status_code == 200 and "2/3" in page and "Partly done" in page
    assert page.count(">Done<") == 2 and page.count(">Failed<") == 1 and "ValueError: unreadable" in page
    assert f"{shoppers[2]}..{shoppers[3]}" in page
    assert not ProfileRunChunk.objects.exclude(staged=None).exists()
