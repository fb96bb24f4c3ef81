"""Storing prepared event rows: the row layout, the insert path of each database, the commit signal.

Storage strategy (chosen per batch):

- Postgres, large batches (``COPY_INSERT_THRESHOLD``): ``COPY`` into a per-connection
  temporary table, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``.
- Postgres, medium batches (``BULK_INSERT_THRESHOLD``): one ``INSERT ... SELECT FROM
  json_array_elements(%s) ON CONFLICT DO NOTHING`` statement with the batch as one JSON
  parameter, a single round trip and no transaction of its own.
- SQLite, medium and large batches: ``INSERT OR IGNORE`` through ``executemany``.
- Everything else (small batches, callers that need model instances, other databases):
  the ORM's ``bulk_create`` after one query for already-stored event ids (skipped when
  every id was generated here; one such event is a single ``INSERT``).

The bulk paths count duplicates exactly from the database's row count; the ORM path
counts them from the pre-check (a concurrent writer of the same id is still only stored
once: the unique index decides, and the loser is counted as a duplicate).

On PostgreSQL the events table is partitioned by ``occurred_at`` and its unique key is
``(event_id, occurred_at)``; ids that clients chose are also claimed in the window of recent
ids, in the same statement as the insert (``remember_ids``, :mod:`behavior.services.event_ids`).
Rows whose time no partition holds go to the DEFAULT partition, with a warning and a metric
(:func:`behavior.services.partitions.note_uncovered`).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, models, transaction

from behavior.conf import behavior_settings
from behavior.models import Event
from behavior.services import event_ids, partitions

logger = logging.getLogger(__name__)

# Column order of a prepared row (attribute names of Event's concrete fields).
COLUMNS: tuple[str, ...] = (
    "event_id",
    "user_id",
    "visitor_id",
    "session_id",
    "item_id",
    "event_type",
    "value",
    "quantity",
    "occurred_at",
    "received_at",
    "recommendation_id",
    "placement",
    "position",
    "context",
    "is_bot",
    "origin",
)
CONTEXT_INDEX = COLUMNS.index("context")
OCCURRED_AT_INDEX = COLUMNS.index("occurred_at")
_STAGE_TABLE = "behavior_event_stage"


def store_rows(
    rows: list[tuple],
    *,
    return_events: bool = False,
    durable: bool = True,
    fresh_ids: bool = False,
    remember_ids: bool = False,
) -> tuple[int, list[Event]]:
    """Insert prepared rows (``COLUMNS`` order), skipping stored event ids; return (inserted, events).

    ``durable=False`` (bulk imports only, never the API) lets a large Postgres load commit
    with ``synchronous_commit = off``: the commit does not wait for the WAL flush, so a
    Postgres crash can lose the last fraction of a second of the import, which simply
    re-running the idempotent import restores. An acknowledged API event is never written
    this way. ``fresh_ids``: every event id was just generated here (uuid4), so the ORM
    path skips looking for stored ones. ``remember_ids``: the ids came from a client (the API),
    so on PostgreSQL they are claimed in the window of recent ids (:mod:`event_ids`).
    """
    vendor = connection.vendor
    events: list[Event] = []
    claim = remember_ids and not fresh_ids and event_ids.in_use()
    if not return_events and len(rows) >= behavior_settings.BULK_INSERT_THRESHOLD and vendor == "postgresql":
        if len(rows) >= behavior_settings.COPY_INSERT_THRESHOLD:
            inserted = _insert_postgres_copy(rows, durable=durable, claim=claim)
        else:
            inserted = _insert_postgres_json(rows, claim=claim)
    elif not return_events and len(rows) >= behavior_settings.BULK_INSERT_THRESHOLD and vendor == "sqlite":
        inserted = _insert_sqlite(rows)
    else:
        events = _insert_orm(rows, fresh_ids=fresh_ids, claim=claim)
        inserted = len(events)
    if inserted:
        if vendor == "postgresql":
            partitions.note_uncovered(partitions.EVENTS, (row[OCCURRED_AT_INDEX] for row in rows))
        announce(_latest_by_user(rows))
    return inserted, events if return_events else []


def _latest_by_user(rows: list[tuple]) -> dict[Any, datetime]:
    """Newest ``occurred_at`` per user over rows that recommendations read (no bots, an item)."""
    latest: dict[Any, datetime] = {}
    for row in rows:
        user, item, moment = row[1], row[4], row[8]
        if user is None or item is None or row[14]:
            continue
        if user not in latest or moment > latest[user]:
            latest[user] = moment
    return latest


def announce(latest_by_user: dict[Any, datetime]) -> None:
    """Send ``events_stored`` once the storing transaction commits (at once in autocommit)."""
    if not latest_by_user:
        return
    from behavior.signals import events_stored  # signals imports this module

    def send() -> None:
        for receiver, response in events_stored.send_robust(sender=Event, latest_by_user=latest_by_user):
            if isinstance(response, Exception):
                logger.error("events_stored receiver %r failed: %s", receiver, response)

    transaction.on_commit(send)


def concrete_fields() -> list[models.Field]:
    """The event model's fields in ``COLUMNS`` order."""
    by_attname = {f.attname: f for f in Event._meta.concrete_fields}
    return [by_attname[name] for name in COLUMNS]


