"""Item-to-item relations, refreshed in batch into ``ItemRelation`` so pages only read them.

"similar": the behaviour network's item embeddings (when a model is active) blended with
co-visitation within sessions, learnt from views: mostly substitutes (another phone).
"bought_together": complements, learnt from carts and purchases only (``core.complements``):
what shoppers cart or buy with an item, or within ``COMPLEMENT_DAYS`` after buying it; pairs
within one substitute group (the adapter's ``get_substitute_group``, the category by default)
only when shoppers buy both more often than one instead of the other.

The stored reason names the relation ("similar to X", "bought together with X"); the serving
stages word it for the page they fill (see ``service``).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from recommendations.adapter import get_adapter
from recommendations.conf import recommender_settings
from recommendations.services.serving import explain, model
from recommendations.services.serving.names import item_names

logger = logging.getLogger(__name__)

REASONS = {"similar": explain.similar_to, "bought_together": explain.bought_with}


def refresh_item_relations() -> dict[str, int]:
    """Recompute every item's related items; returns rows written per kind (and substitutes dropped)."""
    from recommendations.core.candidates import covisitation
    from recommendations.core.complements import complements
    from recommendations.data.events import load_event_log
    from recommendations.models import ItemRelation

    per_item = recommender_settings.RELATED_ITEMS
    # the training window, counted back from the newest stored event (the data clock)
    log = load_event_log(window_days=recommender_settings.TRAINING_WINDOW_DAYS)
    relations: dict[tuple[str, str], dict[str, float]] = {}
    dropped = 0
    if len(log):
        co = covisitation(log, event_weights=recommender_settings.EVENT_WEIGHTS)
        for key in co.item_ids:
            for related, score in co.similar(key, per_item):
                relations.setdefault((key, "similar"), {})[related] = float(score)
        bought = complements(
            log,
            horizon_days=float(recommender_settings.COMPLEMENT_DAYS),
            neighbours=per_item,
            groups=get_adapter().substitute_groups(set(log.items.tolist())),
        )
        dropped = bought.substitutes
        for key in bought.item_ids:
            for related, score in bought.related(key, per_item):
                relations.setdefault((key, "bought_together"), {})[related] = score
    loaded = model.get_active_model()
    if loaded is not None:
        for key in list(loaded.recommender.item_ids_):
            similar = relations.setdefault((key, "similar"), {})
            for related, score in model.similar(loaded, key, per_item):
                # embeddings and co-visitation both vote; co-visitation scores are in [0, 1]
                similar[related] = max(similar.get(related, 0.0), float(score))
    names = item_names({k for k, _ in relations})
    now = timezone.now()  # a freshness marker (computed_at), on the wall clock
    rows = []
    counts = {"similar": 0, "bought_together": 0}
    for (key, kind), scores in relations.items():
        name = names.get(key)
        if name is None:
            continue
        reason = explain.english(REASONS[kind](name))
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
    logger.info("Item relations refreshed: %s (%d substitute pairs left out)", counts, dropped)
    return counts
