"""Time partitions of the events and impressions tables on PostgreSQL: which exist, which hold what.

The migrations (``behavior.0007``, ``recommendations.0007``) make the tables partitioned by
range of their time column, with a DEFAULT partition (docs/partitioning.md). This module is
the read side: the registry of partitioned tables (:func:`register`; ``EVENTS`` here, the
recommender's impressions in ``recommendations.services.partitioned``), their partitions read
from the catalogue (:func:`partitions`, and a per-process layout trusted for
``LAYOUT_SECONDS``), the intervals of ``PARTITION_INTERVAL`` (:func:`bucket`: month, week from
Monday, or day, UTC), and :func:`note_uncovered`, which logs a warning and counts
``behavior_partition_misses_total`` when rows are stored with no partition of their own (they go
to DEFAULT: never an error). Creating, filling and dropping partitions is
:mod:`behavior.services.partition_maintenance`. SQLite keeps plain tables: nothing is partitioned.
"""

from __future__ import annotations

import bisect
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import DatabaseError, connection, models

from behavior import metrics
from behavior.conf import behavior_settings
from behavior.models import Event

__all__ = [
    "EVENTS",
    "INTERVALS",
    "Partition",
    "PartitionedTable",
    "bucket",
    "forget_layouts",
    "gaps",
    "holds",
    "is_partitioned",
    "note_uncovered",
    "partitions",
    "register",
    "registered",
    "report_default_rows",
]

logger = logging.getLogger(__name__)

INTERVALS = ("month", "week", "day")
# How long a process trusts what it read of a table's partitions (a miss re-reads sooner).
LAYOUT_SECONDS = 60.0
LAYOUT_RECHECK_SECONDS = 10.0


@dataclass(frozen=True)
class PartitionedTable:
    """A model whose table is partitioned by range of ``column`` on PostgreSQL."""

    model: type[models.Model]
    column: str
    label: str  # the metric's label: "events", "impressions"

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def default(self) -> str:
        return f"{self.table}_default"


@dataclass(frozen=True)
class Partition:
    """One partition: its bounds (None = MINVALUE / MAXVALUE), or the DEFAULT partition."""

    name: str
    lower: datetime | None
    upper: datetime | None
    is_default: bool = False


_REGISTRY: dict[str, PartitionedTable] = {}


def register(model: type[models.Model], column: str, label: str) -> PartitionedTable:
    """Declare a partitioned model (apps' ``ready``); returns its :class:`PartitionedTable`."""
    entry = PartitionedTable(model, column, label)
    _REGISTRY[model._meta.label_lower] = entry
    return entry


def registered() -> list[PartitionedTable]:
    """Every registered table (behavior's events, the recommender's impressions)."""
    return list(_REGISTRY.values())


# --- reading the layout --------------------------------------------------------------------------

_BOUND = re.compile(r"FROM \((.+)\) TO \((.+)\)")


def _parse_bound(text: str) -> datetime | None:
    text = text.strip()
    if text in {"MINVALUE", "MAXVALUE"}:
        return None
    return datetime.fromisoformat(text.strip("'")).astimezone(UTC)


def is_partitioned(table: PartitionedTable) -> bool:
    """True on PostgreSQL once the table is partitioned (its migration applied)."""
    return _layout(table).partitioned


