"""The profile rebuild in chunks: the profiles of one process, idempotent chunks, progress, failures."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from celery import current_app
from django.conf import settings
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from behavior.models import Event
from recommendations import tasks
from recommendations.models import ProfileRun, ProfileRunChunk, ProfileTag, Segment, UserProfile
from recommendations.services.profiles import chunks as passes
from recommendations.services.profiles import fanout, rebuild_profiles
from tests.recommendations.conftest import days_ago

pytestmark = pytest.mark.usefixtures("users_scored_alone")

PRICES = (Decimal("19.99"), Decimal("5.49"), Decimal("7.25"), Decimal("12.10"), Decimal("33.30"))


def _shop(user_factory, event_factory, catalogue, users: int):
    """Shoppers of both categories with priced orders (sums of decimals), one bot, one user without events."""
    shoppers = [user_factory() for _ in range(users)]
    products = catalogue["shoes"] + catalogue["hats"]
    for u, shopper in enumerate(shoppers):
        for step in range(3 + u % 6):
            event_type = ("view", "view", "add_to_cart", "purchase")[(u + step) % 4]
            event_factory(
                user=shopper,
                item=products[(u * 3 + step * 7) % len(products) if u % 3 else (u + step) % 10],
                event_type=event_type,
                value=PRICES[(u + step) % len(PRICES)] if event_type == "purchase" else None,
                occurred_at=days_ago(1 + (u % 4) + step * 0.3),
            )
    bot = shoppers[-1]
    for second in range(40):  # forty views within one minute
        event_factory(user=bot, item=products[second % 20], event_type="view", occurred_at=days_ago(0.5))
    user_factory()  # no events: profiled, with the notes that say so
    return shoppers


def _profiles() -> dict:
    """Every profile as written, the segment by its number (segment rows differ per run)."""
    return {
        p.pk: (
            p.segment.number if p.segment else None,
            p.tags,
            p.features,
            p.propensity,
            p.propensity_source,
            p.is_outlier,
            p.outlier_reason,
            p.last_activity_at,
            p.model_version,
            p.notes,
        )
        for p in UserProfile.objects.select_related("segment")
    }


def _tags() -> list:
    return sorted(ProfileTag.objects.values_list("profile_id", "label", "weight"))


def _segments(run: ProfileRun) -> list:
    return list(
        Segment.objects.filter(run=run).order_by("number").values_list("number", "traits", "size", "centre")
    )


def _chunked(size: int):
    return override_settings(RECOMMENDER={**settings.RECOMMENDER, "PROFILE_CHUNK_USERS": size})


@pytest.mark.django_db
def test_the_chunked_full_rebuild_writes_the_profiles_of_one_process(
    active_model, user_factory, event_factory, catalogue, settings
):
    # given 24 shoppers (and a user without events) rebuilt by one process, as one chunk, the
    # network scoring them in groups of 7
    settings.RECOMMENDER = {**settings.RECOMMENDER, "PROFILE_MODEL_BATCH": 7}
    _shop(user_factory, event_factory, catalogue, users=24)
    one = rebuild_profiles(full=True)
    one_run = ProfileRun.objects.get(pk=one.run_id)
    one_process, one_tags, one_segments = _profiles(), _tags(), _segments(one_run)
    # (the tiny network has no propensity head: its embeddings, and the heuristic's propensity)
    assert (one.users, one.chunks_total, one_run.model_version) == (25, 1, active_model.version_number)
    assert one.segments >= 3 and one.outliers >= 1 and len(one_tags) > 10
    UserProfile.objects.all().delete()
    # when the task rebuilds everyone in chunks of 7 (four Celery tasks per pass, run eagerly here)
    with _chunked(7):
        result = tasks.rebuild_profiles.apply(kwargs={"full": True}).get()
    # then the profiles, their tag rows, the segments and what the fit learned are the same
    run = ProfileRun.objects.get(pk=result["run_id"])
    assert _profiles() == one_process
    assert _tags() == one_tags
    assert _segments(run) == one_segments
    assert run.params == one_run.params
    # and the run is recorded done with its four chunks, each written, the staged features dropped
    assert (run.status, run.stage, run.chunks_total, run.chunks_done, run.users) == (
        "completed",
        "closed",
        4,
        4,
        25,
    )
    chunks = list(run.chunks.order_by("index"))
    assert [c.planned for c in chunks] == [7, 7, 7, 4]
    assert [c.profiles for c in chunks] == [7, 7, 7, 4]
    assert all(c.staged is None and c.status == "done" for c in chunks)
    assert sum(c.outliers for c in chunks) == one.outliers
    # and the earlier run's segments are gone: every profile names one of this run's
    assert set(Segment.objects.values_list("run_id", flat=True)) == {run.pk}


@pytest.mark.django_db
def test_the_chunked_incremental_rebuild_writes_the_profiles_of_one_process(
    user_factory, event_factory, catalogue
):
    # given a full rebuild, then new events of 4 shoppers, rebuilt incrementally by one process
    shoppers = _shop(user_factory, event_factory, catalogue, users=20)
    rebuild_profiles(full=True)
    for shopper in shoppers[:4]:
        event_factory(user=shopper, item=catalogue["hats"][0], event_type="purchase", value=Decimal("7.25"))
    one = rebuild_profiles()
    one_process = _profiles()
    assert (one.kind, one.users) == ("incremental", 4)
    # when the same users are rebuilt incrementally in chunks of 3
    UserProfile.objects.filter(pk__in=[s.pk for s in shoppers[:4]]).update(updated_at=days_ago(30))
    with _chunked(3):
        result = tasks.rebuild_profiles.apply().get()
    # then every profile is the same, and the segment sizes still count the profiles naming them
    assert (result["kind"], result["users"], result["chunks_total"], result["status"]) == (
        "incremental",
        4,
        2,
        "completed",
    )
    assert _profiles() == one_process
    assert all(s.size == s.profiles.count() for s in Segment.objects.all())


@pytest.mark.django_db
def test_a_pass_run_again_changes_nothing_and_counts_once(user_factory, event_factory, catalogue):
    # given a planned full rebuild of 10 shoppers in chunks of 4
    shoppers = _shop(user_factory, event_factory, catalogue, users=10)
    run = fanout.plan("full", sorted(s.pk for s in shoppers), chunk_users=4)
    # when its first chunk computes its features twice (a redelivery)
    first = fanout.run_chunk(run.pk, 0)
    staged = ProfileRunChunk.objects.get(pk=first.chunk.pk).staged
    again = fanout.run_chunk(run.pk, 0)
    # then it staged them once and the run still waits for the others
    assert (again.chunk.status, again.chunk.attempts, again.fitted) == ("staged", 1, False)
    assert bytes(ProfileRunChunk.objects.get(pk=first.chunk.pk).staged) == bytes(staged)
    run.refresh_from_db()
    assert (run.stage, run.chunks_done) == ("features", 0)
    # and the last chunk of the first pass runs the fit, once
    fanout.run_chunk(run.pk, 2)
    assert fanout.run_chunk(run.pk, 1).fitted is True
    run.refresh_from_db()
    assert run.stage == "profiles" and Segment.objects.filter(run=run).count() == run.k
    # when a chunk writes its profiles twice
    fanout.run_chunk(run.pk, 1)
    written = _profiles()
    assert fanout.run_chunk(run.pk, 1).chunk.attempts == 2  # staged once, written once
    # then the rows are the same and the last chunk closes the run
    assert _profiles() == written and len(written) == 4
    fanout.run_chunk(run.pk, 0)
    fanout.run_chunk(run.pk, 2)
    run.refresh_from_db()
    assert (run.status, run.users, run.chunks_done) == ("completed", 10, 3)


@pytest.mark.django_db
def test_a_chunk_failing_for_good_is_retried_alone_and_its_users_keep_their_profiles(
    user_factory, event_factory, catalogue, monkeypatch, caplog
):
    # given profiles from an earlier full rebuild, and a database that fails whenever chunk 1
    # writes its profiles
    shoppers = _shop(user_factory, event_factory, catalogue, users=9)
    rebuild_profiles(full=True)
    before = _profiles()
    kept = sorted(s.pk for s in shoppers)[3:6]
    tries: dict[int, int] = {}
    write = passes.write_profiles_of

    def flaky(run, chunk):
        tries[chunk.index] = tries.get(chunk.index, 0) + 1
        if chunk.index == 1:
            raise OperationalError("connection lost")
        return write(run, chunk)

    monkeypatch.setattr(passes, "write_profiles_of", flaky)
    # (eager tasks retry in place only when their errors are not propagated to the caller)
    monkeypatch.setitem(current_app.conf, "task_eager_propagates", False)
    # when a chunked full rebuild runs (chunks of 3: the user without events is the fourth chunk)
    with _chunked(3), caplog.at_level(logging.ERROR, logger="recommendations.services.profiles.fanout"):
        result = tasks.rebuild_profiles.apply(kwargs={"full": True}).get()
    # then chunk 1 was tried four times (three retries), the others once
    assert tries == {0: 1, 1: 4, 2: 1, 3: 1}
    run = ProfileRun.objects.get(pk=result["run_id"])
    failed = run.chunks.get(index=1)
    assert (failed.status, failed.staged) == ("failed", None)
    assert "connection lost" in failed.error
    # and the rebuild finished the others and reports the users who kept their previous profiles
    assert (run.status, run.users, run.failed_users) == ("partial", 7, 3)
    assert (failed.first_user, failed.last_user) == (str(kept[0]), str(kept[-1]))
    assert run.summary["kept_users"] == [f"{kept[0]}..{kept[-1]}"]
    after = _profiles()
    assert all(after[pk] == before[pk] for pk in kept)
    # and the kept profiles still name their segment (the earlier run's, kept while they do)
    earlier = ProfileRun.objects.exclude(pk=run.pk).get()
    assert {p.segment.run_id for p in UserProfile.objects.filter(pk__in=kept).select_related("segment")} == {
        earlier.pk
    }
    assert f"users {kept[0]}..{kept[-1]} kept their previous profiles" in caplog.text


@pytest.mark.django_db
def test_a_chunk_that_cannot_compute_its_features_is_left_out_of_the_fit(
    user_factory, event_factory, catalogue, monkeypatch
):
    # given earlier profiles, and a first chunk whose features cannot be computed
    shoppers = _shop(user_factory, event_factory, catalogue, users=8)
    rebuild_profiles(full=True)
    before = _profiles()
    stage = passes.stage_features

    def broken(run, chunk):
        if chunk.index == 0:
            raise ValueError("unreadable")
        return stage(run, chunk)

    monkeypatch.setattr(passes, "stage_features", broken)
    monkeypatch.setitem(current_app.conf, "task_eager_propagates", False)
    # when a chunked full rebuild runs
    with _chunked(4):
        result = tasks.rebuild_profiles.apply(kwargs={"full": True}).get()
    # then the fit learned from the others and wrote them; the first four keep their profiles
    run = ProfileRun.objects.get(pk=result["run_id"])
    kept = sorted(s.pk for s in shoppers)[:4]
    assert (run.status, run.users, run.failed_users, run.chunks.get(index=0).attempts) == ("partial", 5, 4, 1)
    assert all(_profiles()[pk] == before[pk] for pk in kept)
    assert UserProfile.objects.filter(updated_at=run.created_at).count() == 5


@pytest.mark.django_db
def test_a_fit_that_fails_closes_the_rebuild_and_everyone_keeps_their_profile(
    user_factory, event_factory, catalogue, monkeypatch
):
    # given earlier profiles, and a fit that fails
    _shop(user_factory, event_factory, catalogue, users=6)
    rebuild_profiles(full=True)
    before = _profiles()

    def fails(run):
        raise RuntimeError("no memory")

    monkeypatch.setattr(passes, "fit_run", fails)
    # when a chunked full rebuild runs here
    result = rebuild_profiles(full=True, chunk_users=3)
    # then it failed, says why, wrote nothing and the next rebuild may run
    run = ProfileRun.objects.get(pk=result.run_id)
    assert (run.status, run.stage, run.users, run.failed_users) == ("failed", "closed", 0, 7)
    assert run.error == "RuntimeError: no memory"
    assert _profiles() == before
    assert not Segment.objects.filter(run=run).exists()
    monkeypatch.undo()
    assert rebuild_profiles(full=True).status == "completed"


@pytest.mark.django_db
def test_a_running_rebuild_keeps_the_next_one_out_until_its_lease_lapses(
    user_factory, event_factory, catalogue
):
    # given a rebuild whose chunks still run on the workers
    _shop(user_factory, event_factory, catalogue, users=2)
    running = fanout.plan("full", [], chunk_users=10)
    # when another rebuild starts: it is skipped
    assert rebuild_profiles(full=True).kind == "skipped"
    # and once the running one has made no progress for the lease, it is closed and the next one runs
    ProfileRun.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(hours=2))
    result = rebuild_profiles(full=True)
    assert (result.status, result.users) == ("completed", 3)
    running.refresh_from_db()
    assert (running.status, running.stage) == ("failed", "closed")


@pytest.mark.django_db
def test_a_rebuild_whose_chunks_cannot_be_sent_is_closed_and_does_not_block_the_next(
    user_factory, event_factory, catalogue
):
    # given 4 shoppers and a broker that refuses the chunks
    _shop(user_factory, event_factory, catalogue, users=4)

    def unreachable(run):
        raise ConnectionError("broker down")

    # when a rebuild in chunks of 2 tries to send them
    with pytest.raises(ConnectionError):
        rebuild_profiles(full=True, chunk_users=2, fan_out=unreachable)
    # then it is recorded as failed, nobody's profile was written, and the next rebuild runs
    failed = ProfileRun.objects.get()
    assert (failed.status, failed.chunks_total, failed.failed_users, failed.users) == ("failed", 3, 5, 0)
    assert not UserProfile.objects.exists()
    assert rebuild_profiles(full=True, chunk_users=2).status == "completed"


@pytest.mark.django_db
def test_a_rebuild_of_nobody_completes_with_one_empty_chunk(db):
    # given no users at all, when a full rebuild runs
    result = rebuild_profiles(full=True)
    # then it completes with no profiles and no segments
    assert (result.status, result.users, result.chunks_total, result.segments) == ("completed", 0, 1, 0)
    assert Event.objects.count() == 0
