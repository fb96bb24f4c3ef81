"""Complements: the cart's "Complete your purchase" and an item's "Frequently bought together".

Both come from the "bought_together" relations (``relations``: what shoppers cart or buy with
an item, or soon after buying it), never from the view-based "similar" ones, and neither ever
shows a substitute: an item of the same substitute group as an anchor (a cart item, or the
page's item) is shown only when it is among that anchor's own complements, where it passed the
"bought both more often than one instead of the other" test (coffee beans with a coffee
machine, never a second phone). Items in the cart are never shown.

The cart's block, in order of preference:

1. the complements of the cart's items, taken in turn from each (its best, then every item's
   second best, ...): "goes with X in your cart";
2. popular items of the categories those complements belong to, then of the categories that
   complement the cart items' categories in general (the complements of their most popular
   items): "popular complements in other categories", "popular in Phone accessories";
3. nothing of the above: a different block, the popular items outside the cart's groups (its
   ``source`` is "popular", so the template tag titles it differently; see
   ``templatetags.recommendations.show_cart_recommendations``).

An empty cart has nothing to complete: the shopper's own list (``recommend_for``) is served.
In an experiment's popularity arm (``experiment_arms``) both blocks skip to the popular items.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from recommendations.adapter import DefaultRecommenderAdapter, get_adapter
from recommendations.services.serving import catalogue, experiment_arms, explain, merchandising, popularity
from recommendations.services.serving.assembly import (
    Reject,
    Stage,
    assemble,
    build_result,
    clamp_limit,
    finish_for_request,
)
from recommendations.services.serving.names import item_names
from recommendations.services.serving.page import (
    bought_by_shopper,
    page_of,
    request_shopper,
    shopper_ids,
    shopper_state,
)
from recommendations.services.serving.service import recommend_for, resolve_item
from recommendations.services.serving.stages import popularity_snapshot
from recommendations.services.serving.state import not_interested_keys, purchased_keys_cached
from recommendations.services.serving.types import Candidate, RecommendationResult

SOURCE = "complement"
# Cart items whose complements are read (the newest-looking first would need the cart's order,
# which the adapter does not give; a cart this large is rare and its block is full long before).
MAX_ANCHORS = 20
# Popular items of a cart item's category whose complements stand in for its own when it has
# too few (what goes with phones in general).
PEERS = 10


def complement_rows(anchors: list[str]) -> dict[str, list[tuple[str, float]]]:
    """Each anchor's stored complements, best first: ``{anchor: [(key, score), ...]}`` (one query)."""
    from recommendations.models import ItemRelation

    if not anchors:
        return {}
    rows = ItemRelation.objects.filter(item_key__in=anchors, kind="bought_together").values_list(
        "item_key", "related_key", "score"
    )
    by_anchor: dict[str, list[tuple[str, float]]] = {}
    for anchor, related, score in rows:
        by_anchor.setdefault(anchor, []).append((related, float(score)))
    for pairs in by_anchor.values():
        pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    return by_anchor


def _groups(adapter: DefaultRecommenderAdapter, keys: list[str], known: dict | None) -> dict[str, str]:
    """The substitute group of each of ``keys``: from the catalogue snapshot, else one query."""
    items = catalogue.available_items(adapter, keys)
    if known is not None:
        known.update(items)
    groups = {
        key: group for key, item in items.items() if (group := adapter.get_substitute_group(item)) is not None
    }
    missing = [key for key in keys if key not in items]
    if missing:
        # an anchor out of stock still has its group (its substitutes are still substitutes)
        groups.update(adapter.substitute_groups(missing))
    return groups


def substitute_rule(
    adapter: DefaultRecommenderAdapter,
    anchor_groups: Mapping[str, str],
    rows: Mapping[str, list[tuple[str, float]]],
) -> Reject:
    """A ``Reject`` for the substitutes of the anchors.

    A candidate in an anchor's group is refused unless it is one of that anchor's own
    complements (which then passed the core's substitution test); a candidate without a group,
    or in no anchor's group, is never refused.
    """
    own = {anchor: {key for key, _ in related} for anchor, related in rows.items()}

    def reject(candidate: Candidate, item: Any) -> bool:
        group = adapter.get_substitute_group(item)
        if group is None:
            return False
        group = str(group)
        return any(
            anchor_group == group and candidate.key not in own.get(anchor, ())
            for anchor, anchor_group in anchor_groups.items()
        )

    return reject


