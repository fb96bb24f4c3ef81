"""The serving use cases: ``recommend_for``, ``similar_items``, ``popular_items`` (the cart's
complements are in ``complements``).

Every list is built the same way: candidate stages in order of preference (each candidate
carries its own reason and source), then the adapter's business rules, one query for the
items, the diversity cap, and one impression per list.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from django.core.cache import cache

from behavior.items import item_key, items_by_key
from recommendations.adapter import DefaultRecommenderAdapter, get_adapter
from recommendations.conf import recommender_settings
from recommendations.services import personal_keys
from recommendations.services.serving import catalogue, explain, impressions, model, popularity
from recommendations.services.serving.freshness import marker_text
from recommendations.services.serving.history import USER_PLACEHOLDER, ShopperState, compiled_rows, load_state
from recommendations.services.serving.names import item_names
from recommendations.services.serving.state import (
    CLOSING_WRITES_ATTRIBUTE,
    ClosingWrites,
    Prefetched,
    cache_set,
    not_interested_cache_key,
    not_interested_keys,
    precomputed_cache_key,
    prefetch,
    purchased_keys_cached,
)
from recommendations.services.serving.types import (
    Candidate,
    RecommendationResult,
    RecommendedItem,
    ReusableList,
)

Stage = Callable[[], Iterable[Candidate]]
# (candidate, its item) -> True when the list must not show it (e.g. a substitute of a cart item)
Reject = Callable[[Candidate, Any], bool]
# (anchor key, relation kind) -> the reason shown with an item related to that anchor
Reasoner = Callable[[str, str], str]
# the source each kind of stored relation gives its candidates
RELATION_SOURCES = {"similar": "covisitation", "bought_together": "complement"}
SHOWN_ATTRIBUTE = "_recommendations_shown"
STATE_ATTRIBUTE = "_recommendations_state"
# Set on the request when the served list may be replayed by the API's fast path.
REUSABLE_ATTRIBUTE = "_recommendations_reusable"
# per request: the items looked up so far, ``{key: item or None}`` (see ``_assemble``)
KNOWN_ITEMS_ATTRIBUTE = "_recommendations_items"


class UnknownItem(LookupError):
    """The item key names no item."""


def clamp_limit(limit: Any) -> int:
    """A usable list length: DEFAULT_LIMIT when missing, at most MAX_LIMIT, at least 1."""
    try:
        value = int(limit)
    except (TypeError, ValueError):
        value = recommender_settings.DEFAULT_LIMIT
    return max(1, min(value, recommender_settings.MAX_LIMIT))


# --- assembling a list ------------------------------------------------------------------------------
def _on_request(request: Any, attribute: str, factory: Callable[[], Any]) -> Any:
    """A container kept on the request for the blocks of one page; None without a request
    (or on a request that takes no attributes)."""
    if request is None:
        return None
    held = getattr(request, attribute, None)
    if held is None:
        held = factory()
        try:
            setattr(request, attribute, held)
        except AttributeError:
            return None
    return held


def _shown_on_request(request: Any) -> set[str]:
    """Keys already shown on this request's page (a fresh empty set without a request)."""
    shown = _on_request(request, SHOWN_ATTRIBUTE, set)
    return shown if shown is not None else set()


def _request_state(request: Any, *, user: Any = None, visitor_id: str = "") -> ShopperState:
    """The shopper's state, read once per request (several blocks on one page share it)."""
    if request is None:
        return load_state(user=user, visitor_id=visitor_id)
    state = getattr(request, STATE_ATTRIBUTE, None)
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    user_id = getattr(user, "pk", None) if authenticated else None
    if state is None or state.user_id != user_id or state.visitor_id != (visitor_id or ""):
        state = load_state(user=user, visitor_id=visitor_id)
        with contextlib.suppress(AttributeError):
            setattr(request, STATE_ATTRIBUTE, state)
    return state


def _request_shopper(request: Any) -> tuple[Any, str]:
    user = getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    return user, getattr(request, "visitor_id", "") or ""


