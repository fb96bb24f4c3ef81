"""Exactly-once for client event ids on the partitioned events table (PostgreSQL).

PostgreSQL enforces uniqueness on a partitioned table only for keys that include the partition
column, so the events table holds ``(event_id, occurred_at)`` unique. That alone de-duplicates
every re-send that repeats the event's time (the beacon, imports: forever). A client that
leaves ``occurred_at`` to the server gets a new time on each re-send, and a client could reuse
an id for another event; for those, each client event id is also *claimed* in
``RecentEventId`` (``event_id`` primary key) for ``EVENT_ID_WINDOW_DAYS``, in the same
statement as the insert (a de-duplication window, as Segment keeps one):

- an id claimed already is not stored again (a duplicate), whatever the time; concurrent
  writers of one id wait on the claim's unique index, so one of them stores it;
- a re-send that names another time than the claimed one is refused (:func:`reused`), and
  the API answers 409 when that is all that is wrong with a batch (on SQLite the stored event
  itself says so: there ``event_id`` is unique by itself).

Ids the server made (uuid4, never re-sent) and imports (ids derived from the row with its
time, or the file's ids with their time) are not claimed: the pair is their key. On SQLite the
table is plain and ``event_id`` unique by itself; nothing here is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from behavior.conf import behavior_settings
from behavior.models import Event, RecentEventId
from behavior.services import partitions

__all__ = ["claim", "claimed_insert_sql", "in_use", "prune_window", "reused"]

_I_EVENT_ID, _I_OCCURRED_AT, _I_RECEIVED_AT = 0, 8, 9  # storage.COLUMNS positions


def in_use() -> bool:
    """True where client ids are claimed: PostgreSQL with the partitioned events table."""
    return connection.vendor == "postgresql" and partitions.is_partitioned(partitions.EVENTS)


def claimed_insert_sql(source: str, columns: str) -> str:
    """One statement: claim the ids of ``source``'s rows, insert the rows whose id was claimed.

    ``source`` is a SELECT of the event columns named as in the table (``columns``, quoted).
    One statement is atomic on its own: a claim never outlives a failed insert.
    """
    quote = connection.ops.quote_name
    keys, events = quote(RecentEventId._meta.db_table), quote(Event._meta.db_table)
    return (
        f"WITH batch AS MATERIALIZED ({source}), claimed AS ("
        f"INSERT INTO {keys} (event_id, occurred_at, received_at) "
        f"SELECT event_id, occurred_at, received_at FROM batch ON CONFLICT DO NOTHING RETURNING event_id) "
        f"INSERT INTO {events} ({columns}) SELECT {columns} FROM batch "
        f"WHERE event_id IN (SELECT event_id FROM claimed) ON CONFLICT DO NOTHING"
    )


def claim(rows: Sequence[tuple]) -> set:
    """Claim the rows' ids (inside the caller's transaction); the ids that were free."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(RecentEventId._meta.db_table)} (event_id, occurred_at, received_at) "
            f"SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[]) "
            f"ON CONFLICT DO NOTHING RETURNING event_id",
            [
                [row[_I_EVENT_ID] for row in rows],
                [row[_I_OCCURRED_AT] for row in rows],
                [row[_I_RECEIVED_AT] for row in rows],
            ],
        )
        return {event_id for (event_id,) in cursor.fetchall()}


def reused(rows: Sequence[tuple], timed: Sequence[bool]) -> list[int]:
    """Positions of rows whose id is claimed with another time than the one their client named.

    ``timed[i]``: the client named ``rows[i]``'s time (a row the server stamped cannot
    contradict the claim: it is a re-send). Called only for batches with duplicates.
    """
    named = {row[_I_EVENT_ID]: (i, row[_I_OCCURRED_AT]) for i, row in enumerate(rows) if timed[i]}
    if not named:
        return []
    # Where event_id is unique by itself (SQLite, a plain table) the events say it, for ever.
    source = RecentEventId.objects if in_use() else Event.objects
    stored = source.filter(event_id__in=list(named)).values_list("event_id", "occurred_at")
    return sorted(named[event_id][0] for event_id, moment in stored if moment != named[event_id][1])


def prune_window(*, now: datetime | None = None, batch_size: int = 50_000) -> int:
    """Forget ids received more than ``EVENT_ID_WINDOW_DAYS`` ago, in batches; how many."""
    cutoff = (now or timezone.now()) - timedelta(days=behavior_settings.EVENT_ID_WINDOW_DAYS)
    forgotten = 0
    while True:
        ids = list(
            RecentEventId.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return forgotten
        forgotten += RecentEventId.objects.filter(pk__in=ids).delete()[0]