def _complements_stage(
    anchors: list[str], rows: Mapping[str, list[tuple[str, float]]], reason: Mapping[str, explain.Reason]
) -> Stage:
    """The anchors' complements in turn: every anchor's best, then every anchor's second, ..."""

    def stage() -> Iterator[Candidate]:
        lists = [rows.get(anchor, []) for anchor in anchors]
        for rank in range(max((len(related) for related in lists), default=0)):
            for anchor, related in zip(anchors, lists, strict=True):
                if rank < len(related):
                    key, score = related[rank]
                    yield Candidate(key, score, reason[anchor], SOURCE)

    return stage


def _peers(anchors: list[str], snapshot: popularity.PopularitySnapshot) -> list[str]:
    """The most popular items of the anchors' categories (not the anchors themselves)."""
    own = sorted({snapshot.item_category[a] for a in anchors if a in snapshot.item_category})
    peers = [key for category in own for key, _ in snapshot.by_category.get(category, [])[:PEERS]]
    return [key for key in dict.fromkeys(peers) if key not in anchors]


def _complement_categories_stage(
    anchors: list[str],
    peers: list[str],
    rows: Mapping[str, list[tuple[str, float]]],
    snapshot: popularity.PopularitySnapshot,
) -> Stage:
    """Popular items of the categories that complement the anchors ("popular complements").

    First the categories of the anchors' own complements, the strongest first; then those of
    the complements of ``peers``, the most popular items of the anchors' categories (what goes
    with phones in general, for a phone nobody has bought anything with yet).
    """

    def categories(keys: list[str]) -> list[str]:
        weight: dict[str, float] = {}
        for key in keys:
            for related, score in rows.get(key, []):
                category = snapshot.item_category.get(related)
                if category:
                    weight[category] = weight.get(category, 0.0) + score
        return sorted(weight, key=lambda c: (-weight[c], c))

    def stage() -> Iterator[Candidate]:
        own = categories(anchors)
        for category in own + [c for c in categories(peers) if c not in own]:
            label = snapshot.labels.get(category, "")
            for key, score in snapshot.by_category.get(category, []):
                yield Candidate(key, score, explain.popular_in(label), SOURCE)

    return stage


def _popular_elsewhere_stage(snapshot: popularity.PopularitySnapshot) -> Stage:
    """Popular items overall (the substitute rule keeps the cart's groups out)."""

    def stage() -> Iterator[Candidate]:
        for key, score in snapshot.overall:
            category = snapshot.item_category.get(key)
            label = snapshot.labels.get(category, "") if category else ""
            yield Candidate(key, score, explain.popular_in(label), "popular")

    return stage