def _bought_by_shopper(request: Any) -> set[str]:
    """Items the request's shopper bought: never offered back to them, in any block."""
    if request is None:
        return set()
    user, visitor_id = _request_shopper(request)
    if user is None and not visitor_id:
        return set()
    state = _request_state(request, user=user, visitor_id=visitor_id)
    return state.keys_with_type("purchase") | purchased_keys_cached(
        state.user_id, state.latest_ts, oldest_ts=state.oldest_ts
    )


def _assemble(
    stages: list[Stage],
    *,
    limit: int,
    excluded: set[str],
    adapter: DefaultRecommenderAdapter,
    newest_category: str | None = None,
    newest_any: bool = True,
    known: dict[str, Any] | None = None,
    prefetched: Prefetched | None = None,
    reject: Reject | None = None,
) -> list[tuple[Candidate, Any]]:
    """Walk the stages until ``limit`` recommendable items are found; one item query per round.

    ``known``: items already looked up during this request (``{key: item or None}``), read and
    filled in, so that the blocks of one page ask for each candidate once. ``prefetched`` may
    carry the catalogue snapshot's version (``catalogue.PREFETCH_KEYS``). ``reject`` leaves out
    candidates (the newest-items fill included) that a rule on the item itself refuses.
    """
    cap = recommender_settings.DIVERSITY_CAP
    chosen: list[tuple[Candidate, Any]] = []
    per_category: dict[str | None, int] = {}
    capped: list[tuple[Candidate, Any]] = []
    seen: set[str] = set(excluded)
    pending: list[Candidate] = []
    target = limit * 2 + 10

    def take(candidate: Candidate, item: Any) -> None:
        if reject is not None and reject(candidate, item):
            return
        if cap:
            category = adapter.get_item_category(item)
            if category is not None and per_category.get(category, 0) >= cap:
                capped.append((candidate, item))
                return
            per_category[category] = per_category.get(category, 0) + 1
        chosen.append((candidate, item))

    def resolve() -> None:
        keys = [c.key for c in pending]
        if known is None:
            items = catalogue.available_items(adapter, keys, prefetched)
        else:
            missing = [key for key in keys if key not in known]
            if missing:
                found = catalogue.available_items(adapter, missing, prefetched)
                known.update((key, found.get(key)) for key in missing)
            items = known
        for candidate in pending:
            item = items.get(candidate.key)
            if item is not None and len(chosen) < limit:
                take(candidate, item)
        pending.clear()

    for stage in stages:
        for candidate in stage():
            if candidate.key in seen:
                continue
            seen.add(candidate.key)
            pending.append(candidate)
            if len(pending) >= target:
                resolve()
                if len(chosen) >= limit:
                    return chosen
    resolve()
    if len(chosen) < limit:
        # the newest items as the last resort; the diversity cap yields before an empty slot
        for item in (
            adapter.newest_items(limit=limit + len(seen), category=newest_category)
            if (newest_any or newest_category)
            else []
        ):
            key = adapter.get_item_key(item)
            if key in seen:
                continue
            seen.add(key)
            label = adapter.get_category_label(item)
            take(Candidate(key, 0.0, explain.new_in(label), "popular"), item)
            if len(chosen) >= limit:
                break
    while len(chosen) < limit and capped:
        chosen.append(capped.pop(0))
    return chosen


def _result(
    chosen: list[tuple[Candidate, Any]],
    *,
    placement: str,
    model_version: int | None,
    adapter: DefaultRecommenderAdapter,
) -> RecommendationResult:
    recommendation_id = str(uuid.uuid4())
    result = RecommendationResult(
        recommendation_id=recommendation_id,
        model_version=model_version,
        source=chosen[0][0].source if chosen else "popular",
        placement=placement,
    )
    context = catalogue.url_context()  # one list, one URL configuration and language
    for position, (candidate, item) in enumerate(chosen, start=1):
        url = catalogue.item_url(adapter, item, context)
        joiner = "&" if "?" in url else "?"
        result.items.append(
            RecommendedItem(
                key=candidate.key,
                item=item,
                score=round(float(candidate.score), 6),
                reason=candidate.reason,
                position=position,
                source=candidate.source,
                name=adapter.get_item_name(item),
                url=url,
                price=adapter.get_item_price(item),
                tracked_url=f"{url}{joiner}rec={recommendation_id}&pos={position}&pl={placement}"
                if url
                else "",
            )
        )
    return result


