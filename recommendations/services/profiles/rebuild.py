"""``rebuild_profiles``: features -> scaling -> outliers -> segments -> tags -> upsert.

A full rebuild learns everything (scaler, segment centres, outlier core points, tag
thresholds) and stores it on a :class:`ProfileRun`; an incremental rebuild recomputes only
the users with new events and places them with what the last full run learned.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.db.models import F, Q
from django.utils.translation import gettext
from threadpoolctl import threadpool_limits

from behavior.models import Event
from recommendations.conf import recommender_settings
from recommendations.models import ProfileRun, UserProfile
from recommendations.runtime.locks import run_lock
from recommendations.services.profiles.full import rebuild_full
from recommendations.services.profiles.incremental import rebuild_incremental
from recommendations.services.profiles.outcome import RebuildResult
from recommendations.services.profiles.writer import vacuum_profiles

PROFILE_LOCK_NAME = "recommendations.rebuild_profiles"
# A rebuild of 100k profiles takes about a minute; a dead process frees the lease after this.
PROFILE_LEASE_SECONDS = 3600
PROFILE_NATIVE_THREADS = 1


def rebuild_profiles(*, user_ids: Iterable[Any] | None = None, full: bool = False) -> RebuildResult:
    """Rebuild user profiles; idempotent (upserts) and batched by ``PROFILE_BATCH_SIZE``.

    ``full=True`` recomputes everyone and re-learns segments, outliers and thresholds.
    Otherwise the rebuild is incremental — only ``user_ids``, or by default the users with
    events received since their profile's ``updated_at`` — reusing the last full run;
    it falls back to a full rebuild when there is no full run yet or more than
    ``PROFILE_INCREMENTAL_MAX_SHARE`` of the profiles changed.
    """
    started = time.monotonic()
    # Two schedulers, a redelivered task or a manual run must never rebuild at the same time:
    # the loser returns at once with a "skipped" result instead of waiting.
    with run_lock(PROFILE_LOCK_NAME, lease_seconds=PROFILE_LEASE_SECONDS) as lock:
        if lock is None:
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
        return _locked_rebuild(user_ids, full, started)


def _locked_rebuild(user_ids: Iterable[Any] | None, full: bool, started: float) -> RebuildResult:
    # One native thread for K-means / DBSCAN / BLAS: where the cores are busy, OpenMP workers
    # spin against each other and the silhouette search over k runs many times slower than on
    # one thread. Every array here is small enough for one core.
    with threadpool_limits(limits=PROFILE_NATIVE_THREADS):
        result = _rebuild(user_ids, full, started)
    if result.kind == ProfileRun.Kind.FULL:
        vacuum_profiles()
    return result


def _rebuild(user_ids: Iterable[Any] | None, full: bool, started: float) -> RebuildResult:
    current = latest_full_run()
    if not full and current is not None:
        if user_ids is None:
            changed = changed_user_ids()
            total = max(UserProfile.objects.count(), 1)
            if len(changed) <= recommender_settings.PROFILE_INCREMENTAL_MAX_SHARE * total:
                return rebuild_incremental(current, changed, started)
        else:
            return rebuild_incremental(current, list(user_ids), started)
    return rebuild_full(started)


def latest_full_run() -> ProfileRun | None:
    """The newest completed full run (what an incremental rebuild reuses), if any."""
    return (
        ProfileRun.objects.filter(kind=ProfileRun.Kind.FULL, status=ProfileRun.Status.COMPLETED)
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
