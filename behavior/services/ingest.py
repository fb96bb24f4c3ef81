"""The one write path of the event log: validate, de-duplicate, flag bots, insert in bulk.

Everything that stores events goes through :func:`ingest_events`: the ``POST /api/events/``
endpoint, the ``import_events`` command and :func:`behavior.tracking.record_event`.

Storage strategy (chosen per batch):

- Postgres, large batches (``COPY_INSERT_THRESHOLD``): ``COPY`` into a per-connection
  temporary table, then one ``INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING``.
- Postgres, medium batches (``BULK_INSERT_THRESHOLD``): one ``INSERT ... SELECT FROM
  json_array_elements(%s) ON CONFLICT DO NOTHING`` statement with the batch as one JSON
  parameter, a single round trip and no transaction of its own.
- SQLite, medium and large batches: ``INSERT OR IGNORE`` through ``executemany``.
- Everything else (small batches, callers that need model instances, other databases):
  the ORM's ``bulk_create`` after one query for already-stored event ids (skipped when
  every id was generated here; one such event is a single ``INSERT``).

The bulk paths count duplicates exactly from the database's row count; the ORM path
counts them from the pre-check (a concurrent writer of the same id is still only stored
once: the unique index on ``event_id`` decides, and the loser is counted as a duplicate).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from behavior import metrics
from behavior.conf import behavior_settings
from behavior.items import get_item_model, item_ids_by_key
from behavior.models import Event
from behavior.services import validation as v

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
_CONTEXT_INDEX = COLUMNS.index("context")
_STAGE_TABLE = "behavior_event_stage"

# Privacy hook (added by the operations engineer): callables ``(rows) -> rows`` run on every
# batch before it is stored; ``recommendations.models.privacy`` registers one that drops rows
# of shoppers erased by ``forget_user`` (behavior imports nothing from recommendations).
ROW_FILTERS: list = []


@dataclass
class IngestResult:
    """Outcome of one batch: new rows, re-sent rows and per-event errors."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # The stored Event instances, only filled when ``return_events=True`` was asked for.
    events: list[Event] = field(default_factory=list, repr=False)


class IngestOptions(TypedDict, total=False):
    """Keyword options of :func:`ingest_events`, passed on to :func:`prepare_rows`."""

    user: Any
    visitor_id: str
    session_id: str
    user_agent: str
    now: datetime | None
    is_bot: bool | None
    default_visitor_id: str
    trusted: bool
    historical: bool
    allow_visitor_id: bool
    origin: str


def is_bot_user_agent(user_agent: str) -> bool:
    """True when the User-Agent contains one of ``BOT_USER_AGENT_PATTERNS``.

    An empty agent is *not* a bot here: server-side callers (imports, jobs) have none.
    The API applies the tracking adapter's stricter policy (empty agent = bot).
    """
    agent = (user_agent or "").lower()
    return bool(agent) and any(p in agent for p in behavior_settings.BOT_USER_AGENT_PATTERNS)


def ingest_events(
    raw_events: Sequence[Any], *, return_events: bool = False, **options: Unpack[IngestOptions]
) -> IngestResult:
    """Validate and store a batch of raw events; valid events are stored even if others fail.

    Identity: ``user`` (from authentication) wins; ``visitor_id`` (the first-party cookie)
    overrides any ``visitor_id`` in the events; an event's own ``visitor_id`` is used only
    when the caller has none, then ``default_visitor_id``. An anonymous event with no
    visitor id at all is rejected (nobody could ever be recommended from it). Callers that
    must not let a client name a visitor reject the key first (the events API does).

    ``trusted`` callers (server code: the import command, the tracking helper) may pass
    ``user_id`` (a user pk) inside an event and an item model instance as ``item``; for
    everybody else ``user``/``user_id``/``username`` keys are rejected and the per-event
    size cap applies. ``historical`` lifts the maximum event age (imports of old logs);
    the future-time check always applies. Re-sent event ids count as ``duplicates``.
    The options (:class:`IngestOptions`) are those of :func:`prepare_rows`.
    """
    prepared = prepare_rows(raw_events, **options)
    result = IngestResult(duplicates=prepared.duplicates, rejected=prepared.rejected)
    rows = prepared.rows
    for row_filter in ROW_FILTERS:  # privacy hook, see ROW_FILTERS
        rows = row_filter(rows)
    if rows:
        inserted, events = store_rows(rows, return_events=return_events, fresh_ids=not prepared.client_ids)
        result.accepted += inserted
        result.duplicates += len(rows) - inserted
        result.events = events
    metrics.count_events(accepted=result.accepted, retried=result.duplicates, rejected=len(result.rejected))
    return result


