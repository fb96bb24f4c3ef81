"""Batch scoring of every active user through the active model (the serving fast path).

One streaming query reads the latest events of every active user, ordered by user and time; each
batch of users is encoded, scored and ranked on whole arrays (one forward pass and one top-k per
batch), explained from the same arrays, written with one COPY (PostgreSQL) and cached with one
pipeline. The lists are the ones the real-time path computes for the same history: the same
``BehaviorRecommender`` scoring, the same purchased-item exclusion, the same anchors.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from django.db import connection

from behavior.services.collection import fewer_collections
from recommendations.conf import recommender_settings
from recommendations.core.batch import encode_columns
from recommendations.core.dataset import TYPE_INDEX
from recommendations.services.serving import impressions, model
from recommendations.services.serving.precompute_explain import Explainer
from recommendations.services.serving.precompute_pipeline import (
    WriteBehind,
    ramped_batches,
    read_ahead,
    scored_in_order,
)
from recommendations.services.serving.precompute_store import Encoder
from recommendations.services.serving.precompute_store import store as store_lists

logger = logging.getLogger(__name__)


STAGES = ("load", "score", "explain", "write")


@dataclass
class PrecomputeResult:
    users: int
    seconds: float
    model_version: int | None
    #: wall and CPU seconds per stage: ``{stage: (wall, cpu)}`` (see :data:`STAGES`)
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: users the model failed to score (their lists were stored empty; see the error logged)
    failed_users: int = 0

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else 0.0


class _Stopwatch:
    """Wall and CPU time per stage, summed over batches; CPU is the measuring thread's own.

    The stages are :data:`STAGES`. With the read-ahead and write-behind threads, "load" and
    "write" are the time the scoring thread waits for them, the threads' own time is reported as
    "load (thread)" and "write (thread)" (the latter includes "explain", which runs there).
    """

    def __init__(self) -> None:
        self.totals = {stage: [0.0, 0.0] for stage in STAGES}
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            with self.lock:
                total = self.totals.setdefault(stage, [0.0, 0.0])
                total[0] += wall
                total[1] += cpu

    def timed(self, stage: str, iterator: Iterator) -> Iterator:
        """``iterator``'s own time (fetching the next item) counted as ``stage``."""
        while True:
            with self(stage):
                item = next(iterator, None)
            if item is None:
                return
            yield item

    def result(self) -> dict[str, tuple[float, float]]:
        with self.lock:
            return {stage: (round(w, 4), round(c, 4)) for stage, (w, c) in self.totals.items()}


