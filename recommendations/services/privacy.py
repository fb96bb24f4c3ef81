"""Privacy services: erase everything held about one person, and export it.

``forget_user`` is the one erasure path (the ``forget_user`` command, the admin action).
Scope of a person: their user id plus every anonymous visitor id seen on their events
(the history linked to them at login). Anonymous events of those visitor ids are
erased too; events of *other* users that share a visitor id (a shared browser) are not.

Order of work, chosen so no event slips back in:

1. tombstones (``ErasedSubject``) are committed first: from then on ingestion drops the
   subject's events and the data bridge never reads them (see ``events_exclusion``);
2. the person's rows leave the shared impression queue (``serving.impressions.forget``);
3. rows are deleted in one transaction, under the erasure barrier
   (``runtime.locks.erasure_barrier``): events, profile (and its tag rows), precomputed
   list, impressions, shadow scores, "not interested" marks, experiment assignments (results that an
   experiment keeps after its end are aggregates only). An impression that a web process took from
   the queue before step 2 is either written before this transaction (and deleted by it) or
   checked against the tombstones of step 1 after it (and dropped): none is written after;
4. every cache key of the person is deleted after the commit: the keys of
   ``services.personal_keys``, the one module that serving, the fast path, freshness
   and the throttles build per-person keys with;
5. an ``ErasureAudit`` row records the hash, the counts and who asked (no personal data).

What erasure cannot reach: another process's local throttle counts while Redis is down
(they expire within the throttle's window). A person still browsing after their erasure
gets fresh cache entries built from what is left (nothing of theirs).

Erasure is also an objection to further tracking: later events of the same user id or
anonymous visitor id are dropped at ingestion. Running it twice is harmless (counts 0).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction
from django.db.models import Q

from behavior.items import item_key_field
from behavior.models import Event
from recommendations.models import (
    ErasedSubject,
    ErasureAudit,
    ExperimentAssignment,
    Impression,
    NotInterested,
    PrecomputedList,
    ShadowScore,
    UserProfile,
)
from recommendations.models.privacy import mark_erased_in_cache, subject_hash
from recommendations.runtime.locks import erasure_barrier
from recommendations.services import personal_keys
from recommendations.services.experiments.assignment import forget_kept
from recommendations.services.profiles.explanations import segment_name
from recommendations.services.serving import impressions

logger = logging.getLogger(__name__)

__all__ = ["ErasureResult", "export_user_data", "forget_user", "linked_visitor_ids"]


@dataclass
class ErasureResult:
    """What one ``forget_user`` call did."""

    subject_hash: str
    counts: dict[str, int] = field(default_factory=dict)
    visitor_count: int = 0
    audit_id: int | None = None
    # cache keys of the person deleted (``services.personal_keys``)
    cache_keys: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def linked_visitor_ids(user: Any) -> list[str]:
    """Every anonymous visitor id seen on the user's events, impressions, marks or experiment
    assignments (an assignment carried over at login names the browser's visitor id; sorted)."""
    found: set[str] = set()
    for model in (Event, Impression, NotInterested, ExperimentAssignment):
        found.update(
            model.objects.filter(user_id=user.pk)
            .exclude(visitor_id="")
            .values_list("visitor_id", flat=True)
            .distinct()
        )
    return sorted(found)


def _events_of(user: Any, visitors: list[str]) -> Q:
    # A visitor id also names the person's anonymous events; never another user's events.
    return Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors)


