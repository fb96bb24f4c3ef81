"""The list refresh split into chunks of users that run as separate Celery tasks.

The refresh lists the active users once (against one data clock), cuts them, in primary-key
order, into chunks of ``REFRESH_CHUNK_USERS`` consecutive keys and records a ``ListRefresh`` with
one ``ListRefreshChunk`` per range. Each chunk scores the active users of its range through
``precompute.refresh_recommendations`` (which replaces their rows and cache keys: rerunning a
chunk stores the same lists again) and records its outcome. The last chunk to finish, whichever
worker runs it, closes the refresh (counts, model version, timings): a group with a final step
that needs no Celery result backend, because the database counts the chunks still open.

One refresh at a time: the list lock (``serving.jobs.LISTS_LOCK``) is held while a refresh is
planned, and a refresh still running (with progress within the lease) makes the next one skip,
since the chunks outlive the process that planned them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.data.clock import data_now
from recommendations.data.history_batches import active_users_queryset
from recommendations.models import ListRefresh, ListRefreshChunk
from recommendations.runtime.locks import run_lock

if TYPE_CHECKING:
    from recommendations.services.serving.precompute import PrecomputeResult

logger = logging.getLogger(__name__)

#: ``progress(refresh, chunk)`` after each chunk run in this process
Progress = Callable[[ListRefresh, ListRefreshChunk], None]


def start_refresh(
    *,
    chunk_users: int | None = None,
    fan_out: Callable[[ListRefresh], None] | None = None,
    progress: Progress | None = None,
) -> ListRefresh | None:
    """Plan a refresh and run it: its chunks by ``fan_out`` (Celery tasks) or here, in order.

    ``fan_out(refresh)`` is called (after the plan is committed) when the refresh has more than
    one chunk; it must start ``run_chunk`` for every chunk. Without it, or with one chunk, every
    chunk runs in this process and the refresh comes back finished. None (at once) when another
    refresh is running.
    """
    from recommendations.services.serving.jobs import LEASE_SECONDS, LISTS_LOCK

    with run_lock(LISTS_LOCK, lease_seconds=LEASE_SECONDS) as lock:
        if lock is None or _running(LEASE_SECONDS):
            logger.info("Recommendation lists: another refresh is running; skipped")
            return None
        refresh = plan(chunk_users or recommender_settings.REFRESH_CHUNK_USERS)
        if fan_out is not None and refresh.chunks_total > 1:
            try:
                fan_out(refresh)
            except Exception:
                # nothing will run its chunks (e.g. the broker is unreachable): closed as failed
                # now, so that it does not keep the next refresh out for the lease
                finish(refresh.pk)
                raise
            return refresh
        try:
            for chunk in refresh.chunks.order_by("index"):
                done = run_chunk(refresh.pk, chunk.index)
                if progress is not None:
                    progress(refresh, done)
        except Exception:
            finish(refresh.pk)  # the chunks left count as failed: the next refresh may run
            raise
        refresh.refresh_from_db()
        if refresh.status == ListRefresh.Status.RUNNING:  # no chunks: nothing closed it
            finish(refresh.pk)
            refresh.refresh_from_db()
        return refresh


def _running(lease_seconds: int) -> bool:
    """Whether a refresh is running and made progress within the lease."""
    since = timezone.now() - timedelta(seconds=lease_seconds)
    return ListRefresh.objects.filter(status=ListRefresh.Status.RUNNING, heartbeat_at__gte=since).exists()


def plan(chunk_users: int) -> ListRefresh:
    """A running refresh with its chunks: the active users in key order, ``chunk_users`` per chunk."""
    if chunk_users < 1:
        raise ValueError(f"REFRESH_CHUNK_USERS must be at least 1, not {chunk_users}")
    clock = data_now()
    users = list(active_users_queryset(recommender_settings.ACTIVE_USER_DAYS, clock))
    ranges = [users[start : start + chunk_users] for start in range(0, len(users), chunk_users)]
    with transaction.atomic():
        refresh = ListRefresh.objects.create(chunk_users=chunk_users, chunks_total=len(ranges), clock=clock)
        ListRefreshChunk.objects.bulk_create(
            ListRefreshChunk(
                refresh=refresh,
                index=index,
                first_user=str(keys[0]),
                last_user=str(keys[-1]),
                planned=len(keys),
            )
            for index, keys in enumerate(ranges)
        )
    return refresh


def chunk_users(chunk: ListRefreshChunk) -> Any:
    """The active users of the chunk's key range (against the refresh's clock), in key order."""
    users = active_users_queryset(recommender_settings.ACTIVE_USER_DAYS, chunk.refresh.clock)
    return users.filter(pk__gte=chunk.first_user, pk__lte=chunk.last_user)


def run_chunk(refresh_id: int, index: int) -> ListRefreshChunk:
    """Score and store the lists of one chunk; closes the refresh when it was the last one open.

    Idempotent: a rerun (a redelivered task, a retry) replaces the same users' lists with the
    same lists. A chunk of a refresh that is no longer running is left alone.
    """
    from recommendations.services.serving.precompute import refresh_recommendations

    chunk = ListRefreshChunk.objects.select_related("refresh").get(refresh_id=refresh_id, index=index)
    if chunk.refresh.status != ListRefresh.Status.RUNNING:
        return chunk
    result = refresh_recommendations(user_ids=list(chunk_users(chunk)))
    _record(chunk, result)
    _close_if_last(refresh_id)
    chunk.refresh_from_db()
    return chunk


def _record(chunk: ListRefreshChunk, result: PrecomputeResult) -> None:
    now = timezone.now()
    ListRefreshChunk.objects.filter(pk=chunk.pk).update(
        status=ListRefreshChunk.Status.DONE,
        users=result.users,
        failed_users=result.failed_users,
        model_version=result.model_version,
        timings={stage: list(pair) for stage, pair in result.timings.items()},
        seconds=round(result.seconds, 4),
        attempts=chunk.attempts + 1,
        error="",
        finished_at=now,
    )
    ListRefresh.objects.filter(pk=chunk.refresh_id).update(heartbeat_at=now)


def fail_chunk(refresh_id: int, index: int, error: BaseException) -> None:
    """Record a chunk that failed for good (its users keep their lists); closes the refresh when last."""
    now = timezone.now()
    chunk = ListRefreshChunk.objects.get(refresh_id=refresh_id, index=index)
    ListRefreshChunk.objects.filter(pk=chunk.pk).update(
        status=ListRefreshChunk.Status.FAILED,
        attempts=chunk.attempts + 1,
        error=f"{type(error).__name__}: {error}"[:2000],
        finished_at=now,
    )
    ListRefresh.objects.filter(pk=refresh_id).update(heartbeat_at=now)
    _close_if_last(refresh_id)


def _close_if_last(refresh_id: int) -> None:
    """Finish the refresh once no chunk is pending; exactly one caller does (the row is locked)."""
    with transaction.atomic():
        refresh = ListRefresh.objects.select_for_update().get(pk=refresh_id)
        if refresh.status != ListRefresh.Status.RUNNING:
            return
        if refresh.chunks.filter(status=ListRefreshChunk.Status.PENDING).exists():
            return
        _finish(refresh)


def finish(refresh_id: int) -> ListRefresh:
    """Close a refresh now (the final step): chunks still pending count as failed."""
    with transaction.atomic():
        refresh = ListRefresh.objects.select_for_update().get(pk=refresh_id)
        if refresh.status == ListRefresh.Status.RUNNING:
            _finish(refresh)
    return refresh


def _finish(refresh: ListRefresh) -> None:
    """Counts, model version and timings of the refresh from its chunks (inside the caller's lock)."""
    from recommendations.services.serving import impressions

    chunks = list(refresh.chunks.all())
    done = [c for c in chunks if c.status == ListRefreshChunk.Status.DONE]
    timings: dict[str, list[float]] = {}
    for chunk in done:
        for stage, (wall, cpu) in chunk.timings.items():
            total = timings.setdefault(stage, [0.0, 0.0])
            total[0], total[1] = round(total[0] + wall, 4), round(total[1] + cpu, 4)
    versions = sorted({c.model_version for c in done if c.model_version is not None})
    kept = [c for c in chunks if c.status != ListRefreshChunk.Status.DONE]
    refresh.users = sum(c.users for c in done)
    refresh.failed_users = sum(c.failed_users for c in done) + sum(c.planned for c in kept)
    refresh.model_version = versions[-1] if versions else None
    refresh.timings = timings
    refresh.finished_at = timezone.now()
    refresh.seconds = round((refresh.finished_at - refresh.started_at).total_seconds(), 4)
    if not kept:
        refresh.status = ListRefresh.Status.DONE
    else:
        refresh.status = ListRefresh.Status.PARTIAL if done else ListRefresh.Status.FAILED
        logger.error(
            "List refresh %s: %d of %d chunks failed; users %s kept their previous lists",
            refresh.pk,
            len(kept),
            len(chunks),
            ", ".join(f"{c.first_user}..{c.last_user}" for c in kept),
        )
    if len(versions) > 1:  # the active model changed during the refresh: the next one evens it out
        logger.warning("List refresh %s scored with model versions %s", refresh.pk, versions)
    refresh.save()
    if not chunks:  # the periodic refresh also writes the impressions queued meanwhile
        impressions.flush()
    logger.info(
        "List refresh %s: %d lists in %d chunks with model version %s in %.1fs",
        refresh.pk,
        refresh.users,
        len(chunks),
        refresh.model_version,
        refresh.seconds,
    )
