"""Reusing a served list: the API's plain "my list" answer assembled for the same inputs
(kept in the cache), and what a face may replay it from (:class:`types.ReusableList`).

A list lives at most ``LIST_CACHE_SECONDS`` and never past ``catalogue.trusted_until()`` of
the snapshot it was assembled against: an item deactivated without a signal (``QuerySet.update``)
leaves every reused or replayed list within the catalogue's ``MAX_AGE_SECONDS``, not that
bound plus the reuse's own lifetime.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from typing import Any

from django.utils.translation import get_language

from recommendations.conf import recommender_settings
from recommendations.core.merchandising import RuleIndex
from recommendations.services import personal_keys
from recommendations.services.merchandising.rules import next_change
from recommendations.services.serving import catalogue
from recommendations.services.serving.freshness import marker_text
from recommendations.services.serving.history import ShopperState
from recommendations.services.serving.personal import precomputed
from recommendations.services.serving.state import (
    Prefetched,
    cache_set,
    not_interested_cache_key,
    precomputed_cache_key,
)
from recommendations.services.serving.types import RecommendationResult, RecommendedItem, ReusableList


def list_cache_key(
    state: ShopperState,
    exclude: set[str],
    limit: int,
    placement: str,
    arm_id: int | None = None,
    *,
    rules: RuleIndex | None = None,
) -> str:
    """Where a list assembled from a precomputed list for these inputs is kept.

    The shopper's latest event and the active language are part of the key (a new event is a new
    key; reasons and URLs are worded per language), and so is the shopper's experiment arm (a
    list made before the experiment started is not reused in it) and the merchandising rules in
    force (a list made before a rule changed is not reused after it); what the value was built
    from (precomputed list, "not interested" marks) is checked on reading.
    """
    inputs: tuple[Any, ...] = (state.latest_ts, limit, placement, sorted(exclude), get_language())
    if arm_id is not None:
        inputs += (arm_id,)
    if rules is not None:
        inputs += (rules.fingerprint,)
    digest = hashlib.sha1(repr(inputs).encode(), usedforsecurity=False).hexdigest()
    return personal_keys.ASSEMBLED_LIST.key(state.user_id, inputs=digest)


def list_basis(state: ShopperState, prefetched: dict) -> tuple | None:
    """What a reusable list depends on, or None when the precomputed list is missing or stale."""
    stored = precomputed(state.user_id, prefetched)
    if stored is None or (state.latest_ts is not None and state.latest_ts > stored["computed_at"]):
        return None
    marks = prefetched.get(not_interested_cache_key(state.user_id, state.visitor_id))
    if marks is None:
        # marks not cached (e.g. one was just added): build afresh, reuse from the next request
        return None
    return (stored["computed_at"], stored["version"], tuple(marks))


def deadline(seconds: float | None = None, *, placement: str | None = None) -> float:
    """Wall-clock time a list assembled now may be reused until (see the module's doc).

    With a ``placement``, never past the next start or end of one of its merchandising rules.
    """
    seconds = recommender_settings.LIST_CACHE_SECONDS if seconds is None else seconds
    until = min(time.time() + seconds, catalogue.trusted_until())
    if placement is not None:
        change = next_change(placement)
        if change is not None:
            until = min(until, change)
    return until


def keep(list_key: str, result: RecommendationResult, basis: tuple, until: float) -> None:
    """Cache a served list without its id and item instances (tracked URLs get the id back on reuse)."""
    seconds = until - time.time()
    if seconds <= 0:
        return
    value = {
        "basis": basis,
        "until": until,
        "id": result.recommendation_id,
        "model_version": result.model_version,
        "source": result.source,
        "experiment": (result.experiment_id, result.arm_id, result.assignment_id),
        "merchandising": list(result.merchandising_rule_ids),
        "propensities": result.propensities,
        "items": [
            (
                e.key,
                e.score,
                e.reason,
                e.position,
                e.source,
                e.name,
                e.url,
                e.price,
                e.tracked_url,
                e.reason_code,
            )
            for e in result.items
        ],
    }
    cache_set(list_key, value, max(1, math.ceil(seconds)))


def reused(cached: Any, basis: tuple | None, *, placement: str) -> RecommendationResult | None:
    """The cached list as a new answer (new id), or None when absent, built on another basis or expired."""
    if basis is None or not isinstance(cached, dict) or cached.get("basis") != basis:
        return None
    if cached.get("until", 0) <= time.time():
        return None
    recommendation_id = str(uuid.uuid4())
    result = RecommendationResult(
        recommendation_id=recommendation_id,
        model_version=cached["model_version"],
        source=cached["source"],
        placement=placement,
    )
    result.experiment_id, result.arm_id, result.assignment_id = cached.get("experiment") or (None, None, None)
    result.merchandising_rule_ids = list(cached.get("merchandising") or ())
    result.propensities = cached.get("propensities")
    for key, score, reason, position, source, name, url, price, tracked, code in cached["items"]:
        result.items.append(
            RecommendedItem(
                key=key,
                item=None,
                score=score,
                reason=reason,
                position=position,
                source=source,
                name=name,
                url=url,
                price=price,
                tracked_url=tracked.replace(cached["id"], recommendation_id),
                reason_code=code,
            )
        )
    return result


def reusable(
    state: ShopperState, prefetched: Prefetched, result: RecommendationResult, until: float
) -> ReusableList | None:
    """What a face may replay this list from, or None.

    Only when both entries it depends on came from the cache in this request's round trip
    (their fingerprints are known); a new event, precomputed list or mark changes the basis.
    """
    if state.user_id is None:
        return None
    precomputed_key = precomputed_cache_key(state.user_id)
    marks_key = not_interested_cache_key(state.user_id, state.visitor_id)
    if precomputed_key not in prefetched.digests or marks_key not in prefetched.digests:
        return None
    seconds = until - time.time()
    if seconds < 1:
        return None
    return ReusableList(
        user_id=state.user_id,
        latest=marker_text(state.latest_ts),
        basis=(prefetched.digests[precomputed_key], prefetched.digests[marks_key]),
        result=result,
        seconds=int(seconds),
        language=get_language() or "",
    )