@dataclass
class PreparedRows:
    """A validated batch, not stored yet: rows in ``COLUMNS`` order and what was refused.

    ``indexes[i]`` is the position in the batch of ``rows[i]``; ``rejected`` is sorted by
    index; ``duplicates`` counts event ids repeated inside the batch; ``client_ids`` says
    whether any event id came from the caller (then it may be stored already).
    """

    rows: list[tuple] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    client_ids: bool = False


def prepare_rows(
    raw_events: Sequence[Any],
    *,
    user: Any = None,
    visitor_id: str = "",
    session_id: str = "",
    user_agent: str = "",
    now: datetime | None = None,
    is_bot: bool | None = None,
    default_visitor_id: str = "",
    trusted: bool = False,
    historical: bool = False,
    allow_visitor_id: bool = True,
    origin: str = "",
) -> PreparedRows:
    """Validate a batch and build its rows without storing them (:func:`ingest_events` stores them).

    The other arguments mean what they mean for :func:`ingest_events`.
    ``allow_visitor_id=False`` rejects an event that names a ``visitor_id`` (a browser may
    not: its visitor is the cookie the server issued). ``origin`` marks every row
    (``behavior.models.EventOrigin``). The import command prepares a chunk's odd rows here
    and stores them with the rest of the chunk, in the chunk's one transaction.
    """
    now = now or timezone.now()
    limits = v.Limits.for_now(now, historical=historical)
    bot = is_bot_user_agent(user_agent) if is_bot is None else bool(is_bot)
    user_pk = user.pk if user is not None and getattr(user, "is_authenticated", False) else None
    prepared = PreparedRows()
    item_model = get_item_model()

    cleaned: list[tuple[int, dict[str, Any]]] = []
    wanted_keys: set[str] = set()
    for index, raw in enumerate(raw_events):
        errors, data = _clean_event(
            raw, limits=limits, trusted=trusted, item_model=item_model, allow_visitor_id=allow_visitor_id
        )
        if errors:
            prepared.rejected.append({"index": index, "errors": errors})
            continue
        if "item_key" in data:
            wanted_keys.add(data["item_key"])
        cleaned.append((index, data))

    item_pks = item_ids_by_key(wanted_keys) if wanted_keys else {}
    rows, indexes = prepared.rows, prepared.indexes
    seen: set[uuid.UUID] = set()
    for index, data in cleaned:
        errors = {}
        if "item_key" in data:
            item_pk = item_pks.get(data["item_key"])
            if item_pk is None:
                errors["item"] = [gettext("Unknown item.")]
        else:
            item_pk = data.get("item_pk")
        event_user = data.get("user_pk", user_pk)
        event_visitor = visitor_id or data.get("visitor_id") or default_visitor_id
        if event_user is None and not event_visitor:
            errors["visitor_id"] = [gettext("Required for anonymous events (no visitor cookie).")]
        if errors:
            prepared.rejected.append({"index": index, "errors": errors})
            continue
        event_id = data.get("event_id")
        if event_id is None:
            event_id = uuid.uuid4()
        else:
            prepared.client_ids = True
        if event_id in seen:  # the same event twice in one batch: a re-send, not an error
            prepared.duplicates += 1
            continue
        seen.add(event_id)
        indexes.append(index)
        rows.append(
            (
                event_id,
                event_user,
                event_visitor,
                data.get("session_id") or session_id,
                item_pk,
                data["event_type"],
                data.get("value"),
                data.get("quantity", 1),
                data.get("occurred_at", now),
                now,
                data.get("recommendation_id"),
                data.get("placement", ""),
                data.get("position"),
                data.get("context") or {},
                bot,
                origin,
            )
        )
    prepared.rejected.sort(key=lambda entry: entry["index"])
    return prepared