def refresh_recommendations(
    *, user_ids: list | None = None, batch_size: int | None = None
) -> PrecomputeResult:
    """Score users in batches and store their lists in the table and the cache.

    Purchased items are left out at compute time; the other business rules (stock, cart,
    "not interested") are applied when a list is served, because they change faster.
    """
    from recommendations.data.history_batches import stream_user_histories

    started = time.perf_counter()
    loaded = model.get_active_model()
    if loaded is None:
        impressions.flush()
        return PrecomputeResult(0, time.perf_counter() - started, None)
    watch = _Stopwatch()
    batches = stream_user_histories(
        user_ids=user_ids,
        # active within ACTIVE_USER_DAYS before the newest stored event (the data clock)
        active_days=recommender_settings.ACTIVE_USER_DAYS,
        limit=recommender_settings.SESSION_EVENTS,
        batch_users=functools.partial(
            ramped_batches, size=batch_size or recommender_settings.PRECOMPUTE_BATCH_SIZE
        ),
    )
    # the next batch is read, and the previous one written, while this one is scored (the
    # database and the cache work while torch does); inside a transaction (tests, a caller's
    # atomic block) other connections would not see its rows, so everything then runs here
    explainer = Explainer(loaded)
    encoder = Encoder(loaded.recommender.item_ids_)

    def explain_and_store(batch: Any, items: np.ndarray, ranked: tuple[np.ndarray, np.ndarray]) -> None:
        with watch("explain"):
            reasons = explainer.reasons(batch, items, ranked[0])
        store_lists(loaded, batch, ranked, reasons, encoder)

    store: Any = explain_and_store
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # explanations and writes run in the write-behind thread: the scoring thread only scores
        batches = read_ahead(watch.timed("load (thread)", batches))
        store = WriteBehind(store, watch)
    done = 0
    columns = _Columns(loaded)
    failures: list[tuple[int, Exception]] = []  # (users, error) of each batch the model failed to score

    def score(batch: Any) -> tuple[Any, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        with watch("score"):
            items = columns.items(batch)
            types = columns.types(batch)
            return batch, items, _rank(loaded, batch, items, types, recommender_settings.TOP_N, failures)

    # one intra-op thread per scoring thread: the batch work is a chain of medium-sized ops, where
    # a second OpenMP thread mostly waits at barriers (and spins on a busy machine); instead up to
    # PRECOMPUTE_THREADS batches are scored at once, each by its own thread (torch releases the
    # GIL inside its ops), which keeps the cores busy between the database and the cache
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    scored = scored_in_order(score, watch.timed("load", batches), recommender_settings.PRECOMPUTE_THREADS)
    try:
        with fewer_collections():
            for batch, items, ranked in scored:
                with watch("write"):
                    store(batch, items, ranked)
                done += len(batch.user_ids)
    finally:
        try:
            # after an error: stop the scoring threads and the reading thread now (otherwise only
            # when the traceback's frames are collected)
            scored.close()
            if hasattr(batches, "close"):
                batches.close()
            if isinstance(store, WriteBehind):
                with watch("write"):
                    store.close()
        finally:
            torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    # the periodic refresh also writes the impressions the web workers queued meanwhile
    impressions.flush()
    logger.info("Precomputed %d lists in %.1fs with model version %s", done, seconds, loaded.version_number)
    failed = sum(users for users, _ in failures)
    if failures:
        logger.error(
            "Model version %s failed to score %d of %d users (their lists are stored empty): %s",
            loaded.version_number,
            failed,
            done,
            failures[0][1],
        )
    return PrecomputeResult(done, seconds, loaded.version_number, watch.result(), failed)


class _Columns:
    """Model columns of item keys and network indexes of event types, looked up a whole batch at once.

    A hash index over the model's keys built once per refresh (``pandas.Index.get_indexer``)
    maps a batch's keys in one call instead of a dictionary lookup per event.
    """

    _TYPES = pd.Index(list(TYPE_INDEX))
    _TYPE_VALUES = np.array([*TYPE_INDEX.values(), 0], dtype=np.int64)  # position -1 -> 0 (padding)

    def __init__(self, loaded: Any) -> None:
        self.keys = pd.Index(loaded.recommender.item_ids_)

    def items(self, batch: Any) -> np.ndarray:
        """Dense model index of each event's item (its column + 1; 0 = not in the model)."""
        return self.keys.get_indexer(batch.items).astype(np.int64) + 1

    def types(self, batch: Any) -> np.ndarray:
        """The network's index of each event's type (0 for a type it does not know)."""
        return self._TYPE_VALUES[self._TYPES.get_indexer(batch.event_types)]


def _rank(
    loaded: Any, batch: Any, items: np.ndarray, types: np.ndarray, n: int, failures: list
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` model columns per user (purchased items left out); empty lists if the model fails.

    A failure is appended to ``failures`` as ``(users, error)``: the refresh reports it once.
    """
    recommender = loaded.recommender
    rows = len(batch.user_ids)
    try:
        seqs = encode_columns(
            batch.owners,
            items,
            types,
            batch.timestamps,
            rows,
            recommender._event_weights(),
            recommender._max_length(),
        )
        bought = (types == TYPE_INDEX["purchase"]) & (items > 0)
        return recommender.rank_sequences(seqs, n, exclude=(batch.owners[bought], items[bought] - 1))
    except Exception as exc:  # a broken model must not stop the refresh: reported, lists stored empty
        failures.append((rows, exc))
        return np.zeros((rows, 0), dtype=np.int64), np.zeros((rows, 0))