def _finish(
    result: RecommendationResult,
    *,
    request: Any,
    user_id: Any,
    visitor_id: str,
    record: bool | None,
) -> RecommendationResult:
    _shown_on_request(request).update(result.keys)
    if record if record is not None else request is not None:
        impressions.record_impression(
            result,
            user_id=user_id,
            visitor_id=visitor_id,
            deferred=request is not None,
            closing=_closing_writes(request),
        )
    return result


def _closing_writes(request: Any) -> ClosingWrites | None:
    """The request's ``ClosingWrites`` (set by the API's real-time lane), else None."""
    return getattr(request, CLOSING_WRITES_ATTRIBUTE, None) if request is not None else None


# --- candidate stages ------------------------------------------------------------------------------
def _snapshot(prefetched: Prefetched | None = None) -> popularity.PopularitySnapshot:
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


def _cache_get(key: str) -> Any:
    try:
        return cache.get(key)
    except Exception as exc:
        model.log_once(f"cache:{type(exc).__name__}", "Cache unavailable, using the database: %s", exc)
        return None


def _first_category(snapshot: popularity.PopularitySnapshot, keys: list[str]) -> str | None:
    return next((snapshot.item_category[k] for k in keys if k in snapshot.item_category), None)


def _popular_stage(
    category_or_rule: str | Callable[[Any], str | None] | None, prefetched: Prefetched | None = None
) -> Stage:
    """Popular items overall or of a category (given, or chosen from the snapshot by a rule)."""

    def stage() -> Iterator[Candidate]:
        snapshot = _snapshot(prefetched)
        category = category_or_rule(snapshot) if callable(category_or_rule) else category_or_rule
        if category:
            label = snapshot.labels.get(category, "")
            for key, score in snapshot.by_category.get(category, []):
                yield Candidate(key, score, explain.popular_in(label), "popular")
        else:
            for key, score in snapshot.overall:
                yield Candidate(key, score, explain.TRENDING, "popular")

    return stage


def _relations_stage(anchors: list[str], kinds: tuple[str, ...], limit: int, reason_for: Reasoner) -> Stage:
    """Stored relations of the anchors, earlier anchors and kinds first, each worded by ``reason_for``."""

    def stage() -> Iterator[Candidate]:
        from recommendations.models import ItemRelation

        if not anchors:
            return
        rows = (
            ItemRelation.objects.filter(item_key__in=anchors, kind__in=kinds)
            .order_by("-score")
            .values_list("item_key", "related_key", "kind", "score", "reason")[: max(limit * 4, 40)]
        )
        rank = {key: i for i, key in enumerate(anchors)}
        kind_rank = {kind: i for i, kind in enumerate(kinds)}
        # anchors earlier in the list (the page's item, the latest events) come first, then the
        # kinds in the order asked for (bought together before merely similar)
        ordered = sorted(rows, key=lambda r: (rank.get(r[0], 99), kind_rank.get(r[2], 9), -r[3]))
        for anchor, related, kind, score, _stored in ordered:
            yield Candidate(
                related, score, reason_for(anchor, kind), RELATION_SOURCES.get(kind, "covisitation")
            )

    return stage