def partitions(table: PartitionedTable) -> list[Partition]:
    """The table's partitions read from the catalogue, ordered by lower bound, DEFAULT last."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [table.table],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound)
        if match is None:
            found.append(Partition(name, None, None, is_default=True))
        else:
            found.append(Partition(name, _parse_bound(match.group(1)), _parse_bound(match.group(2))))
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda p: (p.is_default, p.lower or epoch))


@dataclass
class _Layout:
    partitioned: bool
    spans: list[tuple[datetime, datetime]] = field(default_factory=list)  # merged, sorted
    read_at: float = 0.0


_LAYOUTS: dict[tuple[str, str], _Layout] = {}
_FAR_PAST = datetime(1, 1, 2, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 12, 30, tzinfo=UTC)


def _layout(table: PartitionedTable, *, fresh: bool = False) -> _Layout:
    key = (connection.alias, table.table)
    layout = _LAYOUTS.get(key)
    if layout is not None and not fresh and time.monotonic() - layout.read_at < LAYOUT_SECONDS:
        return layout
    partitioned = False
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [table.table])
            row = cursor.fetchone()
            partitioned = bool(row and row[0])
    spans: list[tuple[datetime, datetime]] = []
    if partitioned:
        for part in partitions(table):
            if part.is_default:
                continue
            lower, upper = part.lower or _FAR_PAST, part.upper or _FAR_FUTURE
            if spans and spans[-1][1] == lower:
                spans[-1] = (spans[-1][0], upper)
            else:
                spans.append((lower, upper))
    layout = _LAYOUTS[key] = _Layout(partitioned, spans, time.monotonic())
    return layout


def forget_layouts(table: PartitionedTable | None = None) -> None:
    """Drop what this process read of the partitions (of ``table``, or all): after DDL."""
    if table is None:
        _LAYOUTS.clear()
    else:
        _LAYOUTS.pop((connection.alias, table.table), None)


def holds(table: PartitionedTable, low: datetime, high: datetime) -> bool:
    """True when adjacent partitions hold every moment from ``low`` to ``high`` (as last read)."""
    return _one_span(_layout(table), low, high)


def _one_span(layout: _Layout, low: datetime, high: datetime) -> bool:
    """True when one run of adjacent partitions holds every moment from ``low`` to ``high``."""
    i = bisect.bisect_right([lower for lower, _ in layout.spans], low) - 1
    return i >= 0 and high < layout.spans[i][1]


def _uncovered(layout: _Layout, moments: list[datetime]) -> int:
    if _one_span(layout, min(moments), max(moments)):  # the usual case: one check per batch
        return 0
    return sum(1 for moment in moments if not _one_span(layout, moment, moment))


def note_uncovered(table: PartitionedTable, moments: Iterable[datetime]) -> int:
    """Count rows about to be stored that no partition holds (they go to DEFAULT); warn once per batch.

    Never raises: storing the rows matters more than knowing where they went.
    """
    moments = list(moments)
    if not moments or connection.vendor != "postgresql":
        return 0
    try:
        layout = _layout(table)
        if not layout.partitioned:
            return 0
        missing = _uncovered(layout, moments)
        if missing and time.monotonic() - layout.read_at > LAYOUT_RECHECK_SECONDS:
            missing = _uncovered(_layout(table, fresh=True), moments)  # created meanwhile?
    except DatabaseError:
        logger.warning("Could not read the partitions of %s", table.table, exc_info=True)
        return 0
    report_default_rows(table, missing, moments)
    return missing


def report_default_rows(table: PartitionedTable, count: int, moments: list[datetime]) -> None:
    """Warn and count ``count`` rows of a batch (of ``moments``) that went to the DEFAULT partition."""
    if not count:
        return
    logger.warning(
        "%d %s have no partition for their time (%s to %s): stored in %s until "
        "behavior.maintain_partitions creates their partitions and moves them",
        count,
        table.label,
        min(moments).isoformat(),
        max(moments).isoformat(),
        table.default,
    )
    metrics.count_partition_misses(table.label, count)


# --- intervals ---------------------------------------------------------------------------------


def bucket(moment: datetime, interval: str | None = None) -> tuple[datetime, datetime]:
    """The aligned interval (UTC) holding ``moment``: its month, ISO week (from Monday) or day."""
    interval = interval or behavior_settings.PARTITION_INTERVAL
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day, day + timedelta(days=1)
    if interval == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if interval != "month":
        raise ValueError(f"PARTITION_INTERVAL must be one of {INTERVALS}, not {interval!r}")
    start = day.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


def gaps(lower: datetime, upper: datetime, existing: list[Partition]) -> list[tuple[datetime, datetime]]:
    """The parts of ``[lower, upper)`` that no existing (non-default) partition holds."""
    gaps, cursor = [], lower
    for part in existing:
        if part.is_default:
            continue
        p_lower, p_upper = part.lower or _FAR_PAST, part.upper or _FAR_FUTURE
        if p_upper <= cursor or p_lower >= upper:
            continue
        if p_lower > cursor:
            gaps.append((cursor, p_lower))
        cursor = max(cursor, p_upper)
        if cursor >= upper:
            break
    if cursor < upper:
        gaps.append((cursor, upper))
    return gaps


EVENTS = register(Event, "occurred_at", "events")
