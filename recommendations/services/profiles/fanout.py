"""The profile rebuild split into chunks of users that run as separate Celery tasks.

A rebuild lists its users once (every active user for a full rebuild, the changed ones for an
incremental one), cuts them in primary-key order into chunks of ``PROFILE_CHUNK_USERS`` and
records a ``ProfileRun`` with one ``ProfileRunChunk`` per chunk (the admin and the command show
the chunks done). Every process uses the run's data clock and stamps the run's start time.

A full rebuild learns numbers from everyone (scaling, DBSCAN outliers, K-means segments, tag
percentiles, the embeddings' principal components), so it runs in two passes with the fit between
them (``services.profiles.chunks``): the chunks compute and stage their users' features (the
costly part: the network's propensity and embeddings are most of a rebuild), the last one to
finish runs the fit on all staged features and stores what it learned on the run, and the
chunks, sent again, place and write their profiles with it. Segment labels and outlier flags come
from the fit itself, so the profiles are those one process writes. An incremental rebuild
places its users with the last full run's numbers and needs one pass.

The last chunk of a pass, whichever worker runs it, moves the run on (the fit, or the close): a
group with a final step that needs no Celery result backend, because the database counts the
chunks still waiting. A chunk that fails for good is recorded; its users keep their previous
profiles and the run finishes the others as ``partial``, naming their key ranges.

One rebuild at a time: the profile lock is held while a rebuild is planned (and for the whole
rebuild when it runs in one process), and a rebuild still running with progress within the lease
makes the next one skip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone
from threadpoolctl import threadpool_limits

from recommendations.conf import recommender_settings
from recommendations.data.clock import data_now
from recommendations.models import ProfileRun, ProfileRunChunk, ProfileTag, Segment, UserProfile
from recommendations.services.profiles import chunks as passes
from recommendations.services.profiles.writer import analyze_profiles, vacuum_profiles

logger = logging.getLogger(__name__)

#: ``progress(run, chunk)`` after each chunk pass run in this process; ``chunk`` None after the fit
Progress = Callable[[ProfileRun, ProfileRunChunk | None], None]
#: ``fan_out(run)`` sends one task per chunk still waiting for its next pass
FanOut = Callable[[ProfileRun], None]
# One native thread for K-means / DBSCAN / BLAS: where the cores are busy, OpenMP workers spin
# against each other and the silhouette search over k runs many times slower than on one thread.
NATIVE_THREADS = 1


@dataclass
class ChunkOutcome:
    """A chunk after one of its passes; ``fitted`` when that pass was the first pass's last and
    this call ran the fit: the chunks' second pass is then to be sent (or run here)."""

    chunk: ProfileRunChunk
    fitted: bool = False


def running(lease_seconds: int) -> bool:
    """Whether a rebuild is running and made progress within the lease."""
    since = timezone.now() - timedelta(seconds=lease_seconds)
    return (
        ProfileRun.objects.filter(status=ProfileRun.Status.RUNNING, heartbeat_at__gte=since)
        .exclude(stage=ProfileRun.Stage.CLOSED)
        .exists()
    )


