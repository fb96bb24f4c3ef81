"""The serving use cases: ``serve_list`` / ``recommend_for``, ``similar_items``, ``popular_items``
(the cart's complements are in ``complements``).

Every list is built the same way (``assembly``): candidate stages in order of preference (each
candidate carries its own reason and source), then the adapter's business rules, one query for
the items, the diversity cap, and one impression per list. What a face needs back (the list,
whether it may replay it, the writes left for after the response) is returned as a value.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from behavior.items import item_key, items_by_key
from recommendations.adapter import get_adapter
from recommendations.conf import recommender_settings
from recommendations.services.serving import (
    catalogue,
    experiment_arms,
    explain,
    exploration,
    model,
    popularity,
    reuse,
)
from recommendations.services.serving.assembly import (
    Stage,
    assemble,
    build_result,
    clamp_limit,
    finish,
    finish_for_request,
)
from recommendations.services.serving.merchandising import MERCHANDISING_SOURCE, rules_for
from recommendations.services.serving.page import bought_by_shopper, page_of, shopper_ids, shopper_state
from recommendations.services.serving.personal import personal_stage, realtime_cache_key
from recommendations.services.serving.stages import (
    anchor_reasons,
    context_keys,
    first_category,
    model_similar_stage,
    popular_stage,
    recent_distinct,
    relations_stage,
)
from recommendations.services.serving.state import (
    ClosingWrites,
    not_interested_keys,
    prefetch,
    purchased_keys_cached,
)
from recommendations.services.serving.types import RecommendationResult, ServedList
from recommendations.services.shadow import sampling as shadow_sampling

__all__ = ["UnknownItem", "clamp_limit", "popular_items", "recommend_for", "serve_list", "similar_items"]


class UnknownItem(LookupError):
    """The item key names no item."""


def serve_list(
    *,
    user: Any = None,
    visitor_id: str = "",
    limit: int = 10,
    placement: str = "default",
    context: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    record: bool | None = None,
    reuse_list: bool = False,
    defer_writes: bool = False,
) -> ServedList:
    """A full, explained list for a user or an anonymous visitor, through the fallback chain.

    ``reuse_list=True`` (the API) may answer a user whose precomputed list is fresh from the
    list assembled for the same inputs a little earlier (``reuse``), with a new
    ``recommendation_id`` and without item instances (``RecommendedItem.item`` is None); the
    answer's ``reusable`` then says what a face may replay it from.

    ``defer_writes=True``: the network's rows and the impression are not written here but left
    in the answer's ``closing`` (a ``state.ClosingWrites``), for the caller to send in the round
    trip that ends its request.

    ``context`` may hold ``request`` (cart, items already shown on the page, impressions after
    the response), ``item``/``items`` (the page's items: excluded and used as anchors) and
    ``category``. Impressions are recorded when a request is given (or ``record=True``).
    """
    started = time.perf_counter()
    context = dict(context or {})
    request = context.get("request")
    closing = ClosingWrites() if defer_writes else None
    adapter = get_adapter()
    limit = clamp_limit(limit)
    state = shopper_state(request, user=user, visitor_id=visitor_id)
    exposure = experiment_arms.exposure_for(
        placement,
        user_id=state.user_id,
        visitor_id=state.visitor_id,
        shown=experiment_arms.shown(request, record),
    )
    strategy = experiment_arms.strategy_of(exposure)
    shown = page_of(request).shown if request is not None else set()
    page_keys = context_keys(context, adapter)
    cart_keys = adapter.get_cart_item_keys(request, context)
    list_key = None
    rules = rules_for(placement)
    # the API's plain "my list" request is the one worth reusing (no page, cart or category)
    plain = not page_keys and not cart_keys and context.get("category") is None
    if reuse_list and state.user_id is not None and plain and not shown:
        arm_id = exposure.arm.id if exposure is not None else None
        list_key = reuse.list_cache_key(
            state, {str(k) for k in exclude}, limit, placement, arm_id, rules=rules.index if rules else None
        )
    uses_network = strategy in (None, experiment_arms.MODEL)
    pinned = experiment_arms.pinned_model(exposure)
    loaded = None
    if uses_network and (state.history or state.user_id is not None):
        loaded = pinned or model.get_active_model()
    # the catalogue snapshot's version rides along: the list below is assembled against it
    # and the popularity snapshot's stamp, for the fallback stages
    extra = [*([list_key] if list_key else []), *catalogue.PREFETCH_KEYS, popularity.STAMP_KEY]
    if loaded is not None and state.history:
        extra.append(realtime_cache_key(state, loaded))
    prefetched = prefetch(state.user_id, state.visitor_id, state.latest_ts, extra=extra)
    basis = reuse.list_basis(state, prefetched) if list_key else None

    def done(result: RecommendationResult, until: float | None) -> ServedList:
        result.elapsed_ms = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
        finish(
            result,
            request=request,
            user_id=state.user_id,
            visitor_id=state.visitor_id,
            record=record,
            closing=closing,
        )
        if experiment_arms.shown(request, record):
            shadow_sampling.sample(
                result, user_id=state.user_id, visitor_id=state.visitor_id, limit=limit, request=request
            )
        reusable = None
        if until is not None and list_key:
            reusable = reuse.reusable(state, prefetched, result, until)
        return ServedList(result, reusable, closing)

    cached = prefetched.get(list_key) if basis is not None else None
    result = reuse.reused(cached, basis, placement=placement)
    if result is not None and cached is not None:
        return done(result, cached["until"])
    excluded = (
        {str(k) for k in exclude}
        | set(page_keys)
        | cart_keys
        | shown
        | state.keys_with_type("purchase")
        | purchased_keys_cached(state.user_id, state.latest_ts, prefetched, oldest_ts=state.oldest_ts)
        | not_interested_keys(state.user_id, state.visitor_id, prefetched)
    )
    snapshot_category = context.get("category")
    category = adapter.category_key(snapshot_category) if snapshot_category is not None else None
    anchors = page_keys + sorted(cart_keys) + recent_distinct(state.history, 5)
    # what the shopper is looking at right now is not worth recommending back to them
    excluded |= set(anchors)
    version_box: list = []
    used: list = []
    stages: list[Stage] = []
    if uses_network:
        n = limit * 3 + len(excluded)
        pinned_here = pinned is not None
        stages.append(personal_stage(state, loaded, n, version_box, prefetched, used, closing, pinned_here))
    if strategy != experiment_arms.POPULARITY:
        reasons = anchor_reasons(anchors, page_keys, cart_keys, state.history)
        stages.append(relations_stage(anchors, ("bought_together", "similar"), limit, reasons))
    if category:
        stages.append(popular_stage(category, prefetched))
    elif anchors:
        # the anchors' category, looked up only when the list gets this far
        stages.append(popular_stage(lambda snapshot: first_category(snapshot, anchors), prefetched))
    stages.append(popular_stage(None, prefetched))
    chosen = assemble(
        stages, limit=limit, excluded=excluded, adapter=adapter, prefetched=prefetched, rules=rules
    )
    version = version_box[0] if version_box else None
    # a list that staff arranged (a rule applied) is shown as arranged: exploring it would move
    # pins, and replay reads only lists whose positions chance alone decided
    if rules is not None and rules.applied:
        shown_order, propensities = chosen, None
    else:
        shown_order, propensities = exploration.explore(chosen)
    result = build_result(
        shown_order, placement=placement, model_version=version, adapter=adapter, rules=rules
    )
    if chosen:
        # the list's own source, however it was shown
        result.source = next(
            (c.source for c, _item in chosen if c.source != MERCHANDISING_SOURCE), chosen[0][0].source
        )
    result.propensities = propensities
    if not any(entry.source in {"personal", "session"} for entry in result.items):
        result.model_version = None
    experiment_arms.tag(result, exposure)
    until = None
    if basis is not None and list_key and result.source == "personal":
        until = reuse.deadline(placement=placement)
        reuse.keep(list_key, result, basis, until)
    elif list_key and used and result.source == "personal":
        # built by the network from the latest events: the same inputs give the same list until
        # a new event, list or mark, or another active version (which a process notices within
        # ACTIVE_MODEL_CHECK_SECONDS, so the replay lives no longer)
        until = reuse.deadline(
            min(recommender_settings.LIST_CACHE_SECONDS, recommender_settings.ACTIVE_MODEL_CHECK_SECONDS),
            placement=placement,
        )
    return done(result, until)


def recommend_for(
    *,
    user: Any = None,
    visitor_id: str = "",
    limit: int = 10,
    placement: str = "default",
    context: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    record: bool | None = None,
    reuse_list: bool = False,
) -> RecommendationResult:
    """The list of :func:`serve_list` (same arguments), its writes made or queued as usual."""
    return serve_list(
        user=user,
        visitor_id=visitor_id,
        limit=limit,
        placement=placement,
        context=context,
        exclude=exclude,
        record=record,
        reuse_list=reuse_list,
    ).result


def resolve_item(item: Any) -> tuple[str, Any]:
    """``(key, item)`` from an item instance or a key; unknown key -> UnknownItem."""
    if item is None or item == "":
        raise UnknownItem("no item")
    if not isinstance(item, str):
        return item_key(item), item
    found = items_by_key([item]).get(str(item))
    if found is None:
        raise UnknownItem(str(item))
    return str(item), found


def similar_items(
    item: Any,
    *,
    limit: int = 10,
    placement: str = "similar",
    context: Mapping[str, Any] | None = None,
    record: bool | None = None,
) -> RecommendationResult:
    """Items like ``item`` (a key or an instance): its stored "similar" relations, the model's
    nearest items, then its category's popular items; every reason is "similar to <item>" or
    says where it came from."""
    context = dict(context or {})
    request = context.get("request")
    adapter = get_adapter()
    limit = clamp_limit(limit)
    key, instance = resolve_item(item)
    category = adapter.get_item_category(instance)
    page = page_of(request)
    excluded = {key} | adapter.get_cart_item_keys(request, context) | page.shown | bought_by_shopper(request)
    version_box: list = []
    name = adapter.get_item_name(instance)
    exposure = experiment_arms.exposure_for(
        placement, **shopper_ids(request), shown=experiment_arms.shown(request, record)
    )
    strategy = experiment_arms.strategy_of(exposure)
    stages: list[Stage] = []
    if strategy != experiment_arms.POPULARITY:
        reason = explain.similar_to(name)
        stages.append(relations_stage([key], ("similar",), limit, lambda _anchor, _kind: reason))
    if strategy in (None, experiment_arms.MODEL):
        pinned = experiment_arms.pinned_model(exposure)
        stages.append(model_similar_stage(key, instance, limit, version_box, adapter, pinned))
    if category:
        stages.append(popular_stage(category))
    stages.append(popular_stage(None))
    rules = rules_for(placement)
    chosen = assemble(
        stages,
        limit=limit,
        excluded=excluded,
        adapter=adapter,
        newest_category=category,
        known=page.known if request is not None else None,
        rules=rules,
    )
    version = version_box[0] if version_box else None
    result = build_result(chosen, placement=placement, model_version=version, adapter=adapter, rules=rules)
    return finish_for_request(experiment_arms.tag(result, exposure), request, record)


def popular_items(
    *,
    limit: int = 10,
    category: Any = None,
    placement: str = "popular",
    context: Mapping[str, Any] | None = None,
    record: bool | None = None,
) -> RecommendationResult:
    """Popular (time-decayed) items overall or of one category; newest items fill the rest."""
    context = dict(context or {})
    request = context.get("request")
    adapter = get_adapter()
    limit = clamp_limit(limit)
    category_key = adapter.category_key(category)
    excluded = page_of(request).shown | bought_by_shopper(request)
    rules = rules_for(placement)
    chosen = assemble(
        [popular_stage(category_key)],
        limit=limit,
        excluded=excluded,
        adapter=adapter,
        newest_category=category_key,
        newest_any=category_key is None,
        rules=rules,
    )
    result = build_result(chosen, placement=placement, model_version=None, adapter=adapter, rules=rules)
    return finish_for_request(result, request, record)