def _precomputed(user_id: Any, prefetched: dict | None = None) -> dict | None:
    from recommendations.models import PrecomputedList

    cache_key = precomputed_cache_key(user_id)
    data = prefetched.get(cache_key) if prefetched is not None else _cache_get(cache_key)
    if data is None:

        def build(user: Any) -> Any:
            fields = ("item_keys", "scores", "reasons", "model_version", "computed_at")
            return PrecomputedList.objects.filter(user_id=user).order_by("pk").values_list(*fields)[:1]

        rows = compiled_rows(("precomputed",), PrecomputedList, build, USER_PLACEHOLDER, user_id)
        data = {}
        if rows:
            keys, scores, reasons, version, computed_at = rows[0]
            data = {
                "keys": keys,
                "scores": scores,
                "reasons": reasons,
                "version": version,
                "computed_at": computed_at.timestamp(),
            }
        cache_set(cache_key, data, recommender_settings.CACHE_TIMEOUT)
        if prefetched is not None:
            # read once per request (the list's basis and the personal stage both ask); no
            # digest is added, so the list is not offered for replay from a database read
            prefetched[cache_key] = data
    return data or None


def _realtime_cache_key(state: ShopperState, loaded: Any) -> str:
    return personal_keys.realtime_key(state.user_id, state.visitor_id, state.latest_ts, loaded.version_id)


def _realtime(
    state: ShopperState,
    loaded: Any,
    n: int,
    prefetched: dict | None = None,
    closing: ClosingWrites | None = None,
) -> list[list]:
    """Score the shopper's latest events through the active network (cached per latest event).

    The cached rows (read in the request's one ``prefetch``) serve any request for at most
    as many items as they were scored for; ``closing`` writes them at the end of the request.
    """
    cache_key = _realtime_cache_key(state, loaded)
    cached = prefetched.get(cache_key) if prefetched is not None else _cache_get(cache_key)
    if isinstance(cached, dict) and cached.get("n", 0) >= n:
        return cached["rows"][:n]
    model.limit_threads_for_web()
    scored = model.recommend(loaded, [state.history], n)[0]
    anchor_of = model.anchors(loaded, state.history, [key for key, _ in scored])
    names = item_names({anchor for key, (anchor, _) in anchor_of.items() if anchor != key})
    rows = []
    for key, score in scored:
        anchor = anchor_of.get(key)
        reason = explain.from_anchor(key, anchor, names.get(anchor[0], anchor[0]) if anchor else "")
        rows.append([key, float(score), reason])
    cache_set(cache_key, {"n": n, "rows": rows}, recommender_settings.CACHE_TIMEOUT, closing=closing)
    return rows


def _personal_stage(
    state: ShopperState,
    loaded: Any,
    n: int,
    version_box: list,
    prefetched: dict | None = None,
    used: list | None = None,
    closing: ClosingWrites | None = None,
) -> Stage:
    """The shopper's own list: a fresh precomputed one, else the network on their latest events.

    ``used`` receives "realtime" when the network scored the list.
    """
    source = "personal" if state.user_id is not None else "session"

    def stage() -> Iterator[Candidate]:
        precomputed = _precomputed(state.user_id, prefetched) if state.user_id is not None else None
        fresh = precomputed is not None and (
            state.latest_ts is None or state.latest_ts <= precomputed["computed_at"]
        )
        if fresh:
            version_box.append(precomputed["version"])
            for key, score, reason in zip(
                precomputed["keys"], precomputed["scores"], precomputed["reasons"], strict=False
            ):
                yield Candidate(key, score, reason, source)
            return
        if loaded is not None and state.history:
            version_box.append(loaded.version_number)
            if used is not None:
                used.append("realtime")
            for key, score, reason in _realtime(state, loaded, n, prefetched, closing):
                yield Candidate(key, score, reason, source)
        elif precomputed is not None:
            # no usable model: an older list is still better than none
            version_box.append(precomputed["version"])
            for key, score, reason in zip(
                precomputed["keys"], precomputed["scores"], precomputed["reasons"], strict=False
            ):
                yield Candidate(key, score, reason, source)

    return stage


