"""Privacy services: erase everything held about one person, and export it.

``forget_user`` is the one erasure path (the ``forget_user`` command, the admin action).
Scope of a person: their user id plus every anonymous visitor id seen on their events
(the history linked to them at login). Anonymous events of those visitor ids are
erased too; events of *other* users that share a visitor id (a shared browser) are not.

Order of work, chosen so no event slips back in:

1. tombstones (``ErasedSubject``) are committed first: from then on ingestion drops the
   subject's events and the data bridge never reads them (see ``events_exclusion``);
2. rows are deleted in one transaction: events, profile (and its tag rows), precomputed
   list, impressions, "not interested" marks;
3. cached lists and states are deleted after the commit;
4. an ``ErasureAudit`` row records the hash, the counts and who asked (no personal data).

Erasure is also an objection to further tracking: later events of the same user id or
anonymous visitor id are dropped at ingestion. Running it twice is harmless (counts 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q

from behavior.items import item_key_field
from behavior.models import Event
from recommendations.models import (
    ErasedSubject,
    ErasureAudit,
    Impression,
    NotInterested,
    PrecomputedList,
    UserProfile,
)
from recommendations.models.privacy import mark_erased_in_cache, subject_hash

logger = logging.getLogger(__name__)

__all__ = ["ErasureResult", "export_user_data", "forget_user", "linked_visitor_ids"]

# Cache keys of the serving layer that name one shopper (see recommendations/services/serving/).
_EXACT_KEYS = ("rec:pre:{user_id}", "rec:ni:u:{user_id}")
_PATTERNS_USER = ("rec:rt:u:{user_id}:*", "rec:bought:{user_id}:*")
_PATTERNS_VISITOR = ("rec:rt:v:{visitor_id}:*",)


@dataclass
class ErasureResult:
    """What one ``forget_user`` call did."""

    subject_hash: str
    counts: dict[str, int] = field(default_factory=dict)
    visitor_count: int = 0
    audit_id: int | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def linked_visitor_ids(user: Any) -> list[str]:
    """Every anonymous visitor id seen on the user's events, impressions or marks (sorted)."""
    found: set[str] = set()
    for model in (Event, Impression, NotInterested):
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

    counts: dict[str, int] = {}
    with transaction.atomic():
        counts["events"] = _delete(Event.objects.filter(_events_of(user, visitors)))
        counts["profiles"] = _delete(UserProfile.objects.filter(user_id=user.pk))
        counts["precomputed_lists"] = _delete(PrecomputedList.objects.filter(user_id=user.pk))
        counts["impressions"] = _delete(
            Impression.objects.filter(Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors))
        )
        counts["not_interested"] = _delete(
            NotInterested.objects.filter(Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors))
        )
        audit = ErasureAudit.objects.create(
            subject_hash=user_hash,
            requested_by=requested_by[:150],
            counts=counts,
            visitor_count=len(visitors),
        )
    # After the rows are gone (deleting cache entries early could let a reader refill them).
    _forget_cached(user.pk, visitors)
    logger.info("erased subject %s… (%s) for %s", user_hash[:12], counts, requested_by)
    return ErasureResult(
        subject_hash=user_hash, counts=counts, visitor_count=len(visitors), audit_id=audit.pk
    )


def _delete(queryset: Any) -> int:
    """Delete and return how many rows of the queryset's own model went (cascades not counted)."""
    _, per_model = queryset.delete()
    return int(per_model.get(queryset.model._meta.label, 0))


def _forget_cached(user_id: Any, visitors: list[str]) -> None:
    """Delete every cached list or state naming the person (best effort: entries expire anyway)."""
    exact = [key.format(user_id=user_id) for key in _EXACT_KEYS] + [f"rec:ni:v:{v}" for v in visitors]
    patterns = [p.format(user_id=user_id) for p in _PATTERNS_USER]
    patterns += [p.format(visitor_id=v) for v in visitors for p in _PATTERNS_VISITOR]
    try:
        cache.delete_many(exact)
        _delete_patterns(patterns)
    except Exception:  # a cache outage must not undo an erasure; the entries time out
        logger.warning("could not delete cached entries of an erased subject", exc_info=True)


def _delete_patterns(patterns: list[str]) -> None:
    """Delete cache keys matching glob patterns on the Redis and local-memory backends."""
    import fnmatch

    backend = getattr(cache, "_cache", None)
    client_getter = getattr(backend, "get_client", None)
    if client_getter is not None:  # django.core.cache.backends.redis.RedisCache
        client = client_getter(write=True)
        for pattern in patterns:
            keys = list(client.scan_iter(match=cache.make_key(pattern), count=1000))
            if keys:
                client.delete(*keys)
        return
    if isinstance(backend, dict):  # LocMemCache: keys are made keys
        made = [cache.make_key(p) for p in patterns]
        for key in list(backend):
            if any(fnmatch.fnmatchcase(key, m) for m in made):
                cache.delete(key.split(":", 2)[-1])


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
            "segment": profile.segment.name if profile.segment else None,
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
        "not_interested": sorted(
            NotInterested.objects.filter(
                Q(user_id=user.pk) | Q(user__isnull=True, visitor_id__in=visitors)
            ).values_list("item_key", flat=True)
        ),
    }
