"""The one-at-a-time lock shared by long jobs."""

import pytest

from recommendations.models import ProfileRun
from recommendations.runtime.locks import run_lock
from recommendations.services.profiles import rebuild_profiles
from recommendations.services.profiles.rebuild import PROFILE_LEASE_SECONDS, PROFILE_LOCK_NAME


@pytest.mark.django_db(transaction=True)
def test_a_second_holder_of_the_same_lock_is_refused_until_release():
    # given one holder
    with run_lock("test.job", lease_seconds=60) as first:
        assert first is not None
        # when a second caller asks for the same lock, and another name
        with (
            run_lock("test.job", lease_seconds=60) as second,
            run_lock("other.job", lease_seconds=60) as other,
        ):
            # then the same name is refused at once, another name is free
            assert second is None
            assert other is not None
    # and after release the lock can be taken again
    with run_lock("test.job", lease_seconds=60) as again:
        assert again is not None


@pytest.mark.django_db(transaction=True)
def test_profile_rebuild_is_skipped_while_another_rebuild_holds_the_lock(user_factory):
    # given a rebuild in progress elsewhere (the lock is held)
    user_factory()
    with run_lock(PROFILE_LOCK_NAME, lease_seconds=PROFILE_LEASE_SECONDS) as held:
        assert held is not None
        # when the scheduler starts another rebuild
        result = rebuild_profiles(full=True)
    # then it returns at once without a run
    assert result.kind == "skipped"
    assert result.notes == ["another profile rebuild is running"]
    assert ProfileRun.objects.count() == 0