def _list_cache_key(state: ShopperState, exclude: set[str], limit: int, placement: str) -> str:
    """Where the API keeps a list assembled from a precomputed list for these inputs.

    The shopper's latest event is part of the key (a new event is a new key); what the
    value was built from (precomputed list, "not interested" marks) is checked on reading.
    """
    inputs = (state.latest_ts, limit, placement, sorted(exclude))
    digest = hashlib.sha1(repr(inputs).encode(), usedforsecurity=False).hexdigest()
    return personal_keys.ASSEMBLED_LIST.key(state.user_id, inputs=digest)


def _list_basis(state: ShopperState, prefetched: dict) -> tuple | None:
    """What a reusable list depends on, or None when the precomputed list is missing or stale."""
    precomputed = _precomputed(state.user_id, prefetched)
    if precomputed is None or (state.latest_ts is not None and state.latest_ts > precomputed["computed_at"]):
        return None
    marks = prefetched.get(not_interested_cache_key(state.user_id, state.visitor_id))
    if marks is None:
        # marks not cached (e.g. one was just added): build afresh, reuse from the next request
        return None
    return (precomputed["computed_at"], precomputed["version"], tuple(marks))


def _to_cached(result: RecommendationResult, basis: tuple) -> dict:
    """A served list without its id and item instances (tracked URLs get the id back on reuse)."""
    return {
        "basis": basis,
        "id": result.recommendation_id,
        "model_version": result.model_version,
        "source": result.source,
        "items": [
            (e.key, e.score, e.reason, e.position, e.source, e.name, e.url, e.price, e.tracked_url)
            for e in result.items
        ],
    }


def _from_cached(cached: dict, *, placement: str) -> RecommendationResult:
    recommendation_id = str(uuid.uuid4())
    result = RecommendationResult(
        recommendation_id=recommendation_id,
        model_version=cached["model_version"],
        source=cached["source"],
        placement=placement,
    )
    for key, score, reason, position, source, name, url, price, tracked in cached["items"]:
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
            )
        )
    return result


def _offer_reuse(
    request: Any,
    state: ShopperState,
    prefetched: Prefetched,
    result: RecommendationResult,
    *,
    seconds: int | None = None,
) -> None:
    """Tell the API's fast path that this list may be replayed, and what it was built from.

    Only when both entries it depends on came from the cache in this request's round trip
    (their fingerprints are known); a new event, precomputed list or mark changes the basis.
    """
    if request is None or state.user_id is None:
        return
    precomputed_key = precomputed_cache_key(state.user_id)
    marks_key = not_interested_cache_key(state.user_id, state.visitor_id)
    if precomputed_key not in prefetched.digests or marks_key not in prefetched.digests:
        return
    reusable = ReusableList(
        user_id=state.user_id,
        latest=marker_text(state.latest_ts),
        basis=(prefetched.digests[precomputed_key], prefetched.digests[marks_key]),
        result=result,
        seconds=recommender_settings.LIST_CACHE_SECONDS if seconds is None else seconds,
    )
    with contextlib.suppress(AttributeError):
        setattr(request, REUSABLE_ATTRIBUTE, reusable)


def _context_keys(context: Mapping[str, Any], adapter: DefaultRecommenderAdapter) -> list[str]:
    keys: list[str] = []
    item = context.get("item")
    if item is not None:
        keys.append(item if isinstance(item, str) else adapter.get_item_key(item))
    for extra in context.get("items") or ():
        keys.append(extra if isinstance(extra, str) else adapter.get_item_key(extra))
    return keys


def _anchor_reasons(anchors: list[str], page_keys: list[str], cart_keys: set[str], history: list) -> Reasoner:
    """Reasons for items related to a list's anchors, true of this shopper.

    A complement of a cart item "goes with X in your cart", of any other anchor is "bought
    together with X"; an item similar to one the shopper had (and is not looking at now) says
    what they did ("because you viewed X"), else "similar to X". Names are read on first use.
    """
    last_type = {key: event_type for key, event_type, _ts in history}
    names: dict[str, str] = {}

    def reason_for(anchor: str, kind: str) -> str:
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


