"""The one write path of the event log: validate, de-duplicate, flag bots, insert in bulk.

Everything that stores events goes through :func:`ingest_events`: the ``POST /api/events/``
endpoint, the ``import_events`` command and :func:`behavior.tracking.record_event`.

Storing the prepared rows is :mod:`behavior.services.storage`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, Unpack

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from behavior import metrics
from behavior.conf import behavior_settings
from behavior.items import get_item_model, item_ids_by_key
from behavior.models import Event
from behavior.services import event_ids
from behavior.services import validation as v
from behavior.services.storage import store_rows

# Privacy hook: callables ``(rows) -> rows`` run on every
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
    the future-time check always applies. Re-sent event ids count as ``duplicates``; an id
    re-sent with another ``occurred_at`` than the one stored is rejected (:func:`is_reused_id`;
    PostgreSQL, within ``EVENT_ID_WINDOW_DAYS``: :mod:`behavior.services.event_ids`).
    The options (:class:`IngestOptions`) are those of :func:`prepare_rows`.
    """
    prepared = prepare_rows(raw_events, **options)
    result = IngestResult(duplicates=prepared.duplicates, rejected=prepared.rejected)
    rows = prepared.rows
    for row_filter in ROW_FILTERS:  # privacy hook, see ROW_FILTERS
        rows = row_filter(rows)
    if rows:
        inserted, events = store_rows(
            rows,
            return_events=return_events,
            fresh_ids=not prepared.client_ids,
            remember_ids=prepared.client_ids,
        )
        result.accepted += inserted
        result.duplicates += len(rows) - inserted
        result.events = events
        if inserted < len(rows) and prepared.client_ids:
            _reject_reused_ids(result, prepared, rows)
    metrics.count_events(accepted=result.accepted, retried=result.duplicates, rejected=len(result.rejected))
    return result


REUSED_EVENT_ID = gettext_noop(
    "This event_id is stored with another occurred_at: a re-sent event keeps its time, "
    "another event needs another id."
)


def is_reused_id(rejected: Mapping[str, Any]) -> bool:
    """True for a rejection (an ``IngestResult.rejected`` entry) of a reused event id, nothing else."""
    return rejected.get("errors") == {"event_id": [gettext(REUSED_EVENT_ID)]}


def _reject_reused_ids(result: IngestResult, prepared: PreparedRows, rows: list[tuple]) -> None:
    """Move the rows whose id is stored with another time from ``duplicates`` to ``rejected``."""
    position = {id(row): i for i, row in enumerate(prepared.rows)}
    kept = [i for i in (position.get(id(row)) for row in rows) if i is not None]
    for i in event_ids.reused([prepared.rows[i] for i in kept], [prepared.timed[i] for i in kept]):
        result.rejected.append(
            {"index": prepared.indexes[kept[i]], "errors": {"event_id": [gettext(REUSED_EVENT_ID)]}}
        )
        result.duplicates -= 1
    result.rejected.sort(key=lambda entry: entry["index"])


@dataclass
class PreparedRows:
    """A validated batch, not stored yet: rows in ``COLUMNS`` order and what was refused.

    ``indexes[i]`` is the position in the batch of ``rows[i]``; ``rejected`` is sorted by
    index; ``duplicates`` counts event ids repeated inside the batch; ``client_ids`` says
    whether any event id came from the caller (then it may be stored already); ``timed[i]``
    whether the caller named ``rows[i]``'s time (else it is the server's ``now``).
    """

    rows: list[tuple] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    timed: list[bool] = field(default_factory=list)
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
        prepared.timed.append("occurred_at" in data)
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