def forget_user(user: Any, *, requested_by: str) -> ErasureResult:
    """Erase everything held about ``user`` and keep them out of later training (idempotent)."""
    visitors = linked_visitor_ids(user)
    user_hash = subject_hash("user", user.pk)
    tombstones = [(ErasedSubject.Kind.USER, user_hash)] + [
        (ErasedSubject.Kind.VISITOR, subject_hash("visitor", visitor)) for visitor in visitors
    ]
    with transaction.atomic():
        existing = set(
            ErasedSubject.objects.filter(subject_hash__in=[h for _, h in tombstones]).values_list(
                "subject_hash", flat=True
            )
        )
        ErasedSubject.objects.bulk_create(
            [ErasedSubject(kind=kind, subject_hash=h) for kind, h in tombstones if h not in existing],
            ignore_conflicts=True,
        )
    mark_erased_in_cache()
    try:
        impressions.forget(user.pk, visitors)
    except Exception:  # Redis down: the queued rows are dropped when written (tombstones)
        logger.warning("could not clean the impression queue of an erased subject", exc_info=True)

    counts: dict[str, int] = {}
    with transaction.atomic():
        erasure_barrier(exclusive=True)
        counts["events"] = _delete(Event.objects.filter(_events_of(user, visitors)))
        counts["profiles"] = _delete(UserProfile.objects.filter(user_id=user.pk))
        counts["precomputed_lists"] = _delete(PrecomputedList.objects.filter(user_id=user.pk))
        counts["impressions"] = _delete(
            Impression.objects.filter(Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors))
        )
        # a shadow candidate's lists for the person's requests (scores written later are dropped:
        # the scoring task checks the tombstones first)
        counts["shadow_scores"] = _delete(
            ShadowScore.objects.filter(Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors))
        )
        counts["not_interested"] = _delete(
            NotInterested.objects.filter(Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors))
        )
        # after the impressions (which point at them); experiment results keep only aggregates
        counts["experiment_assignments"] = _delete(_assignments_of(user, visitors))
        audit = ErasureAudit.objects.create(
            subject_hash=user_hash,
            requested_by=requested_by[:150],
            counts=counts,
            visitor_count=len(visitors),
        )
    # After the rows are gone (deleting cache entries early could let a reader refill them).
    cached = _forget_cached(user.pk, visitors)
    forget_kept()  # this process's kept assignments (others keep theirs a minute: rows then dropped)
    logger.info("erased subject %s… (%s, %d cache keys) for %s", user_hash[:12], counts, cached, requested_by)
    return ErasureResult(
        subject_hash=user_hash,
        counts=counts,
        visitor_count=len(visitors),
        audit_id=audit.pk,
        cache_keys=cached,
    )


def _assignments_of(user: Any, visitors: list[str]) -> Any:
    """The person's experiment assignments: as the user, and as any of their visitor ids."""
    return ExperimentAssignment.objects.filter(
        Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors)
    )


def _delete(queryset: Any) -> int:
    """Delete and return how many rows of the queryset's own model went (cascades not counted)."""
    _, per_model = queryset.delete()
    return int(per_model.get(queryset.model._meta.label, 0))


def _forget_cached(user_id: Any, visitors: list[str]) -> int:
    """Delete every cache key naming the person (best effort: entries expire anyway); how many went."""
    targets = personal_keys.erasure_targets(user_id, visitors)
    try:
        return _delete_keys(targets.exact, targets.regex(cache.make_key("{}")))
    except Exception:  # a cache outage must not undo an erasure; the entries time out
        logger.warning("could not delete cached entries of an erased subject", exc_info=True)
        return 0