def _recent_distinct(history: list, n: int) -> list[str]:
    keys: list[str] = []
    for key, _type, _ts in reversed(history):
        if key not in keys:
            keys.append(key)
        if len(keys) >= n:
            break
    return keys


# --- public services -----------------------------------------------------------------------------------
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
    """A full, explained list for a user or an anonymous visitor, through the fallback chain.

    ``reuse_list=True`` (the API) may answer a user whose precomputed list is fresh from the
    list assembled for the same inputs up to ``LIST_CACHE_SECONDS`` ago, with a new
    ``recommendation_id`` and without item instances (``RecommendedItem.item`` is None).

    ``context`` may hold ``request`` (cart, items already shown on the page, impressions after
    the response), ``item``/``items`` (the page's items: excluded and used as anchors) and
    ``category``. Impressions are recorded when a request is given (or ``record=True``).
    """
    started = time.perf_counter()
    context = dict(context or {})
    request = context.get("request")
    adapter = get_adapter()
    limit = clamp_limit(limit)
    state = _request_state(request, user=user, visitor_id=visitor_id)
    page_keys = _context_keys(context, adapter)
    cart_keys = adapter.get_cart_item_keys(request, context)
    list_key = None
    # the API's plain "my list" request is the one worth reusing (no page, cart or category)
    plain = not page_keys and not cart_keys and context.get("category") is None
    if reuse_list and state.user_id is not None and plain and not _shown_on_request(request):
        list_key = _list_cache_key(state, {str(k) for k in exclude}, limit, placement)
    loaded = model.get_active_model() if state.history or state.user_id is not None else None
    # the catalogue snapshot's version rides along: the list below is assembled against it
    # and the popularity snapshot's stamp, for the fallback stages
    extra = [*([list_key] if list_key else []), *catalogue.PREFETCH_KEYS, popularity.STAMP_KEY]
    if loaded is not None and state.history:
        extra.append(_realtime_cache_key(state, loaded))
    prefetched = prefetch(state.user_id, state.visitor_id, state.latest_ts, extra=extra)
    basis = _list_basis(state, prefetched) if list_key else None
    cached = prefetched.get(list_key) if basis is not None else None
    if cached is not None and cached["basis"] == basis:
        result = _from_cached(cached, placement=placement)
        result.elapsed_ms = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
        _offer_reuse(request, state, prefetched, result)
        return _finish(
            result, request=request, user_id=state.user_id, visitor_id=state.visitor_id, record=record
        )
    excluded = (
        {str(k) for k in exclude}
        | set(page_keys)
        | cart_keys
        | _shown_on_request(request)
        | state.keys_with_type("purchase")
        | purchased_keys_cached(state.user_id, state.latest_ts, prefetched, oldest_ts=state.oldest_ts)
        | not_interested_keys(state.user_id, state.visitor_id, prefetched)
    )
    snapshot_category = context.get("category")
    category = adapter.category_key(snapshot_category) if snapshot_category is not None else None
    anchors = page_keys + sorted(cart_keys) + _recent_distinct(state.history, 5)
    # what the shopper is looking at right now is not worth recommending back to them
    excluded |= set(anchors)
    version_box: list = []
    used: list = []
    stages: list[Stage] = [
        _personal_stage(
            state, loaded, limit * 3 + len(excluded), version_box, prefetched, used, _closing_writes(request)
        ),
        _relations_stage(
            anchors,
            ("bought_together", "similar"),
            limit,
            _anchor_reasons(anchors, page_keys, cart_keys, state.history),
        ),
    ]
    if category:
        stages.append(_popular_stage(category, prefetched))
    elif anchors:
        # the anchors' category, looked up only when the list gets this far
        stages.append(_popular_stage(lambda snapshot: _first_category(snapshot, anchors), prefetched))
    stages.append(_popular_stage(None, prefetched))
    chosen = _assemble(stages, limit=limit, excluded=excluded, adapter=adapter, prefetched=prefetched)
    version = version_box[0] if version_box else None
    result = _result(chosen, placement=placement, model_version=version, adapter=adapter)
    if not any(entry.source in {"personal", "session"} for entry in result.items):
        result.model_version = None
    if basis is not None and result.source == "personal":
        cache_set(list_key, _to_cached(result, basis), recommender_settings.LIST_CACHE_SECONDS)
        _offer_reuse(request, state, prefetched, result)
    elif list_key and used and result.source == "personal":
        # built by the network from the latest events: the same inputs give the same list until
        # a new event, list or mark, or another active version (which a process notices within
        # ACTIVE_MODEL_CHECK_SECONDS, so the replay lives no longer)
        seconds = min(
            recommender_settings.LIST_CACHE_SECONDS, recommender_settings.ACTIVE_MODEL_CHECK_SECONDS
        )
        _offer_reuse(request, state, prefetched, result, seconds=seconds)
    result.elapsed_ms = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
    return _finish(result, request=request, user_id=state.user_id, visitor_id=state.visitor_id, record=record)


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


