"""The merchandising rules held per process: read once, forgotten after a save's commit, re-read
after the check interval, and in force exactly within their windows without a new read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommendations.services.merchandising import rules as held
from recommendations.services.serving import popular_items

pytestmark = pytest.mark.django_db


def popular() -> list[str]:
    """The popular block's five items (the newest ones: no behaviour in these tests)."""
    return popular_items(limit=5).keys


def test_rules_are_read_once_and_read_again_after_a_save(
    catalogue, rule_factory, django_capture_on_commit_callbacks
):
    # given the rules read once in this process
    before = popular()
    held.rules_in_force("popular")
    # when lists are served, then no query reads the rules again
    with CaptureQueriesContext(connection) as captured:
        held.rules_in_force("popular")
        held.rules_in_force("home")
    assert captured.captured_queries == []
    # when staff save a rule (its commit forgets the held rules)
    with django_capture_on_commit_callbacks(execute=True):
        rule = rule_factory(action="exclude", item_key=before[0])
    # then the next list applies it
    assert before[0] not in popular()
    # and switching it off is seen at once too
    with django_capture_on_commit_callbacks(execute=True):
        rule.active = False
        rule.save()
    assert popular() == before


def test_another_process_sees_a_new_rule_after_the_check_interval(catalogue, rule_factory, settings):
    # given a process that read the rules before another one saved a rule
    settings.RECOMMENDER = {**settings.RECOMMENDER, "MERCHANDISING_CHECK_SECONDS": 3600}
    before = popular()
    rule_factory(action="exclude", item_key=before[0])  # no commit here: nothing forgotten
    # then it serves the rules it holds until its check interval has passed
    assert popular() == before
    held._held.checked_at -= 3600
    assert before[0] not in popular()


def test_a_scheduled_rule_starts_and_ends_on_time_without_a_new_read(catalogue, add_rule):
    # given a rule from in an hour for an hour, read by this process now
    now = timezone.now()
    rule = add_rule(
        action="bury", item_key="S1", starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=2)
    )
    assert held.rules_in_force("home", now) == ()
    # when the clock passes its start, then its end, then it is in force, then not, with no query
    with CaptureQueriesContext(connection) as captured:
        during = held.rules_in_force("home", now + timedelta(minutes=90))
        after = held.rules_in_force("home", now + timedelta(hours=3))
    assert [r.id for r in during] == [rule.pk]
    assert after == ()
    assert captured.captured_queries == []
