"""``manage.py rebuild_profiles``: chunks, the fit and the total as they happen; the users who kept
their profiles when a chunk failed."""

from __future__ import annotations

from io import StringIO

import pytest
from celery import current_app
from django.core.management import CommandError, call_command

from recommendations.models import ProfileRun, UserProfile
from recommendations.services.profiles import chunks as passes
from tests.recommendations.services.profiles.test_fanout import _shop

pytestmark = pytest.mark.usefixtures("users_scored_alone")


@pytest.mark.django_db
def test_the_command_prints_each_chunk_the_fit_and_the_total(user_factory, event_factory, catalogue):
    # given 5 shoppers and a user without events
    _shop(user_factory, event_factory, catalogue, users=5)
    out = StringIO()
    # when the command rebuilds everyone in chunks of 2, here, in order
    call_command("rebuild_profiles", full=True, chunk_users=2, stdout=out)
    # then it prints each chunk's features, the fit, each chunk's profiles and the total
    lines = out.getvalue().splitlines()
    assert lines[1:4] == [f"chunk {i}/3: features of 2 users" for i in (1, 2, 3)]
    assert lines[4].startswith("fitted scaling, outliers and ")
    assert lines[5:8] == [
        "chunk 1/3: 2 profiles written",
        "chunk 2/3: 2 profiles written",
        "chunk 3/3: 2 profiles written",
    ]
    assert lines[8].startswith("full rebuild (run ") and " 6 profiles in 3 chunks" in lines[8]
    assert UserProfile.objects.count() == 6


@pytest.mark.django_db
def test_the_command_names_the_users_who_kept_their_profiles(
    user_factory, event_factory, catalogue, monkeypatch
):
    # given 4 shoppers and a second chunk that cannot be written
    shoppers = _shop(user_factory, event_factory, catalogue, users=4)
    write = passes.write_profiles_of

    def broken(run, chunk):
        if chunk.index == 1:
            raise ValueError("disk full")
        return write(run, chunk)

    monkeypatch.setattr(passes, "write_profiles_of", broken)
    out = StringIO()
    # when the command rebuilds them in chunks of 2, here: the error reaches it
    with pytest.raises(ValueError, match="disk full"):
        call_command("rebuild_profiles", full=True, chunk_users=2, stdout=out)
    # then the run is closed as partly done, and the next run of the command names the kept users
    run = ProfileRun.objects.get()
    keys = sorted(s.pk for s in shoppers)
    assert (run.status, run.users, run.failed_users) == ("partial", 2, 3)
    assert run.summary["kept_users"] == [f"{keys[2]}..{keys[3]}", f"{keys[-1] + 1}..{keys[-1] + 1}"]
    # when the command hands the chunks to the workers instead (eager tasks here): the failure is
    # recorded and the command names the users who kept their profiles
    monkeypatch.setitem(current_app.conf, "task_eager_propagates", False)
    with pytest.raises(CommandError, match=rf"1 of 3 chunks failed; users {keys[2]}\.\.{keys[3]} kept"):
        call_command("rebuild_profiles", full=True, chunk_users=2, workers=True, stdout=out)


@pytest.mark.django_db
def test_a_chunk_size_below_one_is_refused(db):
    with pytest.raises(CommandError, match="--chunk-users must be at least 1"):
        call_command("rebuild_profiles", full=True, chunk_users=0, stdout=StringIO())
