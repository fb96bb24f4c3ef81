"""A shadow candidate's list for one served request, stored beside the list that was served.

Runs in a Celery task (``recommendations.score_shadow``), never on the request: the candidate
version (loaded once per process, ``registry.get_version_model``) scores the shopper's latest
events; the items the served list could not show (bought, the latest ones looked at, not
recommendable) are left out, as serving does. A version that is gone or refused, or a scoring
error, is logged and counted on the run (``ShadowRun.failures``); nothing reaches the shopper.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from recommendations.adapter import get_adapter
from recommendations.services.serving import catalogue
from recommendations.services.serving.history import purchased_keys, state_of
from recommendations.services.serving.stages import recent_distinct

logger = logging.getLogger(__name__)

__all__ = ["ShadowOutcome", "overlap_at", "score_queued", "score_request"]

OVERLAP_DEPTH = 10


@dataclass(frozen=True)
class ShadowOutcome:
    """What one scoring did: ``status`` is scored, duplicate, gone, erased, no_history or failed."""

    status: str
    overlap: float | None = None


def overlap_at(served: list[str], shadow: list[str], depth: int = OVERLAP_DEPTH) -> float:
    """The share of the served list's first ``depth`` items that the shadow's first ``depth`` hold."""
    top = served[:depth]
    if not top:
        return 0.0
    return len(set(top) & set(shadow[:depth])) / len(top)


def _failed(run_id: int, error: str) -> ShadowOutcome:
    from recommendations.models import ShadowRun

    logger.warning("shadow run %s: %s", run_id, error)
    ShadowRun.objects.filter(pk=run_id).update(failures=F("failures") + 1, last_error=error[:1000])
    return ShadowOutcome("failed")


def _erased(user_id: Any, visitor_id: str) -> bool:
    from recommendations.models.privacy import ErasedSubject, subject_hash

    hashes = []
    if user_id is not None:
        hashes.append(subject_hash("user", user_id))
    if visitor_id:
        hashes.append(subject_hash("visitor", visitor_id))
    return bool(hashes) and ErasedSubject.objects.filter(subject_hash__in=hashes).exists()


def shadow_list(loaded: Any, user_id: Any, visitor_id: str, limit: int) -> list[str] | None:
    """The candidate's list for the shopper now (None without history); raises on a scoring error."""
    state = state_of(user_id, visitor_id)
    if not state.history:
        return None
    excluded = (
        state.keys_with_type("purchase") | purchased_keys(user_id) | set(recent_distinct(state.history, 5))
    )
    scored = loaded.recommender.recommend([state.history], limit * 3 + len(excluded))[0]
    keys = [str(key) for key, _score in scored if str(key) not in excluded]
    available = catalogue.available_items(get_adapter(), keys)
    return [key for key in keys if key in available][:limit]


def score_request(
    run_id: int, recommendation_id: str, user_id: Any, visitor_id: str, served_keys: list[str], limit: int
) -> ShadowOutcome:
    """Score one sampled request with the run's candidate and store both lists; idempotent."""
    from recommendations.models import ShadowRun, ShadowScore
    from recommendations.services.registry import get_version_model

    run = ShadowRun.objects.filter(pk=run_id, is_active=True).only("pk", "model_version_id").first()
    if run is None:
        logger.info("shadow run %s is gone or stopped: request %s not scored", run_id, recommendation_id)
        return ShadowOutcome("gone")
    if ShadowScore.objects.filter(run_id=run_id, recommendation_id=recommendation_id).exists():
        return ShadowOutcome("duplicate")
    if _erased(user_id, visitor_id):
        return ShadowOutcome("erased")
    loaded = get_version_model(run.model_version_id)
    if loaded is None:
        return _failed(run_id, f"model version {run.model_version_id} is missing or its artefact was refused")
    try:
        keys = shadow_list(loaded, user_id, visitor_id, max(1, int(limit)))
    except Exception as exc:  # the candidate's own failure: counted, never raised to the worker loop
        logger.exception("shadow run %s: the candidate failed to score", run_id)
        return _failed(run_id, f"scoring failed: {type(exc).__name__}: {exc}")
    if keys is None:
        return ShadowOutcome("no_history")
    overlap = overlap_at(list(served_keys), keys)
    try:
        with transaction.atomic():
            ShadowScore.objects.create(
                run_id=run_id,
                recommendation_id=uuid.UUID(str(recommendation_id)),
                user_id=user_id,
                visitor_id=(visitor_id or "")[:64],
                served_keys=list(served_keys),
                shadow_keys=keys,
                overlap_at_10=overlap,
            )
    except IntegrityError:  # a redelivery scored it meanwhile, or the user was deleted
        return ShadowOutcome("duplicate")
    return ShadowOutcome("scored", overlap)


def score_queued(limit: int = 1_000) -> dict[str, int]:
    """Score the jobs queued in Redis (``sampling.take_queued``); returns ``{status: count}``."""
    from recommendations.services.shadow.sampling import take_queued

    counts: dict[str, int] = {}
    for job in take_queued(limit):
        try:
            status = score_request(*job).status
        except Exception:  # one bad job (a malformed row) must not lose the rest of the batch
            logger.exception("shadow job %r could not be scored", job[:2])
            status = "failed"
        counts[status] = counts.get(status, 0) + 1
    return counts