def column_list() -> str:
    """The event columns in ``COLUMNS`` order, quoted, for SQL."""
    quote = connection.ops.quote_name
    return ", ".join(quote(str(f.column)) for f in concrete_fields())


def context_json(context: dict[str, Any] | None) -> str:
    """A row's context as the compact JSON text the raw SQL and COPY paths store (``{}`` when empty)."""
    return json.dumps(context, separators=(",", ":")) if context else "{}"


def _json_rows(rows: list[tuple]) -> list[tuple]:
    """Rows with the context serialized to JSON text (for raw SQL paths)."""
    i = CONTEXT_INDEX
    return [(*row[:i], context_json(row[i]), *row[i + 1 :]) for row in rows]


def _insert_postgres_copy(rows: list[tuple], *, durable: bool = True, claim: bool = False) -> int:
    """COPY into a temporary staging table, then INSERT ... ON CONFLICT DO NOTHING (claiming ids)."""
    table = connection.ops.quote_name(Event._meta.db_table)
    columns = column_list()
    with transaction.atomic(), connection.cursor() as cursor:
        if not durable:  # SET LOCAL: ends with this transaction, see store_rows
            cursor.execute("SET LOCAL synchronous_commit = off")
        # One staging table per connection, emptied at every commit: no catalogue churn.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_TABLE} ON COMMIT DELETE ROWS AS "
            f"SELECT {columns} FROM {table} WITH NO DATA"
        )
        with (
            connection.wrap_database_errors,
            cursor.cursor.copy(  # psycopg's errors as Django's
                f"COPY {_STAGE_TABLE} ({columns}) FROM STDIN"
            ) as copy,
        ):
            for row in _json_rows(rows):
                copy.write_row(row)
        source = f"SELECT {columns} FROM {_STAGE_TABLE}"
        if claim:
            cursor.execute(event_ids.claimed_insert_sql(source, columns))
        else:
            cursor.execute(f"INSERT INTO {table} ({columns}) {source} ON CONFLICT DO NOTHING")
        inserted = cursor.rowcount
        cursor.execute(f"TRUNCATE {_STAGE_TABLE}")
    return inserted


def _insert_postgres_json(rows: list[tuple], *, claim: bool = False) -> int:
    """One ``INSERT ... SELECT FROM json_array_elements($1) ON CONFLICT DO NOTHING`` statement.

    The whole batch travels as ONE text parameter: :func:`_encode_rows` writes it with the C
    JSON encoder and Postgres casts each array element to its column type. Adapting
    fifteen typed arrays value by value (the former ``unnest`` path) cost more CPU in the
    web worker than everything else of a request. The parameter is bound server-side (a
    plain psycopg cursor on Django's connection, so it joins any open transaction): quoting
    a 15 KB literal into the SQL text costs more than the insert. A single statement is
    atomic on its own, so no BEGIN/COMMIT round trips. ``rowcount`` is the number of rows
    stored, so duplicates are counted exactly. ``claim``: the ids are claimed in the same
    statement (:func:`behavior.services.event_ids.claimed_insert_sql`).
    """
    import psycopg  # only on this Postgres-only path

    payload = _encode_rows(rows)
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_json_insert_sql(claim=claim), [payload])
        return cursor.rowcount


_JSON_INSERT_SQL: dict[tuple[str, bool], str] = {}
_I_EVENT_ID, _I_VALUE, _I_OCCURRED, _I_RECEIVED, _I_RECOMMENDATION = (
    COLUMNS.index(name) for name in ("event_id", "value", "occurred_at", "received_at", "recommendation_id")
)


