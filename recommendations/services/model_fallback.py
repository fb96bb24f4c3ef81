"""When a model version's artefact does not load: count it, say so, serve an older one, retrain once.

A release can meet an artefact it cannot read: one written by a newer release (its
``format_version`` is above :data:`recommendations.core.artifacts.FORMAT_VERSION`, e.g. after the
code was rolled back), or a file damaged in storage. Such a version never stops a process: the
failure is logged and counted once per process (``recommender_model_load_failures_total{kind}``),
written on the version's ``status_reason``, the registry serves the newest earlier-promoted
version that loads (else the popularity fallback), and one retrain is queued so that a model this
release reads replaces it. Artefacts of older releases load (``persistence.load`` fills what they
lack); this module only handles the ones that still fail.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from django.core.cache import cache
from django.utils import timezone
from prometheus_client import Counter

from recommendations.core.artifacts import ArtifactFormatError
from recommendations.models import ModelVersion

logger = logging.getLogger(__name__)

__all__ = ["LOAD_FAILURES", "failure_kind", "fallback_versions", "record_failure", "request_retrain"]

LOAD_FAILURES = Counter(
    "recommender_model_load_failures",
    "Model artefacts that failed to load in a process, by kind (newer_format, unreadable).",
    ["kind"],
)
#: earlier versions tried, newest first, before the popularity fallback serves
FALLBACK_CANDIDATES = 3
#: at most one retrain per this many seconds for unloadable artefacts, across processes: a
#: retrained version that fails too (a broken storage) must not start a retrain loop
RETRAIN_GUARD_SECONDS = 6 * 3600
RETRAIN_GUARD_KEY = "recommender:retrain-after-load-failure"


def failure_kind(exc: BaseException) -> str:
    """``newer_format`` for an artefact of a newer release, ``unreadable`` for anything else."""
    return "newer_format" if isinstance(exc, ArtifactFormatError) else "unreadable"


def record_failure(version: ModelVersion, exc: BaseException) -> None:
    """Log and count a failed load (the caller does it once per process) and note it on the version."""
    kind = failure_kind(exc)
    LOAD_FAILURES.labels(kind).inc()
    logger.error("model v%s refused (%s): %s", version.number, kind, exc)
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M:%S %Z")
    message = f"Artefact refused on load ({stamp}, {kind}): {exc}"
    reason = f"{message}\n{version.status_reason}".strip() if version.status_reason else message
    try:
        ModelVersion.objects.filter(pk=version.pk).update(status_reason=reason[:5000])
    except Exception:
        logger.warning("could not record the load error on model v%s", version.number, exc_info=True)


def fallback_versions(broken: ModelVersion, failed: Collection[int]) -> list[ModelVersion]:
    """Versions that served before ``broken`` and may stand in for it, newest first.

    Only versions that were once promoted (each passed the promotion guard in its day), older
    than ``broken``, and not already refused in this process.
    """
    return list(
        ModelVersion.objects.filter(promoted_at__isnull=False, number__lt=broken.number)
        .exclude(pk__in=[*failed, broken.pk])
        .order_by("-number")[:FALLBACK_CANDIDATES]
    )


def request_retrain(version: ModelVersion) -> bool:
    """Queue one retrain so a model this release reads replaces ``version``; whether it was queued.

    Guarded across processes by an atomic cache ``add`` for :data:`RETRAIN_GUARD_SECONDS`: the
    first process to notice queues it, the others (and a retrained version that fails again
    within the period) do not. Without the cache nothing is queued (a loop is worse than a wait
    for the nightly retrain). Never raises.
    """
    try:
        if not cache.add(RETRAIN_GUARD_KEY, version.pk, RETRAIN_GUARD_SECONDS):
            return False
    except Exception:
        logger.warning("cache unavailable: no retrain queued for the unloadable v%s", version.number)
        return False
    try:
        from recommendations.tasks import enqueue_retrain

        enqueue_retrain(triggered_by=f"load-failure:v{version.number}")
    except Exception:
        logger.exception("could not queue a retrain for the unloadable v%s", version.number)
        return False
    logger.warning("model v%s does not load: a retrain is queued to replace it", version.number)
    return True
