"""Candidate stages shared by the lists: popular items, stored relations, the model's nearest
items, and the reasons an anchor's related items are given."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from recommendations.adapter import DefaultRecommenderAdapter
from recommendations.services.serving import explain, model, popularity
from recommendations.services.serving.assembly import Stage
from recommendations.services.serving.names import item_names
from recommendations.services.serving.state import Prefetched
from recommendations.services.serving.types import Candidate

# (anchor key, relation kind) -> the reason shown with an item related to that anchor
Reasoner = Callable[[str, str], explain.Reason]
# the source each kind of stored relation gives its candidates
RELATION_SOURCES = {"similar": "covisitation", "bought_together": "complement"}


def popularity_snapshot(prefetched: Prefetched | None = None) -> popularity.PopularitySnapshot:
    """The popularity snapshot; an empty one while the cache is down (newest items fill in).

    ``prefetched``: the request's cache read, which holds the snapshot's stamp when complete.
    """
    try:
        if prefetched is not None and prefetched.complete:
            return popularity.get_snapshot(prefetched.get(popularity.STAMP_KEY))
        return popularity.get_snapshot()
    except Exception as exc:
        model.log_once(f"popularity:{type(exc).__name__}", "Popularity snapshot unavailable: %s", exc)
        return popularity.PopularitySnapshot()


def first_category(snapshot: popularity.PopularitySnapshot, keys: list[str]) -> str | None:
    """The category of the first of ``keys`` the snapshot knows."""
    return next((snapshot.item_category[k] for k in keys if k in snapshot.item_category), None)


def popular_stage(
    category_or_rule: str | Callable[[Any], str | None] | None, prefetched: Prefetched | None = None
) -> Stage:
    """Popular items overall or of a category (given, or chosen from the snapshot by a rule)."""

    def stage() -> Iterator[Candidate]:
        snapshot = popularity_snapshot(prefetched)
        category = category_or_rule(snapshot) if callable(category_or_rule) else category_or_rule
        if category:
            label = snapshot.labels.get(category, "")
            for key, score in snapshot.by_category.get(category, []):
                yield Candidate(key, score, explain.popular_in(label), "popular")
        else:
            for key, score in snapshot.overall:
                yield Candidate(key, score, explain.TRENDING, "popular")

    return stage


def relations_stage(anchors: list[str], kinds: tuple[str, ...], limit: int, reason_for: Reasoner) -> Stage:
    """Stored relations of the anchors, earlier anchors and kinds first, each worded by ``reason_for``."""

    def stage() -> Iterator[Candidate]:
        from recommendations.models import ItemRelation

        if not anchors:
            return
        rows = (
            ItemRelation.objects.filter(item_key__in=anchors, kind__in=kinds)
            .order_by("-score")
            .values_list("item_key", "related_key", "kind", "score")[: max(limit * 4, 40)]
        )
        rank = {key: i for i, key in enumerate(anchors)}
        kind_rank = {kind: i for i, kind in enumerate(kinds)}
        # anchors earlier in the list (the page's item, the latest events) come first, then the
        # kinds in the order asked for (bought together before merely similar)
        ordered = sorted(rows, key=lambda r: (rank.get(r[0], 99), kind_rank.get(r[2], 9), -r[3]))
        for anchor, related, kind, score in ordered:
            yield Candidate(
                related, score, reason_for(anchor, kind), RELATION_SOURCES.get(kind, "covisitation")
            )

    return stage


def model_similar_stage(
    key: str,
    instance: Any,
    limit: int,
    version_box: list,
    adapter: DefaultRecommenderAdapter,
    pinned: Any = None,
) -> Stage:
    """The active model's (or an experiment arm's ``pinned`` model's) nearest items to ``key``
    ("similar to <item>")."""

    def stage() -> Iterator[Candidate]:
        loaded = pinned or model.get_active_model()
        if loaded is None:
            return
        reason = explain.similar_to(adapter.get_item_name(instance))
        model.limit_threads_for_web()
        rows = model.similar(loaded, key, limit * 3)
        if rows:
            version_box.append(loaded.version_number)
        for related, score in rows:
            yield Candidate(related, score, reason, "covisitation")

    return stage


def context_keys(context: Mapping[str, Any], adapter: DefaultRecommenderAdapter) -> list[str]:
    """The keys of the page's items (``item`` / ``items`` of a list's context)."""
    keys: list[str] = []
    item = context.get("item")
    if item is not None:
        keys.append(item if isinstance(item, str) else adapter.get_item_key(item))
    for extra in context.get("items") or ():
        keys.append(extra if isinstance(extra, str) else adapter.get_item_key(extra))
    return keys


def anchor_reasons(anchors: list[str], page_keys: list[str], cart_keys: set[str], history: list) -> Reasoner:
    """Reasons for items related to a list's anchors, true of this shopper.

    A complement of a cart item "goes with X in your cart", of any other anchor is "bought
    together with X"; an item similar to one the shopper had (and is not looking at now) says
    what they did ("because you viewed X"), else "similar to X". Names are read on first use.
    """
    last_type = {key: event_type for key, event_type, _ts in history}
    names: dict[str, str] = {}

    def reason_for(anchor: str, kind: str) -> explain.Reason:
        if not names:
            names.update(item_names(anchors))
            names[""] = ""  # read once, even when no anchor has a name
        name = names.get(anchor, anchor)
        if kind == "bought_together":
            return explain.goes_with_cart(name) if anchor in cart_keys else explain.bought_with(name)
        if anchor in last_type and anchor not in page_keys and anchor not in cart_keys:
            return explain.because(last_type[anchor], name)
        return explain.similar_to(name)

    return reason_for


def recent_distinct(history: list, n: int) -> list[str]:
    """The ``n`` latest distinct item keys of a history, newest first."""
    keys: list[str] = []
    for key, _type, _ts in reversed(history):
        if key not in keys:
            keys.append(key)
        if len(keys) >= n:
            break
    return keys