def _glob_literal(text: str) -> str:
    """``text`` as a literal inside a Redis ``MATCH`` pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _delete_keys(exact: list[str], pattern: re.Pattern[str] | None) -> int:
    """Delete the ``exact`` keys and every key ``pattern`` fully matches (as the cache writes keys).

    Redis: one ``SCAN`` over the cache's own key space (its prefix), whatever the number of
    patterns. Local memory (the embedded demo): its dictionary. Other backends cannot list
    their keys: the exact keys are deleted, the others expire.
    """
    backend = caches["default"]
    made = [backend.make_key(key) for key in exact]
    if isinstance(backend, RedisCache):
        client = backend._cache.get_client(None, write=True)
        found = list(made)
        if pattern is not None:
            prefix = backend.make_key("{}").partition("{}")[0]
            for key in client.scan_iter(match=_glob_literal(prefix) + "*", count=1000):
                text = key.decode(errors="replace")
                if pattern.fullmatch(text):
                    found.append(key)
        return int(client.delete(*found)) if found else 0
    stored = getattr(backend, "_cache", None)
    if isinstance(stored, dict):  # LocMemCache: its dictionary holds made keys
        wanted = set(made)
        with backend._lock:  # type: ignore[attr-defined]  # LocMemCache's own lock, checked above
            doomed = [
                k for k in list(stored) if k in wanted or (pattern is not None and pattern.fullmatch(k))
            ]
            for key in doomed:
                backend._delete(key)  # type: ignore[attr-defined]
        return len(doomed)
    backend.delete_many(exact)
    return len(exact)


def export_user_data(user: Any) -> dict[str, Any]:
    """Everything held about ``user`` by the recommender, as JSON-able data (right of access)."""
    visitors = linked_visitor_ids(user)
    key_lookup = f"item__{item_key_field()}"
    events = [
        {
            "event_id": str(row["event_id"]),
            "event_type": row["event_type"],
            "item": None if row[key_lookup] is None else str(row[key_lookup]),
            "occurred_at": row["occurred_at"].isoformat(),
            "value": None if row["value"] is None else str(row["value"]),
            "quantity": row["quantity"],
            "visitor_id": row["visitor_id"],
            "session_id": row["session_id"],
            "recommendation_id": None if row["recommendation_id"] is None else str(row["recommendation_id"]),
            "placement": row["placement"],
            "position": row["position"],
            "context": row["context"],
        }
        for row in Event.objects.filter(_events_of(user, visitors))
        .order_by("occurred_at", "pk")
        .values(
            "event_id",
            "event_type",
            key_lookup,
            "occurred_at",
            "value",
            "quantity",
            "visitor_id",
            "session_id",
            "recommendation_id",
            "placement",
            "position",
            "context",
        )
    ]
    profile = UserProfile.objects.select_related("segment").filter(user_id=user.pk).first()
    precomputed = PrecomputedList.objects.filter(user_id=user.pk).first()
    return {
        "user": {"username": user.get_username(), "email": getattr(user, "email", "") or ""},
        "visitor_ids": visitors,
        "events": events,
        "profile": None
        if profile is None
        else {
            "segment": segment_name(profile.segment.traits, profile.segment.name)
            if profile.segment
            else None,
            "tags": profile.tags,
            "propensity": profile.propensity,
            "features": profile.features,
            "is_outlier": profile.is_outlier,
            "notes": profile.notes,
            "updated_at": profile.updated_at.isoformat(),
        },
        "precomputed_recommendations": None
        if precomputed is None
        else {
            "items": precomputed.item_keys,
            "model_version": precomputed.model_version,
            "computed_at": precomputed.computed_at.isoformat(),
        },
        "impressions": [
            {
                "recommendation_id": str(i.recommendation_id),
                "placement": i.placement,
                "items": i.item_keys,
                "created_at": i.created_at.isoformat(),
            }
            for i in Impression.objects.filter(
                Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors)
            ).order_by("created_at")
        ],
        "shadow_scores": [
            {"recommendation_id": str(rid), "shadow_items": keys, "created_at": created_at.isoformat()}
            for rid, keys, created_at in ShadowScore.objects.filter(
                Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors)
            )
            .order_by("created_at")
            .values_list("recommendation_id", "shadow_keys", "created_at")
        ],
        "experiment_assignments": [
            {"experiment": name, "arm": arm, "assigned_at": assigned_at.isoformat()}
            for name, arm, assigned_at in _assignments_of(user, visitors)
            .order_by("assigned_at")
            .values_list("experiment__name", "arm__name", "assigned_at")
        ],
        "not_interested": sorted(
            NotInterested.objects.filter(
                Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors)
            ).values_list("item_key", flat=True)
        ),
    }
