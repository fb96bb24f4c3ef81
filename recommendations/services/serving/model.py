"""The active behaviour network, scored in-process for one shopper or a batch.

The registry loads the artefact once per process per version; this module adds the
per-version lookups the explanations need (item index, normalised embeddings).
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_logged: set[str] = set()
_embeddings: dict[int, tuple[dict[str, int], np.ndarray]] = {}
_lock = threading.Lock()
_threads_limited = threading.local()


def log_once(key: str, message: str, *args: Any) -> None:
    """Log a warning the first time ``key`` is seen in this process (failures are not per request)."""
    if key not in _logged:
        _logged.add(key)
        logger.warning(message, *args)


def get_active_model() -> Any:
    """The registry's ``LoadedModel`` or None; never raises (failures are logged once)."""
    try:
        from recommendations.services.registry import get_active_model as registry_get_active_model
    except ImportError as exc:
        log_once("import", "Recommender registry unavailable, serving fallbacks: %s", exc)
        return None
    try:
        return registry_get_active_model()
    except Exception as exc:  # a broken registry must degrade to fallbacks, never a 500
        log_once(f"load:{type(exc).__name__}", "Active model could not be loaded: %s", exc)
        return None


def limit_threads_for_web() -> None:
    """One torch thread per web worker thread: many workers share the cores (once per thread).

    Once per thread, not per process: torch keeps the OpenMP thread count of each thread,
    set from the process-wide value when the thread first runs an op. A thread that ran torch
    before the first call (e.g. the one that loaded the model) would keep the default (one per
    core) and run its ops in a team of two, whose second OpenMP thread spins after every op:
    under a threaded WSGI server that cost a quarter of the workers' CPU.
    """
    if not getattr(_threads_limited, "done", False):
        import torch

        torch.set_num_threads(1)
        _limit_blas_threads()
        _threads_limited.done = True


@functools.cache
def _limit_blas_threads() -> None:
    """One BLAS thread in this process (once): NumPy scores one history per web request.

    OpenBLAS splits a product as small as the network's 50 x 64 x 192 across every core and
    its threads spin between calls; in a web worker that costs more CPU than it saves. The
    limit is process-wide (OpenBLAS has no per-thread setting), as web workers want.
    """
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except Exception as exc:  # no threadpoolctl or an unknown BLAS: slower, not wrong
        log_once("blas-threads", "Could not limit BLAS threads: %s", exc)


def recommend(
    loaded: Any, histories: list, n: int, exclude: list | None = None
) -> list[list[tuple[str, float]]]:
    """Score histories through the model; an error is logged once and yields empty lists."""
    try:
        return loaded.recommender.recommend(histories, n, exclude=exclude)
    except Exception as exc:
        log_once(
            f"recommend:{loaded.version_id}",
            "Model version %s failed to score: %s",
            loaded.version_number,
            exc,
        )
        return [[] for _ in histories]


def similar(loaded: Any, key: str, n: int) -> list[tuple[str, float]]:
    try:
        return loaded.recommender.similar_items(key, n)
    except Exception as exc:
        log_once(
            f"similar:{loaded.version_id}",
            "Model version %s failed on similar items: %s",
            loaded.version_number,
            exc,
        )
        return []


def _embedding_index(loaded: Any) -> tuple[dict[str, int], np.ndarray] | None:
    cached = _embeddings.get(loaded.version_id)
    if cached is not None:
        return cached
    try:
        vectors = np.asarray(loaded.recommender.item_embeddings(), dtype=np.float32)
        keys = list(loaded.recommender.item_ids_)
    except Exception as exc:
        log_once(f"embed:{loaded.version_id}", "No item embeddings for explanations: %s", exc)
        return None
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-8)
    with _lock:
        _embeddings.clear()  # keep only the active version
        _embeddings[loaded.version_id] = ({k: i for i, k in enumerate(keys)}, vectors)
    return _embeddings[loaded.version_id]


def anchors(
    loaded: Any, history: list, recommended: list[str], *, recent: int = 10
) -> dict[str, tuple[str, str]]:
    """For each recommended key, the recent history item most like it: ``{key: (anchor, event_type)}``.

    A recommended key that is itself among the recent items is its own anchor (with its newest
    event type): the network may bring back an item the shopper had, and no other item explains
    that as truly (``explain.from_anchor`` says "you viewed this before").
    """
    index = _embedding_index(loaded) if loaded is not None else None
    recent_events: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, event_type, _ in reversed(history):
        if key not in seen:
            seen.add(key)
            recent_events.append((key, event_type))
        if len(recent_events) >= recent:
            break
    if not recent_events:
        return {}
    own = {key: event_type for key, event_type in recent_events}
    if index is None:
        return {key: (key, own[key]) if key in own else recent_events[0] for key in recommended}
    positions, vectors = index
    known = [(k, t) for k, t in recent_events if k in positions]
    if not known:
        return {key: (key, own[key]) if key in own else recent_events[0] for key in recommended}
    history_vectors = vectors[[positions[k] for k, _ in known]]
    result = {key: known[0] for key in recommended}
    scored = [(key, positions[key]) for key in recommended if key in positions]
    if scored:
        # one (history x recommended) product instead of one dot product per recommended item
        best = np.argmax(history_vectors @ vectors[[row for _, row in scored]].T, axis=0)
        for (key, _row), index in zip(scored, best, strict=True):
            result[key] = known[int(index)]
    for key in recommended:
        if key in own:
            result[key] = (key, own[key])
    return result