def _related_list(
    item: Any,
    *,
    limit: int,
    placement: str,
    context: Mapping[str, Any] | None,
    record: bool | None,
) -> RecommendationResult:
    """Items similar to ``item``: its stored "similar" relations, the model's nearest items, then its
    category's popular items; every reason is "similar to <item>" or says where it came from."""
    context = dict(context or {})
    request = context.get("request")
    adapter = get_adapter()
    limit = clamp_limit(limit)
    key, instance = resolve_item(item)
    category = adapter.get_item_category(instance)
    excluded = (
        {key}
        | adapter.get_cart_item_keys(request, context)
        | _shown_on_request(request)
        | _bought_by_shopper(request)
    )
    version_box: list = []
    name = adapter.get_item_name(instance)
    stages: list[Stage] = [
        _relations_stage([key], ("similar",), limit, lambda _anchor, _kind: explain.similar_to(name)),
        _model_similar_stage(key, instance, limit, version_box, adapter),
    ]
    if category:
        stages.append(_popular_stage(category))
    stages.append(_popular_stage(None))
    chosen = _assemble(
        stages,
        limit=limit,
        excluded=excluded,
        adapter=adapter,
        newest_category=category,
        known=_on_request(request, KNOWN_ITEMS_ATTRIBUTE, dict),
    )
    result = _result(
        chosen, placement=placement, model_version=version_box[0] if version_box else None, adapter=adapter
    )
    return _finish_for_request(result, request, record)


def _finish_for_request(
    result: RecommendationResult, request: Any, record: bool | None
) -> RecommendationResult:
    """``_finish`` for the request's shopper (a user, a visitor, or nobody without a request)."""
    user = getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    return _finish(
        result, request=request, user_id=user_id, visitor_id=getattr(request, "visitor_id", ""), record=record
    )


def _model_similar_stage(
    key: str, instance: Any, limit: int, version_box: list, adapter: DefaultRecommenderAdapter
) -> Stage:
    def stage() -> Iterator[Candidate]:
        loaded = model.get_active_model()
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


def similar_items(
    item: Any,
    *,
    limit: int = 10,
    placement: str = "similar",
    context: Mapping[str, Any] | None = None,
    record: bool | None = None,
) -> RecommendationResult:
    """Items like ``item`` (a key or an instance): relations, model embeddings, then its category."""
    return _related_list(item, limit=limit, placement=placement, context=context, record=record)


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
    excluded = _shown_on_request(request) | _bought_by_shopper(request)
    chosen = _assemble(
        [_popular_stage(category_key)],
        limit=limit,
        excluded=excluded,
        adapter=adapter,
        newest_category=category_key,
        newest_any=category_key is None,
    )
    result = _result(chosen, placement=placement, model_version=None, adapter=adapter)
    return _finish_for_request(result, request, record)
