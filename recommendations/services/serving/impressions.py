"""Impressions: one row per served list, written in bulk, never on the request's critical path.

With a Redis cache, a served list is queued in one Redis list shared by every web worker
(``RPUSH``: one round trip, no transaction) and the queue is written in one multi-row INSERT
when it holds ``IMPRESSION_BATCH_SIZE`` rows, when a worker has not written it for
``IMPRESSION_FLUSH_SECONDS``, and by ``refresh_recommendations``. Other cache backends are
per process, so a buffer there would be lost with the process: the lists served during a
request are written in one INSERT when the request finishes (``request_finished``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import threading
import time
import uuid
from datetime import datetime
from typing import Any

from django.core.signals import request_finished, setting_changed
from django.db import IntegrityError, transaction
from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.runtime.locks import erasure_barrier

logger = logging.getLogger(__name__)

QUEUE_KEY = "rec:impressions"
_buffer: list[dict] = []
_lock = threading.Lock()
_last_flush = time.monotonic()


def redis_client() -> Any:
    """The raw Redis client behind the default cache, or None for other backends.

    Kept on the (per-thread) backend instance: building a client per call cost more than
    the round trip it was used for.
    """
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    default = caches["default"]  # the backend itself: ``cache`` is a proxy
    client = getattr(default, "_recommendations_client", None)
    if client is not None or not isinstance(default, RedisCache):
        return client
    try:
        client = default._cache.get_client(None, write=True)
    except Exception:  # pragma: no cover - a broken Redis falls back to the process buffer
        return None
    default._recommendations_client = client  # type: ignore[attr-defined]  # kept on the backend object
    return client


@functools.cache
def _key_maker() -> Any:
    """The default cache's bound ``make_key``, read once per process (forgotten when settings change)."""
    from django.core.cache import caches

    return caches["default"].make_key


def cache_key(key: str) -> str:
    """``cache.make_key(key)`` of the default cache, without the proxy's per-call lookup.

    ``django.core.cache.cache`` finds the thread's backend on every attribute read (an
    ``asgiref`` local: about 5 µs, and a fast-path request makes eight keys). A key depends
    only on the cache's settings (prefix, version, key function), the same for every thread's
    backend, so one backend's bound ``make_key`` serves them all until the settings change.
    """
    return _key_maker()(key)


def _forget_key_maker(**_: Any) -> None:
    _key_maker.cache_clear()


setting_changed.connect(_forget_key_maker, dispatch_uid="recommendations.impressions.key_maker")


def redis_loads(raw: bytes) -> Any:
    """A value as the default (Redis) cache would return it from its stored bytes."""
    from django.core.cache import caches

    return caches["default"]._cache._serializer.loads(raw)  # type: ignore[attr-defined]  # RedisCache internals


def queue_key() -> str:
    """The Redis key of the shared impression queue (with the cache's prefix)."""
    return cache_key(QUEUE_KEY)


def record_impression(
    result: Any, *, user_id: Any = None, visitor_id: str = "", deferred: bool, closing: Any = None
) -> None:
    """Queue one impression for a served list; ``deferred`` waits for the end of the request.

    ``closing``: the request's ``state.ClosingWrites``, whose pipeline queues the row instead.
    """
    if not result.items:
        return
    row = {
        "recommendation_id": str(result.recommendation_id),
        "user_id": user_id,
        "visitor_id": visitor_id[:64],
        **list_fields(result),
        "created_at": timezone.now().isoformat(),
    }
    if closing is not None:
        closing.impressions.append(row)
        return
    push(row, deferred=deferred)


def list_fields(result: Any) -> dict:
    """The fields of an impression row that describe the list itself (not who saw it, or when)."""
    return {
        "placement": result.placement[:64],
        "model_version": result.model_version,
        "item_keys": [entry.key for entry in result.items],
        "source": result.source,
        # the list's experiment, arm and assignment (None outside experiments)
        "experiment_id": result.experiment_id,
        "arm_id": result.arm_id,
        "assignment_id": result.assignment_id,
        # the merchandising rules that applied (None when none did: most lists)
        "merchandising_rule_ids": list(result.merchandising_rule_ids) or None,
        # each position's probability under exploration (None: the list was not explorable)
        "propensities": result.propensities,
    }