def complete_purchase(
    *,
    user: Any = None,
    visitor_id: str = "",
    limit: int = 10,
    placement: str = "cart",
    context: Mapping[str, Any] | None = None,
    record: bool | None = None,
) -> RecommendationResult:
    """What goes with the items in the shopper's cart (see the module's docstring for the order).

    ``context`` may hold ``request`` (its cart, through the adapter's ``get_cart_item_keys``) and
    ``items`` (cart item keys or instances given directly, added to the request's cart).
    ``result.source`` is "complement" when the block holds complements, "popular" for the other
    block; with an empty cart the shopper's own list is returned as ``recommend_for`` makes it.
    """
    context = dict(context or {})
    request = context.get("request")
    adapter = get_adapter()
    limit = clamp_limit(limit)
    cart = adapter.get_cart_item_keys(request, context) | {
        extra if isinstance(extra, str) else adapter.get_item_key(extra)
        for extra in context.get("items") or ()
    }
    if not cart:
        return recommend_for(
            user=user, visitor_id=visitor_id, limit=limit, placement=placement, context=context, record=record
        )
    if request is not None and user is None and not visitor_id:
        user, visitor_id = request_shopper(request)
    state = shopper_state(request, user=user, visitor_id=visitor_id)
    anchors = sorted(cart)[:MAX_ANCHORS]
    known = page_of(request).known if request is not None else None
    snapshot = popularity_snapshot()
    peers = _peers(anchors, snapshot)
    rows = complement_rows(anchors + peers)
    reject = substitute_rule(adapter, _groups(adapter, anchors, known), {a: rows.get(a, []) for a in anchors})
    names = item_names(anchors)
    reason = {anchor: explain.goes_with_cart(names.get(anchor, anchor)) for anchor in anchors}
    excluded = (
        cart
        | page_of(request).shown
        | state.keys_with_type("purchase")
        | purchased_keys_cached(state.user_id, state.latest_ts, oldest_ts=state.oldest_ts)
        | not_interested_keys(state.user_id, state.visitor_id)
    )
    rules = merchandising.rules_for(placement)
    common = functools.partial(
        assemble, limit=limit, excluded=excluded, adapter=adapter, known=known, reject=reject, rules=rules
    )
    exposure = experiment_arms.exposure_for(
        placement,
        user_id=state.user_id,
        visitor_id=state.visitor_id,
        shown=experiment_arms.shown(request, record),
    )
    chosen = []
    if experiment_arms.strategy_of(exposure) != experiment_arms.POPULARITY:
        chosen = common(
            [
                _complements_stage(anchors, rows, reason),
                _complement_categories_stage(anchors, peers, rows, snapshot),
            ],
            newest_any=False,
        )
    if all(candidate.source == merchandising.MERCHANDISING_SOURCE for candidate, _item in chosen):
        # no complement (pinned items alone are no complements): the other block, rules anew
        if rules is not None:
            rules.applied.clear()
        chosen = common([_popular_elsewhere_stage(snapshot)])
    result = build_result(chosen, placement=placement, model_version=None, adapter=adapter, rules=rules)
    return finish_for_request(experiment_arms.tag(result, exposure), request, record)


def bought_together(
    item: Any,
    *,
    limit: int = 10,
    placement: str = "bought_together",
    context: Mapping[str, Any] | None = None,
    record: bool | None = None,
) -> RecommendationResult:
    """Items shoppers buy with ``item`` or soon after it ("bought together with X"), then popular
    items of those items' categories; never its substitutes, never a view-based "similar" item.

    An item nobody bought anything with gets an empty list (unlike the cart, no stand-ins from
    its category's popular items: the block's title says "bought together" with this item). The
    page's "Similar items" is the other block; a substitute offered here would be a false claim.
    """
    context = dict(context or {})
    request = context.get("request")
    adapter = get_adapter()
    limit = clamp_limit(limit)
    key, instance = resolve_item(item)
    known = page_of(request).known if request is not None else None
    rows = complement_rows([key])
    group = adapter.get_substitute_group(instance)
    reject = substitute_rule(
        adapter, {key: str(group)} if group is not None else {}, {key: rows.get(key, [])}
    )
    reason = {key: explain.bought_with(adapter.get_item_name(instance))}
    excluded = (
        {key}
        | adapter.get_cart_item_keys(request, context)
        | page_of(request).shown
        | bought_by_shopper(request)
    )
    exposure = experiment_arms.exposure_for(
        placement, **shopper_ids(request), shown=experiment_arms.shown(request, record)
    )
    if experiment_arms.strategy_of(exposure) == experiment_arms.POPULARITY:
        stages = [_popular_elsewhere_stage(popularity_snapshot())]
    else:
        stages = [
            _complements_stage([key], rows, reason),
            _complement_categories_stage([key], [], rows, popularity_snapshot()),
        ]
    rules = merchandising.rules_for(placement)
    chosen = assemble(
        stages,
        limit=limit,
        excluded=excluded,
        adapter=adapter,
        newest_any=False,
        known=known,
        reject=reject,
        rules=rules,
    )
    result = build_result(chosen, placement=placement, model_version=None, adapter=adapter, rules=rules)
    return finish_for_request(experiment_arms.tag(result, exposure), request, record)
