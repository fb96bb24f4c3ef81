"""The shopper's recent behaviour, read in one indexed query per request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from behavior.items import item_key_field
from recommendations.conf import recommender_settings

History = list[tuple[str, str, float]]


@dataclass
class ShopperState:
    """Who is asking and what they did lately (``history`` oldest first)."""

    user_id: Any = None
    visitor_id: str = ""
    history: History = field(default_factory=list)

    @property
    def who(self) -> str:
        if self.user_id is not None:
            return f"u:{self.user_id}"
        return f"v:{self.visitor_id}" if self.visitor_id else ""

    @property
    def latest_ts(self) -> float | None:
        return self.history[-1][2] if self.history else None

    @property
    def oldest_ts(self) -> float | None:
        return self.history[0][2] if self.history else None

    def keys_with_type(self, *event_types: str) -> set[str]:
        return {key for key, event_type, _ in self.history if event_type in event_types}


def load_state(*, user: Any = None, visitor_id: str = "", limit: int | None = None) -> ShopperState:
    """The latest item events of a user (or an anonymous visitor); bots' events are ignored."""
    user_id = (
        getattr(user, "pk", None) if user is not None and getattr(user, "is_authenticated", False) else None
    )
    return state_of(user_id, visitor_id, limit)


def state_of(user_id: Any, visitor_id: str = "", limit: int | None = None) -> ShopperState:
    """:func:`load_state` by ids (a task's arguments): the user's events, else the visitor's."""
    state = ShopperState(user_id=user_id, visitor_id=visitor_id or "")
    if user_id is None and not visitor_id:
        return state
    rows = _latest_events(user_id, visitor_id, limit or recommender_settings.SESSION_EVENTS)
    state.history = [(str(key), event_type, when.timestamp()) for key, event_type, when in reversed(rows)]
    return state


def _events_queryset(user_id: Any, visitor_id: str, limit: int) -> Any:
    from behavior.models import Event

    queryset = Event.objects.filter(is_bot=False, item__isnull=False)
    if user_id is not None:
        queryset = queryset.filter(user_id=user_id)
    else:
        queryset = queryset.filter(visitor_id=visitor_id, user__isnull=True)
    key_path = "item_id" if item_key_field() == _item_pk_name() else f"item__{item_key_field()}"
    return queryset.order_by("-occurred_at").values_list(key_path, "event_type", "occurred_at")[:limit]


# Placeholders compiled into cached queries, then replaced by the shopper's id.
USER_PLACEHOLDER = -7_340_032_117
VISITOR_PLACEHOLDER = "\x00recommendations-visitor-placeholder"
_compiled = threading.local()


def compiled_rows(
    name: tuple,
    model: type,
    build: Callable[[Any], Any],
    placeholder: Any,
    value: Any,
    *,
    instants: bool = False,
) -> list:
    """Rows (tuples) of the ``values_list`` queryset ``build(value)``, its SQL compiled once per thread.

    Per-shopper queries run on every request that needs them; building and compiling a
    queryset costs as much CPU as running it. The SQL is the ORM's own, compiled for
    ``placeholder`` (which must appear exactly once among its parameters, else the queryset
    runs as usual), and the ORM's converters read the rows. ``name`` tells queries apart.
    A ``value`` not of the placeholder's type (e.g. a non-integer user key) runs the queryset
    as usual too. ``instants``: the caller reads timestamps only as instants (``.timestamp()``),
    so psycopg's compiled loader may read them (see :func:`_compiled_timestamps`).
    """
    from django.db import connections, router

    if not isinstance(value, type(placeholder)):
        return [tuple(row) for row in build(value)]

    alias = router.db_for_read(model)
    cache = getattr(_compiled, "queries", None)
    if cache is None:
        cache = _compiled.queries = {}
    key = (*name, alias, item_key_field())
    entry = cache.get(key)
    if entry is None:
        compiler = build(placeholder).query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        positions = [i for i, parameter in enumerate(params) if parameter == placeholder]
        entry = cache[key] = (compiler, sql, list(params), positions[0]) if len(positions) == 1 else ()
    if not entry:
        return [tuple(row) for row in build(value)]
    compiler, sql, params, position = entry
    params = list(params)
    params[position] = value
    with connections[alias].cursor() as cursor:
        if instants:
            _compiled_timestamps(cursor)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return list(compiler.results_iter(results=[rows], tuple_expected=True))


_TIMESTAMPTZ: list = []  # (oid, psycopg's compiled text loader), once found; [None] without psycopg 3


def _compiled_timestamps(cursor: Any) -> None:
    """Load this cursor's ``timestamptz`` values with psycopg's own loader, not Django's.

    Django registers a pure-Python loader (about 5 µs a value: a history is 50 of them) that
    returns datetimes in Django's time zone; psycopg's compiled one returns them in the
    session's. The instants, all these callers read, are the same. Without psycopg 3 (or its
    C extension's loader) nothing changes.
    """
    if not _TIMESTAMPTZ:
        try:
            from psycopg import postgres
            from psycopg.pq import Format

            oid = postgres.types["timestamptz"].oid
            _TIMESTAMPTZ.append((oid, postgres.adapters.get_loader(oid, Format.TEXT)))
        except Exception:
            _TIMESTAMPTZ.append(None)
    found = _TIMESTAMPTZ[0]
    adapters = getattr(getattr(cursor, "cursor", None), "adapters", None)
    if found is not None and found[1] is not None and adapters is not None:
        adapters.register_loader(found[0], found[1])


def _latest_events(user_id: Any, visitor_id: str, limit: int) -> list:
    """``_events_queryset(...)`` rows, newest first (compiled once per thread)."""
    from behavior.models import Event

    if user_id is not None:
        return compiled_rows(
            ("events:user", limit),
            Event,
            lambda v: _events_queryset(v, "", limit),
            USER_PLACEHOLDER,
            user_id,
            instants=True,
        )
    return compiled_rows(
        ("events:visitor", limit),
        Event,
        lambda v: _events_queryset(None, v, limit),
        VISITOR_PLACEHOLDER,
        visitor_id,
        instants=True,
    )


def _item_pk_name() -> str:
    from behavior.items import get_item_model

    return get_item_model()._meta.pk.name


def purchased_keys(user_id: Any) -> set[str]:
    """Every item a user ever bought (one query over purchase events)."""
    from behavior.models import Event

    if user_id is None:
        return set()

    def build(user: Any) -> Any:
        return (
            Event.objects.filter(user_id=user, event_type="purchase", item__isnull=False)
            .order_by()
            .values_list(f"item__{item_key_field()}")
            .distinct()
        )

    return {str(key) for (key,) in compiled_rows(("purchased",), Event, build, USER_PLACEHOLDER, user_id)}