def push(row: dict, *, deferred: bool, client: Any = None) -> None:
    """Queue one impression row (Redis, else this process); write the queue when it is full."""
    client = client or redis_client()
    queued = 0
    if client is not None:
        try:
            queued = int(client.rpush(queue_key(), json.dumps(row)))
        except Exception:
            logger.warning("Impression queue unavailable, buffering in process", exc_info=True)
            client = None
    if client is None:
        _buffer_rows([row])
    if not deferred:
        flush()
    elif client is not None:
        rows_queued(queued)


def queue_rows(pipe: Any, rows: list[dict]) -> None:
    """Queue impression rows on a Redis pipeline (one RPUSH); see :func:`rows_queued`."""
    pipe.rpush(queue_key(), *(json.dumps(row) for row in rows))


def rows_queued(queued: Any) -> None:
    """After an RPUSH to the shared queue (``queued``: its reply, the queue's length): write a full queue."""
    if int(queued) >= recommender_settings.IMPRESSION_BATCH_SIZE:
        flush()


def keep_in_process(rows: list[dict]) -> None:
    """Rows Redis did not take: this process's buffer keeps them (as :func:`push` does)."""
    logger.warning("Impression queue unavailable, buffering %d rows in process", len(rows))
    _buffer_rows(rows)


def _buffer_rows(rows: list[dict]) -> int:
    """Append rows to this process's buffer; returns its length."""
    with _lock:
        _buffer.extend(rows)
        return len(_buffer)


def _take_queued() -> list[str]:
    """Every queued row as JSON text (Redis list drained atomically, then this process's buffer)."""
    rows: list[str] = []
    client = redis_client()
    if client is not None:
        try:
            pipe = client.pipeline(transaction=True)
            pipe.lrange(queue_key(), 0, -1)
            pipe.delete(queue_key())
            raw, _ = pipe.execute()
            rows.extend(item.decode() for item in raw)
        except Exception:
            logger.warning("Could not read the impression queue", exc_info=True)
    with _lock:
        rows.extend(json.dumps(row) for row in _buffer)
        _buffer.clear()
    return rows


def _model(row: dict) -> Any:
    from recommendations.models import Impression

    return Impression(
        recommendation_id=uuid.UUID(row["recommendation_id"]),
        user_id=row["user_id"],
        visitor_id=row["visitor_id"],
        placement=row["placement"],
        model_version=row["model_version"],
        item_keys=row["item_keys"],
        source=row["source"],
        created_at=datetime.fromisoformat(row["created_at"]),
        # rows queued before experiments existed have none of these
        experiment_id=row.get("experiment_id"),
        arm_id=row.get("arm_id"),
        assignment_id=row.get("assignment_id"),
        merchandising_rule_ids=row.get("merchandising_rule_ids"),
        propensities=row.get("propensities"),
    )


def _without_erased(rows: list[dict]) -> list[dict]:
    """``rows`` less those of erased shoppers (asks the database: never a cached "none erased").

    The same rule as erasure's: a user's rows by user id, an anonymous row by its visitor id.
    """
    from recommendations.models.privacy import ErasedSubject, subject_hash

    def subject(row: dict) -> str | None:
        if row.get("user_id") is not None:
            return subject_hash("user", row["user_id"])
        return subject_hash("visitor", row["visitor_id"]) if row.get("visitor_id") else None

    hashes = {row_hash for row in rows if (row_hash := subject(row)) is not None}
    if not hashes:
        return rows
    erased = set(ErasedSubject.objects.filter(subject_hash__in=hashes).values_list("subject_hash", flat=True))
    if not erased:
        return rows
    kept = [row for row in rows if subject(row) not in erased]
    logger.info("%d queued impressions of erased shoppers dropped", len(rows) - len(kept))
    return kept


def forget(user_id: Any, visitor_ids: list[str]) -> int:
    """Take a person's rows out of the shared queue and this process's buffer; returns how many.

    Rows another process took or buffers meanwhile are dropped when written (``flush`` checks
    the tombstones, which erasure commits first).
    """

    def theirs(row: dict) -> bool:
        if row.get("user_id") is not None:
            return user_id is not None and str(row["user_id"]) == str(user_id)
        return bool(row.get("visitor_id")) and row["visitor_id"] in visitor_ids

    removed = 0
    client = redis_client()
    if client is not None:
        key = queue_key()
        for raw in client.lrange(key, 0, -1):
            if theirs(json.loads(raw)):
                removed += int(client.lrem(key, 0, raw))  # exact bytes: other rows untouched
    with _lock:
        kept = [row for row in _buffer if not theirs(row)]
        removed += len(_buffer) - len(kept)
        _buffer[:] = kept
    return removed