def plan(
    kind: str, user_pks: Sequence[Any], *, chunk_users: int, base: ProfileRun | None = None
) -> ProfileRun:
    """A running rebuild of ``user_pks`` (in key order), ``chunk_users`` per chunk, at least one chunk.

    ``chunk_users`` is rounded up to a multiple of ``PROFILE_MODEL_BATCH``: a chunk then holds
    whole groups of the users the network scores together, the groups one process scores, so the
    chunks compute exactly its numbers. An incremental rebuild (``kind``) places its users with
    the full run ``base``.
    """
    if chunk_users < 1:
        raise ValueError(f"PROFILE_CHUNK_USERS must be at least 1, not {chunk_users}")
    group = max(int(recommender_settings.PROFILE_MODEL_BATCH), 1)
    chunk_users = -(-chunk_users // group) * group
    now_dt = timezone.now()
    keys = [str(pk) for pk in user_pks]
    ranges = [keys[start : start + chunk_users] for start in range(0, len(keys), chunk_users)] or [[]]
    full = kind == ProfileRun.Kind.FULL
    with transaction.atomic():
        run = ProfileRun.objects.create(
            kind=kind,
            created_at=now_dt,
            heartbeat_at=now_dt,
            clock=data_now(now_dt),
            stage=ProfileRun.Stage.FEATURES if full else ProfileRun.Stage.PROFILES,
            chunk_users=chunk_users,
            chunks_total=len(ranges),
            params={} if full or base is None else {"based_on_run": base.pk},
        )
        ProfileRunChunk.objects.bulk_create(
            ProfileRunChunk(
                run=run,
                index=index,
                first_user=part[0] if part else "",
                last_user=part[-1] if part else "",
                user_keys=part,
                planned=len(part),
            )
            for index, part in enumerate(ranges)
        )
    return run


def start(run: ProfileRun, *, fan_out: FanOut | None = None, progress: Progress | None = None) -> ProfileRun:
    """Run a planned rebuild: its chunks by ``fan_out`` (Celery tasks) or here, in order.

    ``fan_out(run)`` is called when the run has more than one chunk; it must start
    :func:`run_chunk` for every chunk waiting (the worker that runs the fit sends the second pass).
    Without it, or with one chunk, everything runs in this process and the run comes back closed.
    """
    if fan_out is not None and run.chunks_total > 1:
        try:
            fan_out(run)
        except Exception:
            # nothing will run its chunks (e.g. the broker is unreachable): closed as failed now,
            # so that it does not keep the next rebuild out for the lease
            finish(run.pk)
            raise
        run.refresh_from_db()  # (tasks run eagerly, e.g. without a broker, have finished it)
        return run
    try:
        while True:
            run.refresh_from_db()
            index = waiting(run).order_by("index").values_list("index", flat=True).first()
            if run.status != ProfileRun.Status.RUNNING or index is None:
                break
            outcome = run_chunk(run.pk, index)
            if progress is not None:
                run.refresh_from_db()
                progress(run, outcome.chunk)
                if outcome.fitted:
                    progress(run, None)
    except Exception:
        finish(run.pk)  # the chunks left count as failed: the next rebuild may run
        raise
    return finish(run.pk)  # closed by its last chunk already, unless nothing was left to run


def waiting(run: ProfileRun) -> QuerySet[ProfileRunChunk]:
    """The chunks of ``run`` whose next pass is still to run."""
    if run.stage == ProfileRun.Stage.FEATURES:
        return run.chunks.filter(status=ProfileRunChunk.Status.PENDING)
    if run.stage == ProfileRun.Stage.PROFILES:
        full = run.kind == ProfileRun.Kind.FULL
        return run.chunks.filter(
            status=ProfileRunChunk.Status.STAGED if full else ProfileRunChunk.Status.PENDING
        )
    return run.chunks.none()


def run_chunk(run_id: int, index: int) -> ChunkOutcome:
    """Run the next pass of one chunk; the last of a pass moves the run on (the fit, or the close).

    Idempotent: a rerun (a redelivered task, a retry) of a pass stores the same staged features
    or the same profiles; a chunk whose pass is done, or of a run no longer running, is left alone.
    """
    chunk = ProfileRunChunk.objects.select_related("run").defer("staged").get(run_id=run_id, index=index)
    run = chunk.run
    if run.status != ProfileRun.Status.RUNNING:
        return ChunkOutcome(chunk)
    full = run.kind == ProfileRun.Kind.FULL
    with threadpool_limits(limits=NATIVE_THREADS):
        if run.stage == ProfileRun.Stage.FEATURES and chunk.status == ProfileRunChunk.Status.PENDING:
            passes.stage_features(run, chunk)
        elif run.stage == ProfileRun.Stage.PROFILES and chunk.status == (
            ProfileRunChunk.Status.STAGED if full else ProfileRunChunk.Status.PENDING
        ):
            passes.write_profiles_of(run, chunk)
        fitted = _advance(run_id)
    chunk.refresh_from_db(fields=["status", "profiles", "planned", "attempts", "error", "seconds"])
    run.refresh_from_db()
    return ChunkOutcome(chunk, fitted)


def fail_chunk(run_id: int, index: int, error: BaseException) -> ChunkOutcome:
    """Record a chunk that failed for good (its users keep their profiles); moves the run on when last."""
    chunk = ProfileRunChunk.objects.select_related("run").defer("staged").get(run_id=run_id, index=index)
    if chunk.run.status != ProfileRun.Status.RUNNING:
        return ChunkOutcome(chunk)
    ProfileRunChunk.objects.filter(pk=chunk.pk).update(
        status=ProfileRunChunk.Status.FAILED,
        attempts=chunk.attempts + 1,
        error=f"{type(error).__name__}: {error}"[:2000],
        staged=None,
        finished_at=timezone.now(),
    )
    with threadpool_limits(limits=NATIVE_THREADS):
        fitted = _advance(run_id)
    chunk.refresh_from_db(fields=["status", "attempts", "error"])
    chunk.run.refresh_from_db()
    return ChunkOutcome(chunk, fitted)


def _advance(run_id: int) -> bool:
    """Move the run on when no chunk waits: the fit after the first pass, the close after the last.

    Exactly one caller does (the run's row is locked). True when this call ran the fit.
    """
    with transaction.atomic():
        run = ProfileRun.objects.select_for_update().get(pk=run_id)
        if run.status != ProfileRun.Status.RUNNING or run.stage not in (
            ProfileRun.Stage.FEATURES,
            ProfileRun.Stage.PROFILES,
        ):
            return False
        run.heartbeat_at = timezone.now()
        if waiting(run).exists():
            run.save(update_fields=["heartbeat_at"])
            return False
        # every chunk written, or none left to fit on (all failed their first pass): closed
        closed = (
            run.stage == ProfileRun.Stage.PROFILES
            or not run.chunks.filter(status=ProfileRunChunk.Status.STAGED).exists()
        )
        if closed:
            _close(run)
        else:
            run.stage = ProfileRun.Stage.FIT
            run.save(update_fields=["stage", "heartbeat_at"])
    if closed:
        _refresh_statistics(run)
        return False
    return _fit(run)


def _fit(run: ProfileRun) -> bool:
    """The final step of a full rebuild's first pass; on an error the run fails and everyone keeps
    their profile (the error is recorded and logged, never raised into the chunk that ran it)."""
    try:
        passes.fit_run(run)
    except Exception as exc:
        logger.exception(
            "Profile rebuild %s: the fit failed; every user keeps their previous profile", run.pk
        )
        Segment.objects.filter(run=run).delete()
        finish(run.pk, error=exc)
        return False
    ProfileRun.objects.filter(pk=run.pk, stage=ProfileRun.Stage.FIT).update(
        stage=ProfileRun.Stage.PROFILES, heartbeat_at=timezone.now()
    )
    return True


def finish(run_id: int, *, error: BaseException | None = None) -> ProfileRun:
    """Close a rebuild now (its final step): chunks still waiting count as failed."""
    with transaction.atomic():
        run = ProfileRun.objects.select_for_update().get(pk=run_id)
        if run.status != ProfileRun.Status.RUNNING:
            return run
        _close(run, error)
    _refresh_statistics(run)
    return run


def _refresh_statistics(run: ProfileRun) -> None:
    """After a rebuild wrote profiles: the tables' statistics once (the chunks leave them), and
    after a full one a VACUUM (an upsert leaves every old row version behind) where it can run."""
    if not run.users:
        return
    if run.kind != ProfileRun.Kind.FULL or not vacuum_profiles():
        analyze_profiles()


def _close(run: ProfileRun, error: BaseException | None = None) -> None:
    """Counts, summary and status of the run from its chunks (inside the caller's lock)."""
    chunks = list(run.chunks.defer("staged", "placement").order_by("index"))
    done = [c for c in chunks if c.status == ProfileRunChunk.Status.DONE]
    kept = [c for c in chunks if c.status != ProfileRunChunk.Status.DONE]
    if done and run.kind == ProfileRun.Kind.FULL:
        _retire_unprofiled(run, kept)
    _count_segments(run if run.kind == ProfileRun.Kind.FULL else run.params.get("based_on_run"))
    counts = ProfileTag.objects.values("label").annotate(n=Count("pk")).order_by("-n", "label")
    versions = sorted({c.model_version for c in done if c.model_version is not None})
    notes: list[dict[str, Any]] = []
    for chunk in done:
        notes += [n for n in chunk.notes if n not in notes]
    now = timezone.now()
    run.users = sum(c.profiles for c in done)
    run.failed_users = sum(c.planned for c in kept)
    run.model_version = versions[-1] if versions else run.model_version
    run.status = (
        ProfileRun.Status.COMPLETED
        if not kept
        else ProfileRun.Status.PARTIAL
        if done
        else ProfileRun.Status.FAILED
    )
    run.stage = ProfileRun.Stage.CLOSED
    run.finished_at = now
    run.summary = {
        **run.summary,
        "users": run.users,
        "users_without_events": sum(c.without_events for c in done),
        "outliers": sum(c.outliers for c in done),
        "tag_counts": {row["label"]: row["n"] for row in counts},
        "propensity_source": done[0].propensity_source if done else "",
        "notes": notes,
        "seconds": round((now - run.created_at).total_seconds(), 3),
        "chunks": len(chunks),
        "kept_users": [f"{c.first_user}..{c.last_user}" for c in kept if c.planned],
    }
    if error is not None:
        run.error = f"{type(error).__name__}: {error}"[:2000]
    run.save()
    run.chunks.exclude(staged=None).update(staged=None)
    if kept:
        logger.error(
            "Profile rebuild %s: %d of %d chunks failed; users %s kept their previous profiles",
            run.pk,
            len(kept),
            len(chunks),
            ", ".join(run.summary["kept_users"]) or "(none)",
        )
    if len(versions) > 1:  # the active model changed during the rebuild: the next one evens it out
        logger.warning("Profile rebuild %s used model versions %s", run.pk, versions)
    logger.info(
        "Profile rebuild %s (%s): %d profiles in %d chunks in %.1fs",
        run.pk,
        run.kind,
        run.users,
        len(chunks),
        run.summary["seconds"],
    )


def _retire_unprofiled(run: ProfileRun, kept: Sequence[ProfileRunChunk]) -> None:
    """After a full rebuild: profiles it did not write lose their segment and tag rows, except
    those of the failed chunks' users, who keep their previous profile whole."""
    kept_pks = [pk for chunk in kept for pk in passes.chunk_user_pks(chunk)]
    stale = UserProfile.objects.exclude(updated_at=run.created_at).exclude(pk__in=kept_pks)
    ProfileTag.objects.filter(profile__in=stale).delete()
    stale.exclude(segment=None).update(segment=None)
    # earlier runs' segments, unless a kept profile still names one
    Segment.objects.exclude(run=run).filter(profiles__isnull=True).delete()


def _count_segments(run_id: Any) -> None:
    """Each segment's size: the profiles that name it now."""
    if run_id is None:
        return
    segments = list(Segment.objects.filter(run_id=run_id).annotate(members=Count("profiles")))
    for segment in segments:
        segment.size = segment.members
    Segment.objects.bulk_update(segments, ["size"])
