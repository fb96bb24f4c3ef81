"""Item-to-item relations, refreshed in batch into ``ItemRelation`` so pages only read them.

"similar": the behaviour network's item embeddings (when a model is active) blended with
co-visitation within sessions; "bought_together": co-purchase / co-cart within a session.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from behavior.items import items_by_key
from recommendations.conf import recommender_settings
from recommendations.services.serving import explain, model

logger = logging.getLogger(__name__)


def refresh_item_relations() -> dict[str, int]:
    """Recompute every item's related items; returns rows written per kind."""
    from recommendations.core.candidates import covisitation
    from recommendations.data.events import load_event_log
    from recommendations.models import ItemRelation

    per_item = recommender_settings.RELATED_ITEMS
    # the training window, counted back from the newest stored event (the data clock)
    log = load_event_log(window_days=recommender_settings.TRAINING_WINDOW_DAYS)
    relations: dict[tuple[str, str], dict[str, float]] = {}
    if len(log):
        co = covisitation(log, event_weights=recommender_settings.EVENT_WEIGHTS)
        for key in co.item_ids:
            for related, score in co.similar(key, per_item):
                relations.setdefault((key, "similar"), {})[related] = float(score)
            for related, score in co.bought_together(key, per_item):
                relations.setdefault((key, "bought_together"), {})[related] = float(score)
    loaded = model.get_active_model()
    if loaded is not None:
        for key in list(loaded.recommender.item_ids_):
            similar = relations.setdefault((key, "similar"), {})
            for related, score in model.similar(loaded, key, per_item):
                # embeddings and co-visitation both vote; co-visitation scores are in [0, 1]
                similar[related] = max(similar.get(related, 0.0), float(score))
    names = {key: str(item) for key, item in items_by_key({k for k, _ in relations}).items()}
    now = timezone.now()  # a freshness marker (computed_at), on the wall clock
    rows = []
    counts = {"similar": 0, "bought_together": 0}
    for (key, kind), scores in relations.items():
        name = names.get(key)
        if name is None:
            continue
        reason = explain.bought_with(name) if kind == "bought_together" else explain.because("view", name)
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:per_item]
        for related, score in best:
            if related != key:
                rows.append(
                    ItemRelation(
                        item_key=key,
                        related_key=related,
                        kind=kind,
                        score=score,
                        reason=reason,
                        computed_at=now,
                    )
                )
                counts[kind] += 1
    with transaction.atomic():
        ItemRelation.objects.all().delete()
        ItemRelation.objects.bulk_create(rows, batch_size=5000)
    logger.info("Item relations refreshed: %s", counts)
    return counts
