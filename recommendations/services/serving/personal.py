"""The shopper's own candidates: their precomputed list when fresh, else the behaviour network
scored on their latest events (cached per latest event and model version)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.cache import cache

from recommendations.conf import recommender_settings
from recommendations.services import personal_keys
from recommendations.services.serving import explain, model
from recommendations.services.serving.assembly import Stage
from recommendations.services.serving.history import USER_PLACEHOLDER, ShopperState, compiled_rows
from recommendations.services.serving.names import item_names
from recommendations.services.serving.state import ClosingWrites, cache_set, precomputed_cache_key
from recommendations.services.serving.types import Candidate


def _cache_get(key: str) -> Any:
    try:
        return cache.get(key)
    except Exception as exc:
        model.log_once(f"cache:{type(exc).__name__}", "Cache unavailable, using the database: %s", exc)
        return None


def precomputed(user_id: Any, prefetched: dict | None = None) -> dict | None:
    """The user's precomputed list (``keys``, ``scores``, ``reasons``, ``version``, ``computed_at``)."""
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


def realtime_cache_key(state: ShopperState, loaded: Any) -> str:
    """Where the network's rows for the shopper's latest event and this model version are kept."""
    return personal_keys.realtime_key(state.user_id, state.visitor_id, state.latest_ts, loaded.version_id)


def realtime(
    state: ShopperState,
    loaded: Any,
    n: int,
    prefetched: dict | None = None,
    closing: ClosingWrites | None = None,
) -> list[list]:
    """Score the shopper's latest events through the active network (cached per latest event).

    The cached rows (read in the request's one ``prefetch``) serve any request for at most
    as many items as they were scored for; ``closing`` writes them at the end of the request.
    Rows are ``[key, score, packed reason]`` (``explain.Reason.pack``).
    """
    cache_key = realtime_cache_key(state, loaded)
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
        rows.append([key, float(score), reason.pack()])
    cache_set(cache_key, {"n": n, "rows": rows}, recommender_settings.CACHE_TIMEOUT, closing=closing)
    return rows


def _stored(keys: list, scores: list, reasons: list, source: str) -> Iterator[Candidate]:
    unpack = explain.unpack
    for key, score, reason in zip(keys, scores, reasons, strict=False):
        yield Candidate(key, score, unpack(reason), source)


def personal_stage(
    state: ShopperState,
    loaded: Any,
    n: int,
    version_box: list,
    prefetched: dict | None = None,
    used: list | None = None,
    closing: ClosingWrites | None = None,
    pinned: bool = False,
) -> Stage:
    """The shopper's own list: a fresh precomputed one, else the network on their latest events.

    ``used`` receives "realtime" when the network scored the list. ``pinned``: ``loaded`` is an
    experiment arm's version, so a stored list counts only when that version computed it.
    """
    source = "personal" if state.user_id is not None else "session"

    def stage() -> Iterator[Candidate]:
        stored = precomputed(state.user_id, prefetched) if state.user_id is not None else None
        if stored is not None and pinned and stored["version"] != loaded.version_number:
            stored = None  # another version's list: the arm's own version scores instead
        if stored is not None and (state.latest_ts is None or state.latest_ts <= stored["computed_at"]):
            version_box.append(stored["version"])
            yield from _stored(stored["keys"], stored["scores"], stored["reasons"], source)
            return
        if loaded is not None and state.history:
            version_box.append(loaded.version_number)
            if used is not None:
                used.append("realtime")
            for key, score, reason in realtime(state, loaded, n, prefetched, closing):
                yield Candidate(key, score, explain.unpack(reason), source)
        elif stored is not None:
            # no usable model: an older list is still better than none
            version_box.append(stored["version"])
            yield from _stored(stored["keys"], stored["scores"], stored["reasons"], source)

    return stage
