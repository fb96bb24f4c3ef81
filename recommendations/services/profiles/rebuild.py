"""``rebuild_profiles``: features -> scaling -> outliers -> segments -> tags -> upsert, in chunks.

A full rebuild learns everything (scaler, segment centres, outlier core points, tag
thresholds) and stores it on a :class:`ProfileRun`; an incremental rebuild recomputes only
the users with new events and places them with what the last full run learned. Either runs in
chunks of ``PROFILE_CHUNK_USERS`` users, here or as Celery tasks (``services.profiles.fanout``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext

from behavior.models import Event
from recommendations.conf import recommender_settings
from recommendations.models import ProfileRun, Segment, UserProfile
from recommendations.runtime.locks import run_lock
from recommendations.services.profiles import fanout
from recommendations.services.profiles.explanations import note_texts
from recommendations.services.profiles.features import profile_users
from recommendations.services.profiles.outcome import RebuildResult

PROFILE_LOCK_NAME = "recommendations.rebuild_profiles"
# A rebuild of 100k profiles takes about a minute; a dead process (or a rebuild whose chunks
# stopped making progress) frees the way for the next one after this.
PROFILE_LEASE_SECONDS = 3600


def rebuild_profiles(
    *,
    user_ids: Iterable[Any] | None = None,
    full: bool = False,
    chunk_users: int | None = None,
    fan_out: fanout.FanOut | None = None,
    progress: fanout.Progress | None = None,
) -> RebuildResult:
    """Rebuild user profiles in chunks of ``chunk_users`` (default ``PROFILE_CHUNK_USERS``); idempotent.

    ``full=True`` recomputes everyone and re-learns segments, outliers and thresholds.
    Otherwise the rebuild is incremental — only ``user_ids``, or by default the users with
    events received since their profile's ``updated_at`` — reusing the last full run;
    it falls back to a full rebuild when there is no full run yet or more than
    ``PROFILE_INCREMENTAL_MAX_SHARE`` of the profiles changed. With ``fan_out`` (and more than one
    chunk) the chunks run as Celery tasks and the result describes the rebuild just started;
    otherwise they run here, in order (``progress`` is told after each), and it is finished.
    """
    started = time.monotonic()
    # Two schedulers, a redelivered task or a manual run must never rebuild at the same time:
    # the loser returns at once with a "skipped" result instead of waiting.
    with run_lock(PROFILE_LOCK_NAME, lease_seconds=PROFILE_LEASE_SECONDS) as lock:
        if lock is None or fanout.running(PROFILE_LEASE_SECONDS):
            return RebuildResult(
                run_id=0,
                kind="skipped",
                users=0,
                segments=0,
                outliers=0,
                tagged=0,
                seconds=round(time.monotonic() - started, 3),
                propensity_source="",
                notes=[gettext("another profile rebuild is running")],
            )
        _close_abandoned()
        kind, user_pks, base = _what_to_rebuild(user_ids, full)
        run = fanout.plan(
            kind, user_pks, chunk_users=chunk_users or recommender_settings.PROFILE_CHUNK_USERS, base=base
        )
        run = fanout.start(run, fan_out=fan_out, progress=progress)
    return rebuild_result(run)


def _what_to_rebuild(user_ids: Iterable[Any] | None, full: bool) -> tuple[str, list[Any], ProfileRun | None]:
    """The kind of rebuild, its users (active ones, in key order) and the full run it builds on."""
    current = latest_full_run()
    if not full and current is not None:
        if user_ids is None:
            changed = changed_user_ids()
            total = max(UserProfile.objects.count(), 1)
            if len(changed) <= recommender_settings.PROFILE_INCREMENTAL_MAX_SHARE * total:
                return ProfileRun.Kind.INCREMENTAL, profile_users(changed)[0], current
        else:
            return ProfileRun.Kind.INCREMENTAL, profile_users(list(user_ids))[0], current
    return ProfileRun.Kind.FULL, profile_users()[0], None


def _close_abandoned() -> None:
    """Close the rebuilds that stopped making progress (their worker died): their waiting chunks failed."""
    since = timezone.now() - timedelta(seconds=PROFILE_LEASE_SECONDS)
    abandoned = ProfileRun.objects.filter(status=ProfileRun.Status.RUNNING, heartbeat_at__lt=since).exclude(
        stage=ProfileRun.Stage.CLOSED
    )
    for pk in abandoned.values_list("pk", flat=True):
        fanout.finish(pk)


def latest_full_run() -> ProfileRun | None:
    """The newest full run whose fit finished (what an incremental rebuild reuses), if any.

    A partly done run counts: its numbers were learned on everyone; only some chunks were not written.
    """
    return (
        ProfileRun.objects.filter(
            kind=ProfileRun.Kind.FULL, status__in=[ProfileRun.Status.COMPLETED, ProfileRun.Status.PARTIAL]
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def changed_user_ids() -> list[Any]:
    """Users with events received after their profile was updated, or without a profile."""
    queryset = (
        Event.objects.filter(user__isnull=False, user__is_active=True)
        .filter(
            Q(user__recommendation_profile__isnull=True)
            | Q(received_at__gt=F("user__recommendation_profile__updated_at"))
        )
        .order_by()
        .values_list("user_id", flat=True)
        .distinct()
    )
    return list(queryset)


def rebuild_result(run: ProfileRun) -> RebuildResult:
    """What ``run`` did (so far, while its chunks run on the workers)."""
    summary = run.summary or {}
    chunks = list(run.chunks.values_list("status", "profiles", "tagged", "outliers"))
    segment_run = run.pk if run.kind == ProfileRun.Kind.FULL else run.params.get("based_on_run")
    seconds = summary.get("seconds")
    if seconds is None:
        seconds = round((timezone.now() - run.created_at).total_seconds(), 3)
    return RebuildResult(
        run_id=run.pk,
        kind=run.kind,
        users=run.users,
        segments=Segment.objects.filter(run_id=segment_run).count() if segment_run else 0,
        outliers=sum(outliers for *_, outliers in chunks),
        tagged=sum(tagged for _, _, tagged, _ in chunks),
        seconds=float(seconds),
        propensity_source=summary.get("propensity_source", ""),
        notes=note_texts(summary.get("notes")),
        status=run.status,
        chunks_total=run.chunks_total,
        chunks_done=sum(1 for status, *_ in chunks if status == "done"),
        failed_users=run.failed_users,
        kept=list(summary.get("kept_users", [])),
    )
