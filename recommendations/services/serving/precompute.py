"""Batch scoring of every active user through the active model (the serving fast path).

One streaming query reads the latest events of every active user, ordered by user and time; each
batch of users is encoded, scored and ranked on whole arrays (one forward pass and one top-k per
batch), explained from the same arrays, written with one COPY (PostgreSQL) and cached with one
pipeline. The lists are the ones the real-time path computes for the same history: the same
``BehaviorRecommender`` scoring, the same purchased-item exclusion, the same anchors.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from behavior.services.collection import fewer_collections
from recommendations.conf import recommender_settings
from recommendations.core.batch import encode_columns, recent_distinct
from recommendations.core.dataset import TYPE_INDEX
from recommendations.data.events import any_of
from recommendations.services.serving import explain, impressions, model
from recommendations.services.serving.names import item_names
from recommendations.services.serving.state import precomputed_cache_key

logger = logging.getLogger(__name__)

#: recent distinct items of a history that may explain a recommendation (as ``model.anchors``)
ANCHOR_EVENTS = 10
STAGES = ("load", "score", "explain", "write")


@dataclass
class PrecomputeResult:
    users: int
    seconds: float
    model_version: int | None
    #: wall and CPU seconds per stage: ``{stage: (wall, cpu)}`` (see :data:`STAGES`)
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)

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
    explainer = _Explainer(loaded)
    encoder = _Encoder(loaded.recommender.item_ids_)

    def explain_and_store(batch: Any, items: np.ndarray, ranked: tuple[np.ndarray, np.ndarray]) -> None:
        with watch("explain"):
            reasons = explainer.reasons(batch, items, ranked[0])
        _store(loaded, batch, ranked, reasons, encoder)

    store: Any = explain_and_store
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # explanations and writes run in the write-behind thread: the scoring thread only scores
        batches = _read_ahead(watch.timed("load (thread)", batches))
        store = _WriteBehind(store, watch)
    done = 0
    columns = _Columns(loaded)

    def score(batch: Any) -> tuple[Any, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        with watch("score"):
            items = columns.items(batch)
            return batch, items, _rank(loaded, batch, items, columns.types(batch), recommender_settings.TOP_N)

    # one intra-op thread per scoring thread: the batch work is a chain of medium-sized ops, where
    # a second OpenMP thread mostly waits at barriers (and spins on a busy machine); instead up to
    # PRECOMPUTE_THREADS batches are scored at once, each by its own thread (torch releases the
    # GIL inside its ops), which keeps the cores busy between the database and the cache
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    scored = _scored_in_order(score, watch.timed("load", batches), recommender_settings.PRECOMPUTE_THREADS)
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
            if isinstance(store, _WriteBehind):
                with watch("write"):
                    store.close()
        finally:
            torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    # the periodic refresh also writes the impressions the web workers queued meanwhile
    impressions.flush()
    logger.info("Precomputed %d lists in %.1fs with model version %s", done, seconds, loaded.version_number)
    return PrecomputeResult(done, seconds, loaded.version_number, watch.result())


def ramped_batches(total: int, size: int) -> list[int]:
    """Batch sizes for ``total`` users: a quarter and a half batch first, then whole ones, a quarter last.

    The stages overlap only once a batch is in each of them: small first batches start the scoring
    early, and a small last one shortens the write that nothing else overlaps at the end.
    """
    size = max(1, size)
    quarter = max(1, size // 4)
    sizes: list[int] = []
    left = total
    for first in (quarter, max(1, size // 2)):
        if left > 0:
            sizes.append(min(first, left))
            left -= sizes[-1]
    while left > size + quarter:
        sizes.append(size)
        left -= size
    if left > quarter:
        sizes.append(left - quarter)
        left = quarter
    if left > 0:
        sizes.append(left)
    return sizes


def _scored_in_order(score: Any, batches: Iterator, workers: int | None) -> Iterator:
    """``score(batch)`` of each batch, in order, with up to ``workers`` batches scored at once.

    Each scoring thread sets its own torch thread count to one: torch keeps a count per thread,
    taken from the process-wide value only when the thread first runs an op. An error is raised
    here in order; closing the generator cancels the batches not started and joins the threads.
    """
    workers = max(1, int(workers or 1))
    if workers == 1:
        yield from map(score, batches)
        return
    pool = ThreadPoolExecutor(
        workers, thread_name_prefix="precompute-score", initializer=torch.set_num_threads, initargs=(1,)
    )
    pending: collections.deque = collections.deque()
    try:
        for batch in batches:
            pending.append(pool.submit(score, batch))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for job in pending:
            job.cancel()
        pool.shutdown(wait=True)


_DONE = object()


def _read_ahead(iterator: Iterator) -> Iterator:
    """``iterator``'s items, produced one item ahead in a thread with its own database connection."""
    from django.db import connections

    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in iterator:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)
        finally:
            connections.close_all()  # this thread's connection only (connections are per thread)

    thread = threading.Thread(target=produce, name="precompute-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _WriteBehind:
    """Calls ``store(*job)`` for each submitted job in a thread with its own database connection.

    At most one job waits while another is stored, so memory stays bounded; the first error stops
    the storing and is raised to the caller by the next ``__call__`` or by ``close``.
    """

    def __init__(self, store: Any, watch: _Stopwatch | None = None) -> None:
        self.store = store
        self.watch = watch
        self.jobs: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="precompute-write-behind", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from django.db import connections

        try:
            while (job := self.jobs.get()) is not _DONE:
                if self.error is None:
                    try:
                        with self.watch("write (thread)") if self.watch else contextlib.nullcontext():
                            self.store(*job)
                    except BaseException as exc:  # raised in the caller's thread
                        self.error = exc
        finally:
            connections.close_all()  # this thread's connection only

    def __call__(self, *job: Any) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put(job)

    def close(self) -> None:
        """Wait for every submitted job; raise the first error."""
        self.jobs.put(_DONE)
        self.thread.join()
        if self.error is not None:
            raise self.error


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
    loaded: Any, batch: Any, items: np.ndarray, types: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` model columns per user (purchased items left out); empty lists if the model fails."""
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
    except Exception as exc:  # a broken model must not stop the refresh: log once, store empty lists
        model._log_once(
            f"recommend:{loaded.version_id}",
            "Model version %s failed to score: %s",
            loaded.version_number,
            exc,
        )
        return np.zeros((rows, 0), dtype=np.int64), np.zeros((rows, 0))


def anchor_slots(
    vectors: np.ndarray | None, history_columns: np.ndarray, recommended_columns: np.ndarray
) -> np.ndarray:
    """For each recommended column, the recent history slot whose item is most like it.

    Parameters
    ----------
    vectors : ndarray of shape (n_items, dim), float32, rows L2-normalised; None when unavailable
    history_columns : ndarray of shape (users, slots), int64
        Model column of each user's recent distinct items, newest first; -1 for an item the model
        does not know, -2 past the user's last slot.
    recommended_columns : ndarray of shape (users, k), int64

    Returns
    -------
    ndarray of shape (users, k), int64
        The most similar known slot (the first of equal similarities); slot 0 (the newest recent
        item) for every item without vectors, or for a user none of whose recent items is known.
    """
    users, k = recommended_columns.shape
    if vectors is None or not k or not users:
        return np.zeros((users, k), dtype=np.int64)
    known = history_columns >= 0
    safe = torch.from_numpy(np.where(known, history_columns, 0))
    table = torch.from_numpy(vectors)
    with torch.inference_mode():
        # (users, k, slots): the slot axis last and contiguous for the argmax
        sims = torch.bmm(table[torch.from_numpy(recommended_columns)], table[safe].transpose(1, 2))
        sims.masked_fill_(torch.from_numpy(~known)[:, None, :], float("-inf"))
        best = sims.argmax(dim=2).numpy()
    # a user without a known recent item: the newest recent item explains everything
    return np.where(known.any(axis=1)[:, None], best, 0)


class _Explainer:
    """Explanations of a refresh's batches; item names and reason texts are looked up once per refresh."""

    def __init__(self, loaded: Any) -> None:
        index = model._embedding_index(loaded)
        # the explanation vectors must follow the model's columns (they do: both come from item_ids_)
        usable = index is not None and len(index[0]) == len(loaded.recommender.item_ids_)
        self.vectors = index[1] if usable else None
        self.names: dict[str, str] = {}
        self.texts: dict[tuple[str, str], str] = {}

    def reasons(self, batch: Any, items: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """One reason per recommended cell from its anchor (``explain.from_anchor``), else trending.

        ``items`` are the events' model columns + 1 (0 = unknown item), ``columns`` the lists.
        An item that is itself among the user's recent items is its own anchor ("you viewed
        this before"), as in ``model.anchors``.
        """
        rows, k = columns.shape
        out = np.full((rows, k), explain.TRENDING, dtype=object)
        if not k or not len(batch.owners):
            return out
        # one code per distinct key: the model index, or a negative code per key the model lacks
        key_codes = items.copy()
        unknown = np.flatnonzero(items == 0)
        if len(unknown):
            codes: dict[str, int] = {}
            key_codes[unknown] = [
                -1 - codes.setdefault(key, len(codes)) for key in batch.items[unknown].tolist()
            ]
        positions, counts = recent_distinct(batch.owners, key_codes, rows, ANCHOR_EVENTS)
        filled = positions >= 0
        slot_columns = np.where(filled, items[np.where(filled, positions, 0)] - 1, -2)
        slots = anchor_slots(self.vectors, slot_columns, columns)
        # (rows, k, slots): the recommended item is the item of that recent slot
        own_slot = (slot_columns[:, None, :] == columns[:, :, None]) & (slot_columns >= 0)[:, None, :]
        own = own_slot.any(axis=2)
        slots = np.where(own, own_slot.argmax(axis=2), slots)
        active = filled & (counts > 0)[:, None]
        texts = {}
        for is_own in (False, True):
            # only the slots some item points at need a text (and, for "because", their item a name)
            # (one spare column takes the cells of the other kind)
            pointed = np.zeros((rows, positions.shape[1] + 1), dtype=bool)
            np.put_along_axis(pointed, np.where(own == is_own, slots, positions.shape[1]), True, axis=1)
            used = pointed[:, :-1] & active
            events = positions[used]
            keys, types = batch.items[events].tolist(), batch.event_types[events].tolist()
            if not is_own:
                wanted = set(keys) - self.names.keys()
                if wanted:
                    found = item_names(wanted)
                    self.names.update({key: found.get(key, key) for key in wanted})
            slot_texts = np.full(positions.shape, explain.TRENDING, dtype=object)
            slot_texts[used] = [
                explain.again(event_type) if is_own else self._text(key, event_type)
                for key, event_type in zip(keys, types, strict=True)
            ]
            texts[is_own] = np.take_along_axis(slot_texts, slots, axis=1)
        chosen = np.where(own, texts[True], texts[False])
        return np.where((counts > 0)[:, None], chosen, out)

    def _text(self, key: str, event_type: str) -> str:
        text = self.texts.get((key, event_type))
        if text is None:
            text = self.texts[key, event_type] = explain.because(event_type, self.names[key])
        return text


def round_scores(values: np.ndarray, digits: int = 6) -> list[float]:
    """``[round(v, digits) for v in values]``, the same floats, computed on the whole array.

    ``rint(v * 10**digits) / 10**digits`` is the double nearest the rounded decimal, as ``round``
    returns, whenever the integer is right; it can only be wrong where ``v * 10**digits`` lies
    within its float error (far below 1e-6 for these magnitudes) of a half, and those few values
    go through ``round`` itself.
    """
    values = np.asarray(values, dtype=np.float64)
    scale = 10.0**digits
    if not len(values) or not np.isfinite(values).all() or np.abs(values).max() >= 1e6:
        return [round(v, digits) for v in values.tolist()]
    scaled = values * scale
    out = (np.rint(scaled) / scale).tolist()
    for i in np.flatnonzero(np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) < 1e-6).tolist():
        out[i] = round(float(values[i]), digits)
    return out


class _Encoder:
    """The batch's lists as Python lists (for the cache) and JSON texts (for the table).

    JSON of an item key or a reason is encoded once per refresh (a list is the encoded elements
    joined as ``json.dumps`` joins them); a score is ``round(s, 6)`` as before (:func:`round_scores`),
    whose JSON is its ``repr``, exactly as ``json.dumps`` writes a float.
    """

    def __init__(self, item_ids: list[str]) -> None:
        self.keys = np.empty(len(item_ids), dtype=object)
        self.keys[:] = item_ids
        self.key_json = np.empty(len(item_ids), dtype=object)
        self.key_json[:] = [json.dumps(key) for key in item_ids]
        self.reason_json: dict[str, str] = {}

    def lists(self, ranked: tuple[np.ndarray, np.ndarray], reasons: np.ndarray) -> list[tuple]:
        """One ``(keys, scores, reasons, (keys JSON, scores JSON, reasons JSON))`` per row."""
        columns, values = ranked
        finite = np.isfinite(values)
        keys, key_json = self.keys[columns[finite]].tolist(), self.key_json[columns[finite]].tolist()
        scores = round_scores(values[finite])
        why = reasons[finite].tolist()
        encoded = self.reason_json
        why_json = [encoded.get(text) or encoded.setdefault(text, json.dumps(text)) for text in why]
        out = []
        end = 0
        for count in finite.sum(axis=1).tolist():
            start, end = end, end + count
            row_scores = scores[start:end]
            out.append(
                (
                    keys[start:end],
                    row_scores,
                    why[start:end],
                    (
                        f"[{', '.join(key_json[start:end])}]",
                        f"[{', '.join(map(repr, row_scores))}]",
                        f"[{', '.join(why_json[start:end])}]",
                    ),
                )
            )
        return out


def _store(
    loaded: Any, batch: Any, ranked: tuple[np.ndarray, np.ndarray], reasons: np.ndarray, encoder: _Encoder
) -> None:
    """Replace the batch's lists in the table (one COPY on PostgreSQL) and the cache (one pipeline)."""
    from recommendations.models import PrecomputedList

    now = timezone.now()  # a freshness marker (computed_at), on the wall clock
    version = loaded.version_number
    lists = encoder.lists(ranked, reasons)
    with transaction.atomic():
        any_of(PrecomputedList.objects.all(), "user", batch.user_ids).delete()
        if connection.vendor == "postgresql":
            _copy_rows(PrecomputedList, batch.user_ids, [row[3] for row in lists], version, now)
        else:
            PrecomputedList.objects.bulk_create(
                PrecomputedList(
                    user_id=pk,
                    item_keys=keys,
                    scores=scores,
                    reasons=why,
                    model_version=version,
                    computed_at=now,
                )
                for pk, (keys, scores, why, _) in zip(batch.user_ids, lists, strict=True)
            )
    stamp = now.timestamp()
    cache.set_many(
        {
            precomputed_cache_key(pk): {
                "keys": keys,
                "scores": scores,
                "reasons": why,
                "version": version,
                "computed_at": stamp,
            }
            for pk, (keys, scores, why, _) in zip(batch.user_ids, lists, strict=True)
        },
        recommender_settings.CACHE_TIMEOUT,
    )


def _copy_rows(table_model: Any, user_ids: list, texts: list, version: int, now: Any) -> None:
    """``COPY ... FROM STDIN`` of the lists (their JSON texts): no per-row INSERT or JSON adaptation."""
    meta = table_model._meta
    columns = [
        meta.get_field(name).column
        for name in ("user", "item_keys", "scores", "reasons", "model_version", "computed_at")
    ]
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {connection.ops.quote_name(meta.db_table)} ({quoted}) FROM STDIN") as copy,
    ):
        for pk, (keys, scores, why) in zip(user_ids, texts, strict=True):
            copy.write_row((pk, keys, scores, why, version, now))