def _json_insert_sql(*, claim: bool = False) -> str:
    """The INSERT of :func:`_insert_postgres_json` (built once from the model: swappable FKs differ)."""
    sql = _JSON_INSERT_SQL.get((connection.alias, claim))
    if sql is None:
        table = connection.ops.quote_name(Event._meta.db_table)
        values = []
        for i, f in enumerate(concrete_fields()):
            value = (
                f"(r->{i})::jsonb"
                if isinstance(f, models.JSONField)
                else f"(r->>{i})::{f.cast_db_type(connection)}"
            )
            values.append(f"{value} AS {connection.ops.quote_name(str(f.column))}")
        source = f"SELECT {', '.join(values)} FROM json_array_elements(%s::json) AS r"
        if claim:
            sql = event_ids.claimed_insert_sql(source, column_list())
        else:
            sql = f"INSERT INTO {table} ({column_list()}) {source} ON CONFLICT DO NOTHING"
        _JSON_INSERT_SQL[(connection.alias, claim)] = sql
    return sql


def _encode_rows(rows: list[tuple]) -> str:
    """Rows as one compact JSON array of arrays (UUIDs, Decimals and times as text).

    Explicit conversions of the known columns instead of ``default=str`` for every value:
    a batch shares one or two timestamps, formatted once. ``default=str`` remains for
    unusual primary keys (a UUID user or item pk).
    """
    stamps: dict[datetime, str] = {}

    def stamp(moment: datetime | None) -> str | None:
        if moment is None:
            return None
        text = stamps.get(moment)
        if text is None:
            text = stamps[moment] = moment.isoformat()
        return text

    out = []
    for stored in rows:
        row = list(stored)
        row[_I_EVENT_ID] = str(row[_I_EVENT_ID])
        if row[_I_VALUE] is not None:
            row[_I_VALUE] = str(row[_I_VALUE])
        row[_I_OCCURRED] = stamp(row[_I_OCCURRED])
        row[_I_RECEIVED] = stamp(row[_I_RECEIVED])
        if row[_I_RECOMMENDATION] is not None:
            row[_I_RECOMMENDATION] = str(row[_I_RECOMMENDATION])
        out.append(row)
    return json.dumps(out, separators=(",", ":"), default=str)


def _insert_sqlite(rows: list[tuple]) -> int:
    """INSERT OR IGNORE through executemany; rowcount sums the stored rows."""
    table = connection.ops.quote_name(Event._meta.db_table)
    fields = concrete_fields()
    placeholders = ", ".join(["%s"] * len(fields))
    params = [
        [f.get_db_prep_save(value, connection) for f, value in zip(fields, row, strict=True)] for row in rows
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(f"INSERT OR IGNORE INTO {table} ({column_list()}) VALUES ({placeholders})", params)
        return cursor.rowcount


def _insert_orm(rows: list[tuple], *, fresh_ids: bool = False, claim: bool = False) -> list[Event]:
    """bulk_create the rows whose event id is not stored yet; return the stored instances.

    One event with a server-generated id (the tracking helper on every page view) is a
    single ``INSERT`` (``save(force_insert=True)``): no look-up of stored ids, and outside
    a transaction no BEGIN/COMMIT pair around it, which a page view would wait for.
    ``claim``: the ids are claimed instead of looked up, in the transaction of the insert.
    """
    if fresh_ids and len(rows) == 1:
        obj = Event(**dict(zip(COLUMNS, rows[0], strict=True)))
        obj.save(force_insert=True)
        return [obj]
    if claim:
        with transaction.atomic():
            claimed = event_ids.claim(rows)
            return _create(
                [Event(**dict(zip(COLUMNS, row, strict=True))) for row in rows if row[0] in claimed]
            )
    if fresh_ids:
        existing: set = set()
    else:
        ids = [row[0] for row in rows]
        existing = set(Event.objects.filter(event_id__in=ids).values_list("event_id", flat=True))
    return _create([Event(**dict(zip(COLUMNS, row, strict=True))) for row in rows if row[0] not in existing])


def _create(objs: list[Event]) -> list[Event]:
    """bulk_create; on a unique violation (a concurrent writer) one by one, skipping the stored ones."""
    if not objs:
        return []
    try:
        with transaction.atomic():
            Event.objects.bulk_create(objs)
        return objs
    except IntegrityError:
        # A concurrent writer stored one of these ids in the meantime: insert one by one.
        stored = []
        for obj in objs:
            obj.pk = None
            try:
                with transaction.atomic():
                    obj.save(force_insert=True)
                stored.append(obj)
            except IntegrityError:
                continue
        return stored