def _clean_event(
    raw: Any,
    *,
    limits: v.Limits,
    trusted: bool,
    item_model: type[models.Model],
    allow_visitor_id: bool = True,
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Check one raw event; return (errors by field, cleaned values).

    Only the keys present are visited (a dispatch table, no serializer): this is the
    hot loop of every ingestion path.
    """
    if not isinstance(raw, Mapping):
        return {v.NON_FIELD: [gettext("Expected an object.")]}, {}
    if not trusted and not v.event_size_at_most(raw, behavior_settings.MAX_EVENT_BYTES):
        # Depth first: measuring the size of a value nested ~1000 levels deep would recurse.
        deep = {
            v.field_name(key): [
                gettext("Nested too deeply (at most %(max)d levels).") % {"max": v.MAX_JSON_DEPTH}
            ]
            for key, value in raw.items()
            if isinstance(value, dict | list) and v.too_deep(value)
        }
        if deep:
            return deep, {}
        size = v.event_size(raw)
        if size > behavior_settings.MAX_EVENT_BYTES:
            return {
                v.NON_FIELD: [
                    gettext("Event is %(size)d bytes; at most %(max)d.")
                    % {"size": size, "max": behavior_settings.MAX_EVENT_BYTES}
                ]
            }, {}
    errors: dict[str, list[str]] = {}
    data: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "visitor_id" and not allow_visitor_id:
            errors[key] = [gettext(VISITOR_NAMED_BY_CLIENT)]
            continue
        if value is None or (value == "" and key != "event_type"):
            continue
        cleaner = _CLEANERS.get(key)
        if cleaner is not None:
            try:
                data[key] = cleaner(value, limits)
            except v.FieldError as exc:
                errors[key] = [str(exc)]
        elif key == "item":
            if trusted and isinstance(value, item_model):
                data["item_pk"] = value.pk
            else:
                try:
                    data["item_key"] = v.clean_item_key(value)
                except v.FieldError as exc:
                    errors["item"] = [str(exc)]
        elif key == "user_id" and trusted:
            data["user_pk"] = value
        elif key in v.IDENTITY_FIELDS:
            errors[str(key)] = [gettext("The user is taken from authentication; remove this field.")]
        else:
            errors[v.field_name(key)] = [gettext("Unknown field.")]

    event_type = raw.get("event_type")
    if event_type is None:
        errors["event_type"] = [gettext("This field is required.")]
    elif (
        "event_type" in data
        and "item_key" not in data
        and "item_pk" not in data
        and "item" not in errors
        and v.item_required(event_type)
    ):
        errors["item"] = [gettext("This field is required for this event type.")]
    return errors, data


def _clean_event_type(value: Any, limits: v.Limits) -> str:
    if not isinstance(value, str) or value not in v.EVENT_TYPES:
        raise v.FieldError(
            gettext("Unknown event type; one of: %(types)s.") % {"types": ", ".join(sorted(v.EVENT_TYPES))}
        )
    return value


# Public field -> cleaner(value, limits); "item" and identity keys are handled inline.
_CLEANERS: dict[str, Any] = {
    "event_type": _clean_event_type,
    "event_id": lambda x, _: v.clean_uuid(x),
    "occurred_at": v.clean_occurred_at,
    "value": lambda x, _: v.clean_value(x),
    "quantity": lambda x, _: v.clean_int(x, low=1, high=v.MAX_QUANTITY),
    "visitor_id": lambda x, _: v.clean_identifier(x),
    "session_id": lambda x, _: v.clean_identifier(x),
    "recommendation_id": lambda x, _: v.clean_uuid(x),
    "placement": lambda x, _: v.clean_identifier(x),
    "position": lambda x, _: v.clean_int(x, low=0, high=v.MAX_POSITION),
    "context": lambda x, _: v.clean_context(x),
}


VISITOR_NAMED_BY_CLIENT = gettext_noop(
    "The visitor is the one the server issued to this browser (its cookie); only an authorised "
    "server-to-server client may name a visitor_id."
)


# --- storage ---------------------------------------------------------------------------------


def store_rows(
    rows: list[tuple], *, return_events: bool = False, durable: bool = True, fresh_ids: bool = False
) -> tuple[int, list[Event]]:
    """Insert prepared rows (``COLUMNS`` order), skipping stored event ids; return (inserted, events).

    ``durable=False`` (bulk imports only, never the API) lets a large Postgres load commit
    with ``synchronous_commit = off``: the commit does not wait for the WAL flush, so a
    Postgres crash can lose the last fraction of a second of the import, which simply
    re-running the idempotent import restores. An acknowledged API event is never written
    this way. ``fresh_ids``: every event id was just generated here (uuid4), so the ORM
    path skips looking for stored ones.
    """
    vendor = connection.vendor
    events: list[Event] = []
    if not return_events and len(rows) >= behavior_settings.BULK_INSERT_THRESHOLD and vendor == "postgresql":
        if len(rows) >= behavior_settings.COPY_INSERT_THRESHOLD:
            inserted = _insert_postgres_copy(rows, durable=durable)
        else:
            inserted = _insert_postgres_json(rows)
    elif not return_events and len(rows) >= behavior_settings.BULK_INSERT_THRESHOLD and vendor == "sqlite":
        inserted = _insert_sqlite(rows)
    else:
        events = _insert_orm(rows, fresh_ids=fresh_ids)
        inserted = len(events)
    if inserted:
        _announce(_latest_by_user(rows))
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


def _announce(latest_by_user: dict[Any, datetime]) -> None:
    """Send ``events_stored`` once the storing transaction commits (at once in autocommit)."""
    if not latest_by_user:
        return
    from behavior.signals import events_stored  # signals imports this module

    def send() -> None:
        for receiver, response in events_stored.send_robust(sender=Event, latest_by_user=latest_by_user):
            if isinstance(response, Exception):
                logger.error("events_stored receiver %r failed: %s", receiver, response)

    transaction.on_commit(send)


def _concrete_fields() -> list[models.Field]:
    by_attname = {f.attname: f for f in Event._meta.concrete_fields}
    return [by_attname[name] for name in COLUMNS]


def _column_list() -> str:
    quote = connection.ops.quote_name
    return ", ".join(quote(f.column) for f in _concrete_fields())


def _json_rows(rows: list[tuple]) -> list[tuple]:
    """Rows with the context serialized to JSON text (for raw SQL paths)."""
    out = []
    i = _CONTEXT_INDEX
    for row in rows:
        context = row[i]
        text = json.dumps(context, separators=(",", ":")) if context else "{}"
        out.append((*row[:i], text, *row[i + 1 :]))
    return out


def _insert_postgres_copy(rows: list[tuple], *, durable: bool = True) -> int:
    """COPY into a temporary staging table, then INSERT ... ON CONFLICT DO NOTHING."""
    table = connection.ops.quote_name(Event._meta.db_table)
    columns = _column_list()
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
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {_STAGE_TABLE} "
            f"ON CONFLICT (event_id) DO NOTHING"
        )
        inserted = cursor.rowcount
        cursor.execute(f"TRUNCATE {_STAGE_TABLE}")
    return inserted


def _insert_postgres_json(rows: list[tuple]) -> int:
    """One ``INSERT ... SELECT FROM json_array_elements($1) ON CONFLICT DO NOTHING`` statement.

    The whole batch travels as ONE text parameter: :func:`_encode_rows` writes it with the C
    JSON encoder and Postgres casts each array element to its column type. Adapting
    fifteen typed arrays value by value (the former ``unnest`` path) cost more CPU in the
    web worker than everything else of a request. The parameter is bound server-side (a
    plain psycopg cursor on Django's connection, so it joins any open transaction): quoting
    a 15 KB literal into the SQL text costs more than the insert. A single statement is
    atomic on its own, so no BEGIN/COMMIT round trips. ``rowcount`` is the number of rows
    stored, so duplicates are counted exactly.
    """
    import psycopg  # only on this Postgres-only path

    payload = _encode_rows(rows)
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_json_insert_sql(), [payload])
        return cursor.rowcount


_JSON_INSERT_SQL: dict[str, str] = {}
_I_EVENT_ID, _I_VALUE, _I_OCCURRED, _I_RECEIVED, _I_RECOMMENDATION = (
    COLUMNS.index(name) for name in ("event_id", "value", "occurred_at", "received_at", "recommendation_id")
)


def _json_insert_sql() -> str:
    """The INSERT of :func:`_insert_postgres_json` (built once from the model: swappable FKs differ)."""
    sql = _JSON_INSERT_SQL.get(connection.alias)
    if sql is None:
        table = connection.ops.quote_name(Event._meta.db_table)
        values = []
        for i, f in enumerate(_concrete_fields()):
            if isinstance(f, models.JSONField):
                values.append(f"(r->{i})::jsonb")
            else:
                values.append(f"(r->>{i})::{f.cast_db_type(connection)}")
        sql = _JSON_INSERT_SQL[connection.alias] = (
            f"INSERT INTO {table} ({_column_list()}) SELECT {', '.join(values)} "
            f"FROM json_array_elements(%s::json) AS r ON CONFLICT (event_id) DO NOTHING"
        )
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
    for row in rows:
        row = list(row)
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
    fields = _concrete_fields()
    placeholders = ", ".join(["%s"] * len(fields))
    params = [
        [f.get_db_prep_save(value, connection) for f, value in zip(fields, row, strict=True)] for row in rows
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT OR IGNORE INTO {table} ({_column_list()}) VALUES ({placeholders})", params
        )
        return cursor.rowcount


def _insert_orm(rows: list[tuple], *, fresh_ids: bool = False) -> list[Event]:
    """bulk_create the rows whose event id is not stored yet; return the stored instances.

    One event with a server-generated id (the tracking helper on every page view) is a
    single ``INSERT`` (``save(force_insert=True)``): no look-up of stored ids, and outside
    a transaction no BEGIN/COMMIT pair around it, which a page view would wait for.
    """
    if fresh_ids and len(rows) == 1:
        obj = Event(**dict(zip(COLUMNS, rows[0], strict=True)))
        obj.save(force_insert=True)
        return [obj]
    if fresh_ids:
        existing: set = set()
    else:
        ids = [row[0] for row in rows]
        existing = set(Event.objects.filter(event_id__in=ids).values_list("event_id", flat=True))
    objs = [Event(**dict(zip(COLUMNS, row, strict=True))) for row in rows if row[0] not in existing]
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


# --- identity, retention -----------------------------------------------------------------------


# Clock difference tolerated between the web process that issued a visitor id and the one
# that stored its events (the id is random and unknown to anyone else, so a minute of slack
# opens nothing; the signature's time is also truncated to the second).
MERGE_CLOCK_SKEW = timedelta(seconds=60)


def merge_visitor_into_user(visitor_id: str, user: Any, *, since: datetime | None = None) -> int:
    """Attach a visitor's anonymous events to ``user`` (called at login); return how many.

    ``since``: when the id was issued to this browser; only events the server received
    from then on (``received_at``, the server's clock, never the client's ``occurred_at``)
    are merged, so events stored under the same id by anyone else before are not.
    """
    if not visitor_id or user is None or user.pk is None:
        return 0
    anonymous = Event.objects.filter(visitor_id=visitor_id, user__isnull=True)
    if since is not None:
        anonymous = anonymous.filter(received_at__gte=since - MERGE_CLOCK_SKEW)
    with transaction.atomic():
        merged = anonymous.update(user=user)
        if merged:
            newest = (
                Event.objects.filter(user=user, visitor_id=visitor_id, is_bot=False, item__isnull=False)
                .order_by()
                .aggregate(newest=models.Max("occurred_at"))["newest"]
            )
            if newest is not None:
                _announce({user.pk: newest})
    if merged:
        logger.info("Merged %d anonymous events of visitor %s into user %s", merged, visitor_id, user.pk)
    return merged


def retention_cutoff(*, retention_days: int | None = None, now: datetime | None = None) -> datetime | None:
    """Events that occurred before this instant are past retention; None when kept forever.

    ``retention_days`` defaults to ``EVENT_RETENTION_DAYS``. The wall clock on purpose (not the
    newest stored event, which the recommender's windows count back from): retention limits
    how long personal data is kept, which is a matter of real time.
    """
    days = behavior_settings.EVENT_RETENTION_DAYS if retention_days is None else retention_days
    if days is None:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def events_past_retention(*, now: datetime | None = None) -> int:
    """How many stored events the next ``prune_events`` deletes (0 when events are kept forever)."""
    cutoff = retention_cutoff(now=now)
    return 0 if cutoff is None else Event.objects.filter(occurred_at__lt=cutoff).count()


def prune_events(
    *, retention_days: int | None = None, batch_size: int = 10_000, now: datetime | None = None
) -> int:
    """Delete events that occurred more than ``retention_days`` ago, in batches; return how many.

    ``retention_days`` defaults to ``EVENT_RETENTION_DAYS``; ``None`` there means keep
    forever. Batches keep each transaction (and the locks it holds) short.
    """
    cutoff = retention_cutoff(retention_days=retention_days, now=now)
    if cutoff is None:
        return 0
    deleted = 0
    while True:
        old = Event.objects.filter(occurred_at__lt=cutoff).order_by()
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            count, _ = Event.objects.filter(pk__in=ids).delete()
        deleted += count
