"""The list refresh in chunks: the same lists as one process, idempotent chunks, progress, failures."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from celery import current_app
from django.conf import settings
from django.core.management import call_command
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from recommendations import tasks
from recommendations.models import ListRefresh, PrecomputedList
from recommendations.services.serving import fanout
from recommendations.services.serving.precompute import refresh_recommendations
from tests.recommendations.services.serving.test_precompute import _browse as browse


def _browse(user_factory, event_factory, catalogue, users: int):
    """Shoppers who viewed, carted and bought across both categories, and one user without events."""
    shoppers = browse(user_factory, event_factory, catalogue, users=users)
    user_factory()  # no events: never part of a chunk's users
    return shoppers


def _rows() -> dict:
    return {
        row.user_id: (row.item_keys, row.scores, row.reasons, row.model_version)
        for row in PrecomputedList.objects.all()
    }


def _chunked(size: int):
    return override_settings(RECOMMENDER={**settings.RECOMMENDER, "REFRESH_CHUNK_USERS": size})


@pytest.mark.django_db
def test_the_chunked_refresh_stores_the_lists_of_one_process(
    active_model, user_factory, event_factory, catalogue
):
    # given 20 active shoppers and their lists refreshed by one process
    shoppers = _browse(user_factory, event_factory, catalogue, users=20)
    refresh_recommendations()
    one_process = _rows()
    assert len(one_process) == 20 and all(keys for keys, *_ in one_process.values())
    PrecomputedList.objects.all().delete()
    # when the task refreshes them in chunks of 7 users (three Celery tasks, run eagerly here)
    with _chunked(7):
        planned = tasks.refresh_recommendations.apply().get()
    # then the lists are the same, row for row
    assert planned == 20
    assert _rows() == one_process
    # and the refresh is recorded done with its three chunks, counts and model version
    refresh = ListRefresh.objects.get()
    assert (refresh.status, refresh.chunks_total, refresh.chunks_done) == ("done", 3, 3)
    assert (refresh.users, refresh.failed_users, refresh.model_version) == (
        20,
        0,
        active_model.version_number,
    )
    chunks = list(refresh.chunks.order_by("index"))
    assert [c.planned for c in chunks] == [7, 7, 6]
    keys = sorted(s.pk for s in shoppers)
    assert [(c.first_user, c.last_user) for c in chunks] == [
        (str(keys[0]), str(keys[6])),
        (str(keys[7]), str(keys[13])),
        (str(keys[14]), str(keys[19])),
    ]
    assert {"load", "score", "write"} <= set(refresh.timings)
    assert refresh.finished_at is not None


@pytest.mark.django_db
def test_a_chunk_run_again_changes_nothing_and_counts_once(
    active_model, user_factory, event_factory, catalogue
):
    # given a planned refresh of 10 shoppers in chunks of 4
    _browse(user_factory, event_factory, catalogue, users=10)
    refresh = fanout.plan(4)
    # when its first chunk runs, then runs again (a redelivery)
    fanout.run_chunk(refresh.pk, 0)
    first = _rows()
    chunk = fanout.run_chunk(refresh.pk, 0)
    # then the rows are the same, the chunk counts once and the refresh still waits for the others
    assert len(first) == 4 and _rows() == first
    assert (chunk.status, chunk.users, chunk.attempts) == ("done", 4, 2)
    refresh.refresh_from_db()
    assert (refresh.status, refresh.chunks_done, refresh.chunks_total) == ("running", 1, 3)
    # and the last chunk to finish closes the refresh
    fanout.run_chunk(refresh.pk, 2)
    fanout.run_chunk(refresh.pk, 1)
    refresh.refresh_from_db()
    assert (refresh.status, refresh.users, refresh.chunks_done) == ("done", 10, 3)


@pytest.mark.django_db
def test_a_chunk_failing_for_good_is_retried_alone_and_its_users_keep_their_lists(
    active_model, user_factory, event_factory, catalogue, monkeypatch
):
    # given lists from an earlier refresh, and a database that fails whenever chunk 1 reads its users
    shoppers = _browse(user_factory, event_factory, catalogue, users=9)
    refresh_recommendations()
    before = _rows()
    PrecomputedList.objects.update(item_keys=["stale"])
    reads: dict[int, int] = {}
    users_of = fanout.chunk_users

    def flaky(chunk):
        reads[chunk.index] = reads.get(chunk.index, 0) + 1
        if chunk.index == 1:
            raise OperationalError("connection lost")
        return users_of(chunk)

    monkeypatch.setattr(fanout, "chunk_users", flaky)
    # (eager tasks retry in place only when their errors are not propagated to the caller)
    monkeypatch.setitem(current_app.conf, "task_eager_propagates", False)
    # when the chunked refresh runs
    with _chunked(3):
        tasks.refresh_recommendations.apply()
    # then chunk 1 was tried four times (three retries), the others once
    assert reads == {0: 1, 1: 4, 2: 1}
    refresh = ListRefresh.objects.get()
    failed = refresh.chunks.get(index=1)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "connection lost" in failed.error
    # and the refresh finished the others and reports the users who kept their previous lists
    assert (refresh.status, refresh.users, refresh.failed_users) == ("partial", 6, 3)
    after = _rows()
    kept = sorted(s.pk for s in shoppers)[3:6]
    assert (failed.first_user, failed.last_user) == (str(kept[0]), str(kept[-1]))
    assert all(after[pk][0] == ["stale"] for pk in kept)
    assert all(after[pk] == before[pk] for pk in after if pk not in kept)


@pytest.mark.django_db
def test_the_command_prints_each_chunk_and_the_total(active_model, user_factory, event_factory, catalogue):
    # given 5 active shoppers
    _browse(user_factory, event_factory, catalogue, users=5)
    out = StringIO()
    # when the command refreshes the lists in chunks of 2, here, in order
    call_command("refresh_recommendations", lists_only=True, chunk_users=2, stdout=out)
    # then it prints each chunk as it is done and the total
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["chunk 1/3", "chunk 2/3", "chunk 3/3"]
    assert "2 lists" in lines[0] and "1 lists" in lines[2]
    assert lines[3].startswith("precomputed 5 lists in 3 chunks with model version 1")
    assert PrecomputedList.objects.count() == 5


@pytest.mark.django_db
def test_a_running_refresh_keeps_the_next_one_out_until_its_lease_lapses(
    user_factory, event_factory, catalogue
):
    # given a refresh whose chunks still run on the workers
    _browse(user_factory, event_factory, catalogue, users=2)
    running = ListRefresh.objects.create(chunks_total=2)
    # when another refresh starts: it is skipped
    assert fanout.start_refresh() is None
    # and once the running one has made no progress for the lease, the next one runs
    ListRefresh.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(hours=2))
    refresh = fanout.start_refresh()
    assert refresh is not None and refresh.status == "done"
    assert (refresh.chunks_total, refresh.model_version) == (1, None)  # no active model: nothing scored


@pytest.mark.django_db
def test_a_refresh_whose_chunks_cannot_be_sent_is_closed_and_does_not_block_the_next(
    user_factory, event_factory, catalogue
):
    # given 5 active shoppers and a broker that refuses the chunks
    _browse(user_factory, event_factory, catalogue, users=5)

    def unreachable(refresh):
        raise ConnectionError("broker down")

    # when a refresh in chunks of 2 tries to send them
    with pytest.raises(ConnectionError):
        fanout.start_refresh(chunk_users=2, fan_out=unreachable)
    # then it is recorded as failed, every user kept their lists, and the next refresh runs
    failed = ListRefresh.objects.get()
    assert (failed.status, failed.chunks_total, failed.failed_users, failed.users) == ("failed", 3, 5, 0)
    assert fanout.start_refresh(chunk_users=2) is not None


@pytest.mark.django_db
def test_an_error_in_a_chunk_run_here_closes_the_refresh_and_reaches_the_caller(
    user_factory, event_factory, catalogue, monkeypatch
):
    # given 5 active shoppers and a second chunk whose users cannot be read
    _browse(user_factory, event_factory, catalogue, users=5)
    users_of = fanout.chunk_users

    def broken(chunk):
        if chunk.index == 1:
            raise ValueError("unreadable")
        return users_of(chunk)

    monkeypatch.setattr(fanout, "chunk_users", broken)
    # when the chunks run here, in order
    with pytest.raises(ValueError, match="unreadable"):
        fanout.start_refresh(chunk_users=2)
    # then the refresh is closed as partly done (the 3 users after the first chunk keep their lists)
    # and the next refresh runs
    refresh = ListRefresh.objects.get()
    assert (refresh.status, refresh.users, refresh.failed_users) == ("partial", 0, 3)
    monkeypatch.setattr(fanout, "chunk_users", users_of)
    assert fanout.start_refresh(chunk_users=2).status == "done"
