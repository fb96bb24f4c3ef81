"""Batch scoring of every active user through the active model (the serving fast path)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from behavior.items import items_by_key
from recommendations.conf import recommender_settings
from recommendations.serving import explain, impressions, model

logger = logging.getLogger(__name__)


@dataclass
class PrecomputeResult:
    users: int
    seconds: float
    model_version: int | None

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else 0.0


def active_user_ids() -> list:
    """Users with events in the last ACTIVE_USER_DAYS days."""
    from behavior.models import Event

    since = timezone.now() - timedelta(days=recommender_settings.ACTIVE_USER_DAYS)
    return list(
        Event.objects.filter(occurred_at__gte=since, user__isnull=False, is_bot=False)
        .order_by()
        .values_list("user_id", flat=True)
        .distinct()
    )


def refresh_recommendations(
    *, user_ids: list | None = None, batch_size: int | None = None
) -> PrecomputeResult:
    """Score users in batches and store their lists in the table and the cache.

    Purchased items are left out at compute time; the other business rules (stock, cart,
    "not interested") are applied when a list is served, because they change faster.
    """
    from recommendations.data import load_histories
    from recommendations.models import PrecomputedList

    started = time.perf_counter()
    loaded = model.get_active_model()
    if loaded is None:
        impressions.flush()
        return PrecomputeResult(0, time.perf_counter() - started, None)
    ids = active_user_ids() if user_ids is None else list(user_ids)
    size = batch_size or recommender_settings.PRECOMPUTE_BATCH_SIZE
    top_n = recommender_settings.TOP_N
    username_field = get_user_model().USERNAME_FIELD
    done = 0
    for start in range(0, len(ids), size):
        batch = ids[start : start + size]
        names_by_id = dict(
            get_user_model()._default_manager.filter(pk__in=batch).values_list("pk", username_field)
        )
        histories_by_name = load_histories(users=list(names_by_id), limit=recommender_settings.SESSION_EVENTS)
        users = [(pk, histories_by_name.get(str(name), [])) for pk, name in names_by_id.items()]
        users = [(pk, history) for pk, history in users if history]
        if not users:
            continue
        histories = [history for _, history in users]
        excluded = [
            {key for key, event_type, _ in history if event_type == "purchase"} for history in histories
        ]
        scored = model.recommend(loaded, histories, top_n, exclude=excluded)
        anchor_maps = [
            model.anchors(loaded, h, [k for k, _ in s]) for h, s in zip(histories, scored, strict=True)
        ]
        anchor_keys = {a for m in anchor_maps for a, _ in m.values()}
        names = {key: str(item) for key, item in items_by_key(anchor_keys).items()}
        now = timezone.now()
        rows = []
        for (pk, _history), recs, anchor_of in zip(users, scored, anchor_maps, strict=True):
            reasons = []
            for key, _score in recs:
                anchor = anchor_of.get(key)
                reasons.append(
                    explain.because(anchor[1], names.get(anchor[0], anchor[0]))
                    if anchor
                    else explain.TRENDING
                )
            rows.append(
                PrecomputedList(
                    user_id=pk,
                    item_keys=[k for k, _ in recs],
                    scores=[round(float(s), 6) for _, s in recs],
                    reasons=reasons,
                    model_version=loaded.version_number,
                    computed_at=now,
                )
            )
        with transaction.atomic():
            PrecomputedList.objects.filter(user_id__in=[row.user_id for row in rows]).delete()
            PrecomputedList.objects.bulk_create(rows)
        cache.set_many(
            {
                f"rec:pre:{row.user_id}": {
                    "keys": row.item_keys,
                    "scores": row.scores,
                    "reasons": row.reasons,
                    "version": row.model_version,
                    "computed_at": now.timestamp(),
                }
                for row in rows
            },
            recommender_settings.CACHE_TIMEOUT,
        )
        done += len(rows)
    seconds = time.perf_counter() - started
    # the periodic refresh also writes the impressions the web workers queued meanwhile
    impressions.flush()
    logger.info("Precomputed %d lists in %.1fs with model version %s", done, seconds, loaded.version_number)
    return PrecomputeResult(done, seconds, loaded.version_number)
