"""What one chunk of a profile rebuild does, and the fit between a full rebuild's two passes.

A full rebuild's chunk runs twice: :func:`stage_features` computes its users' features,
propensity and embeddings and stages them on the chunk's row; once every chunk is staged,
:func:`fit_run` learns the scaling, outliers, segments and tag thresholds from all of them (the
rebuild's only step that sees every user) and hands each chunk its users' segment labels and
outlier flags; :func:`write_profiles_of` then places and writes the chunk's profiles. An
incremental rebuild's chunk computes, places (with the last full run's numbers) and writes at once.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.core.profiles.features import select_affinity_columns
from recommendations.models import ProfileRun, ProfileRunChunk, ProfileTag, Segment
from recommendations.services.profiles import staging
from recommendations.services.profiles.compute import Computed, compute
from recommendations.services.profiles.features import Catalogue, load_catalogue, profile_users
from recommendations.services.profiles.full import fit_full, place_full
from recommendations.services.profiles.incremental import place_incremental
from recommendations.services.profiles.outcome import Placement, write_computed

# The catalogue of the run this process last worked on: a process (a worker, or one process
# running every chunk) reads it once per rebuild, not once per chunk.
_catalogue: tuple[tuple[int, float], Catalogue] | None = None


def catalogue_of(run: ProfileRun) -> Catalogue:
    """Every item's category and price, read once per rebuild in this process."""
    global _catalogue
    # the start time too: a key alone may come back (SQLite reuses the keys of deleted rows)
    key = (run.pk, run.created_at.timestamp())
    if _catalogue is None or _catalogue[0] != key:
        _catalogue = (key, load_catalogue())
    return _catalogue[1]


def chunk_user_pks(chunk: ProfileRunChunk) -> list[Any]:
    """The planned users of the chunk, as primary keys of the user model."""
    to_python = get_user_model()._meta.pk.to_python
    return [to_python(key) for key in chunk.user_keys]


def stage_features(run: ProfileRun, chunk: ProfileRunChunk) -> None:
    """A full rebuild's first pass: compute the chunk's features and stage them on its row.

    Every active category keeps an affinity column here; the rebuild chooses among them once all
    chunks are computed. A rerun computes and stages the same numbers again.
    """
    started = time.monotonic()
    pks, usernames = profile_users(chunk_user_pks(chunk))
    computed = compute(
        pks,
        usernames,
        now=_clock(run),
        # one chunk of everyone reads the events in one scan; a smaller one only its users'
        restrict=run.chunks_total > 1,
        affinity_columns=None,
        every_affinity=True,
        catalogue=catalogue_of(run),
    )
    ProfileRunChunk.objects.filter(pk=chunk.pk, status=ProfileRunChunk.Status.PENDING).update(
        status=ProfileRunChunk.Status.STAGED,
        staged=staging.pack(computed),
        model_version=computed.model_version,
        propensity_source=computed.propensity_source,
        notes=computed.notes,
        attempts=F("attempts") + 1,
        error="",
        seconds=round(time.monotonic() - started, 4),
    )


def fit_run(run: ProfileRun) -> None:
    """Learn a full rebuild's scaling, outliers, segments and tag thresholds from every staged chunk.

    Stores what it learned on the run (``params``, its ``Segment`` rows) and gives each staged
    chunk its users' segment labels and outlier flags (``placement``). Chunks that failed their
    first pass are not part of it: their users keep their previous profiles.
    """
    staged = list(
        run.chunks.filter(status=ProfileRunChunk.Status.STAGED).order_by("index").values_list("pk", flat=True)
    )
    # one staged value in memory at a time, beside the arrays unpacked so far
    parts = [
        staging.unpack(ProfileRunChunk.objects.values_list("staged", flat=True).get(pk=pk)) for pk in staged
    ]
    affinity = staging.affinity_columns_of(parts, int(recommender_settings.PROFILE_AFFINITY_CATEGORIES))
    sizes = [len(part.user_pks) for part in parts]
    computed = staging.concatenate(parts, affinity)
    versions = sorted({p.model_version for p in parts if p.model_version is not None})
    if len(versions) > 1:  # the active model changed between two chunks: the next full rebuild evens it out
        run.summary = {**run.summary, "model_versions": versions}
    fit = fit_full(run, computed, run.created_at)
    bounds = np.cumsum([0, *sizes])
    for pk, start, end in zip(staged, bounds[:-1], bounds[1:], strict=True):
        ProfileRunChunk.objects.filter(pk=pk).update(
            placement={
                "labels": fit.labels[start:end].tolist(),
                "outliers": fit.is_outlier[start:end].tolist(),
            }
        )
    run.model_version = versions[-1] if versions else None
    run.summary = {**run.summary, "notes": computed.notes, "propensity_source": computed.propensity_source}
    run.save(update_fields=["model_version", "summary"])


def write_profiles_of(run: ProfileRun, chunk: ProfileRunChunk) -> None:
    """Place the chunk's users and write their profiles and tags (the chunk's last pass).

    A full rebuild places them from the chunk's staged features with the fit's numbers; an
    incremental one computes their features now and places them with the last full run's.
    Idempotent: the chunk's row is locked while it is written, and a chunk already written is
    left alone.
    """
    started = time.monotonic()
    if run.kind == ProfileRun.Kind.FULL:
        computed = staging.unpack(chunk.staged)
        select_affinity_columns(computed.table, run.params["affinity_columns"])
        placement = place_full(
            computed,
            run.params,
            np.asarray(chunk.placement["labels"], dtype=np.int64),
            np.asarray(chunk.placement["outliers"], dtype=bool),
        )
        segment_rows = {s.number: s for s in Segment.objects.filter(run=run)}
    else:
        base = ProfileRun.objects.get(pk=run.params["based_on_run"])
        pks, usernames = profile_users(chunk_user_pks(chunk))
        computed = compute(
            pks,
            usernames,
            now=_clock(run),
            restrict=True,
            affinity_columns=base.params["affinity_columns"],
            catalogue=catalogue_of(run),
        )
        placement = place_incremental(computed, base.params)
        segment_rows = {s.number: s for s in Segment.objects.filter(run=base)}
    with transaction.atomic():
        locked = ProfileRunChunk.objects.select_for_update().only("status").get(pk=chunk.pk)
        if locked.status == ProfileRunChunk.Status.DONE:
            return
        ProfileTag.objects.filter(profile_id__in=computed.user_pks).delete()
        write_computed(computed, placement, segment_rows, run.created_at)
        _record_written(chunk, computed, placement, time.monotonic() - started)


def _record_written(chunk: ProfileRunChunk, computed: Computed, placement: Placement, seconds: float) -> None:
    now = timezone.now()
    ProfileRunChunk.objects.filter(pk=chunk.pk).update(
        status=ProfileRunChunk.Status.DONE,
        profiles=len(computed.user_pks),
        outliers=int(placement.is_outlier.sum()),
        tagged=sum(1 for row in placement.tags if row),
        without_events=int((~computed.has_events).sum()),
        model_version=computed.model_version,
        propensity_source=computed.propensity_source,
        notes=computed.notes,
        attempts=F("attempts") + 1,
        error="",
        staged=None,  # the staged features are not needed any more
        seconds=F("seconds") + round(seconds, 4),
        finished_at=now,
    )
    ProfileRun.objects.filter(pk=chunk.run_id).update(heartbeat_at=now)


def _clock(run: ProfileRun) -> float:
    """The run's data clock in unix seconds (what every chunk's features count back from)."""
    return (run.clock or run.created_at).timestamp()