def _insert_json(rows: list[str]) -> int:
    """Postgres: the queued JSON rows in ONE statement, decoded by the database, not the ORM.

    ``json_populate_recordset`` maps each object's keys onto the table's columns (the id
    keeps its default); building 200 model instances cost more than the INSERT itself. The
    statement names the partition each row went to: rows in the DEFAULT partition (no
    partition for their time) are reported (``behavior.services.partitions``), in the same
    round trip.
    """
    from django.db import connection

    from behavior.services.partitions import report_default_rows
    from recommendations.models import Impression
    from recommendations.services.partitioned import IMPRESSIONS

    table = connection.ops.quote_name(Impression._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(field.column or field.attname)
        for field in Impression._meta.concrete_fields
        if not field.primary_key
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} "
            f"FROM json_populate_recordset(NULL::{table}, %s::json) RETURNING tableoid::regclass::text",
            ["[" + ",".join(rows) + "]"],
        )
        written = cursor.fetchall()
    in_default = sum(1 for (name,) in written if name == IMPRESSIONS.default)
    if in_default:
        moments = [datetime.fromisoformat(json.loads(row)["created_at"]) for row in rows]
        report_default_rows(IMPRESSIONS, in_default, moments)
    return len(written)


def flush(*, force: bool = True) -> int:
    """Write queued impressions in one bulk INSERT; returns rows written.

    Without ``force`` only this process's buffer is written, plus the shared queue when this
    process has not written it for ``IMPRESSION_FLUSH_SECONDS`` (a full queue is written by
    ``record_impression``): the end of a request on the Redis path costs no round trip.
    """
    global _last_flush
    recently = time.monotonic() - _last_flush < recommender_settings.IMPRESSION_FLUSH_SECONDS
    if not force and not _buffer and recently:
        return 0
    _last_flush = time.monotonic()
    return write_taken(_take_queued())


def write_taken(queued: list[str]) -> int:
    """Write rows taken from the queue (JSON texts); those of shoppers erased meanwhile are dropped.

    The tombstone check and the INSERT run in one transaction under the erasure barrier
    (``runtime.locks.erasure_barrier``): a row queued before an erasure is never written
    after it. On Postgres that costs a lock and a tombstone query per write (the Redis queue
    writes ``IMPRESSION_BATCH_SIZE`` rows at a time).
    """
    if not queued:
        return 0
    rows = [json.loads(row) for row in queued]
    try:
        try:
            with transaction.atomic():
                kept = _kept(rows)
                return _insert(kept) if kept else 0
        except IntegrityError:  # e.g. a user deleted meanwhile: keep the others, drop the broken ones
            with transaction.atomic():
                return _insert_one_by_one(_kept(rows))
    except Exception:  # impressions are best effort: never fail a page for them
        logger.exception("Could not write %d impressions", len(queued))
        return 0


def _kept(rows: list[dict]) -> list[dict]:
    """Inside the writing transaction: the barrier, then the rows of shoppers not erased."""
    erasure_barrier(exclusive=False)
    return _without_erased(rows)


def _insert(rows: list[dict]) -> int:
    """One multi-row INSERT (Postgres: decoded by the database), atomic on its own."""
    from django.db import connection

    from recommendations.models import Impression

    if connection.vendor == "postgresql":
        return _insert_json([json.dumps(row) for row in rows])
    Impression.objects.bulk_create([_model(row) for row in rows])
    return len(rows)


def _insert_one_by_one(rows: list[dict]) -> int:
    written = 0
    for row in rows:
        try:
            with transaction.atomic():
                _model(row).save(force_insert=True)
            written += 1
        except IntegrityError:
            logger.info("Impression %s dropped (integrity error)", row["recommendation_id"])
    return written


def _on_request_finished(**_: Any) -> None:
    flush(force=False)


def pending() -> int:
    """Rows queued and not written yet (the shared Redis queue plus this process's buffer)."""
    queued = len(_buffer)
    client = redis_client()
    if client is not None:
        with contextlib.suppress(Exception):
            queued += int(client.llen(queue_key()))
    return queued


request_finished.connect(_on_request_finished, dispatch_uid="recommendations.impressions")
atexit.register(lambda: flush(force=False) if _buffer else None)
