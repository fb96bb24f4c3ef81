"""Assembling a served list: candidate stages in order, the business rules, one item query per
round, the diversity cap, the newest items as the last resort; then the list's entries (reasons
worded in the reader's language) and its one impression.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from recommendations.adapter import DefaultRecommenderAdapter
from recommendations.conf import recommender_settings
from recommendations.services.serving import catalogue, explain, impressions
from recommendations.services.serving.merchandising import MERCHANDISING_SOURCE, ListRules
from recommendations.services.serving.page import page_of
from recommendations.services.serving.state import ClosingWrites, Prefetched
from recommendations.services.serving.types import Candidate, RecommendationResult, RecommendedItem

Stage = Callable[[], Iterable[Candidate]]
# (candidate, its item) -> True when the list must not show it (e.g. a substitute of a cart item)
Reject = Callable[[Candidate, Any], bool]


def clamp_limit(limit: Any) -> int:
    """A usable list length: DEFAULT_LIMIT when missing, at most MAX_LIMIT, at least 1."""
    try:
        value = int(limit)
    except (TypeError, ValueError):
        value = recommender_settings.DEFAULT_LIMIT
    return max(1, min(value, recommender_settings.MAX_LIMIT))


def assemble(
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
    rules: ListRules | None = None,
) -> list[tuple[Candidate, Any]]:
    """Walk the stages until ``limit`` recommendable items are found; one item query per round.

    ``known``: items already looked up during this request (``{key: item or None}``), read and
    filled in, so that the blocks of one page ask for each candidate once. ``prefetched`` may
    carry the catalogue snapshot's version (``catalogue.PREFETCH_KEYS``). ``reject`` leaves out
    candidates (the newest-items fill included) that a rule on the item itself refuses.
    ``rules``: the placement's merchandising rules (``merchandising.rules_for``), applied to
    the assembled candidates; the ids of those that applied are collected on it.
    """
    if rules is not None:
        reject = rules.reject(adapter, reject)
    chosen = _assemble(
        stages,
        # a boost may lift a candidate from below the cut: read that far
        limit=limit + (rules.extra if rules is not None else 0),
        excluded=excluded,
        adapter=adapter,
        newest_category=newest_category,
        newest_any=newest_any,
        known=known,
        prefetched=prefetched,
        reject=reject,
    )
    if rules is None:
        return chosen
    return rules.arranged(
        chosen, limit=limit, excluded=excluded, adapter=adapter, known=known, prefetched=prefetched
    )


def _assemble(
    stages: list[Stage],
    *,
    limit: int,
    excluded: set[str],
    adapter: DefaultRecommenderAdapter,
    newest_category: str | None,
    newest_any: bool,
    known: dict[str, Any] | None,
    prefetched: Prefetched | None,
    reject: Reject | None,
) -> list[tuple[Candidate, Any]]:
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
        fetch = limit + len(seen)
        for _round in range(3 if (newest_any or newest_category) else 0):
            newest = adapter.newest_items(limit=fetch, category=newest_category)
            for item in newest:
                key = adapter.get_item_key(item)
                if key in seen:
                    continue
                seen.add(key)
                label = adapter.get_category_label(item)
                take(Candidate(key, 0.0, explain.new_in(label), "popular"), item)
                if len(chosen) >= limit:
                    break
            if len(chosen) >= limit or len(newest) < fetch or reject is None:
                break
            # items the reject rule refused (exclusions, substitutes) took places: read further
            fetch *= 4
    while len(chosen) < limit and capped:
        chosen.append(capped.pop(0))
    return chosen


def build_result(
    chosen: list[tuple[Candidate, Any]],
    *,
    placement: str,
    model_version: int | None,
    adapter: DefaultRecommenderAdapter,
    rules: ListRules | None = None,
) -> RecommendationResult:
    """The served list of the chosen candidates, each reason worded in the active language.

    The list's source is its first item's not placed there by a pin; ``rules``: the
    merchandising rules it was assembled with (the ids of those that applied are recorded).
    """
    recommendation_id = str(uuid.uuid4())
    sources = (candidate.source for candidate, _item in chosen if candidate.source != MERCHANDISING_SOURCE)
    result = RecommendationResult(
        recommendation_id=recommendation_id,
        model_version=model_version,
        source=next(sources, chosen[0][0].source if chosen else "popular"),
        placement=placement,
        merchandising_rule_ids=rules.applied_ids if rules is not None else [],
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
                reason=explain.render(candidate.reason),
                position=position,
                source=candidate.source,
                name=adapter.get_item_name(item),
                url=url,
                price=adapter.get_item_price(item),
                tracked_url=f"{url}{joiner}rec={recommendation_id}&pos={position}&pl={placement}"
                if url
                else "",
                reason_code=candidate.reason.code,
            )
        )
    return result


def finish(
    result: RecommendationResult,
    *,
    request: Any,
    user_id: Any,
    visitor_id: str,
    record: bool | None,
    closing: ClosingWrites | None = None,
) -> RecommendationResult:
    """Mark the list's items shown on the page and record its impression (when asked, or with a
    request); ``closing`` takes the impression row instead of the process's queue."""
    if request is not None:
        page_of(request).shown.update(result.keys)
    if record if record is not None else request is not None:
        impressions.record_impression(
            result,
            user_id=user_id,
            visitor_id=visitor_id,
            deferred=request is not None,
            closing=closing,
        )
    return result


def finish_for_request(
    result: RecommendationResult, request: Any, record: bool | None
) -> RecommendationResult:
    """:func:`finish` for the request's shopper (a user, a visitor, or nobody without a request)."""
    user = getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    return finish(
        result, request=request, user_id=user_id, visitor_id=getattr(request, "visitor_id", ""), record=record
    )
