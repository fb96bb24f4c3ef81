"""Time partitions of the events and impressions tables on PostgreSQL: create, fill, drop.

The migrations (``behavior.0007``, ``recommendations.0007``) make the tables partitioned by
range of their time column, with a DEFAULT partition. This module keeps them in shape:

- :func:`maintain` creates the partitions of the current interval and ``PARTITIONS_AHEAD``
  after it (``PARTITION_INTERVAL``: month, week or day, UTC), and moves rows that landed in the
  DEFAULT partition into partitions created for them: PostgreSQL refuses to create a partition
  while the DEFAULT partition holds rows that belong to it, so a partition is created as a
  plain table, the rows are moved into it and it is attached, in one transaction holding the
  DEFAULT partition's lock (:func:`create_partition`);
- :func:`cover` creates the partitions an import is about to fill (a historical log);
- :func:`prune_before` drops the partitions that lie wholly before a cut and deletes rows only
  in the one that straddles it (and in the DEFAULT partition);
- :func:`note_uncovered` logs a warning and counts ``behavior_partition_misses_total`` when
  rows are stored with no partition of their own (they go to DEFAULT: never an error).

SQLite keeps plain tables: every function here is then a no-op (or a plain batched delete).
DDL waits at most ``DDL_LOCK_TIMEOUT`` for its locks (a waiting lock queues every insert behind
it): a busy table makes the run give up on that partition, and the next run tries again.
"""

from __future__ import annotations

import bisect
import logging
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

from behavior import metrics
from behavior.conf import behavior_settings
from behavior.models import Event

__all__ = [
    "EVENTS",
    "INTERVALS",
    "Partition",
    "PartitionedTable",
    "bucket",
    "cover",
    "create_partition",
    "delete_before",
    "is_partitioned",
    "maintain",
    "maintain_all",
    "note_uncovered",
    "partitions",
    "prune_before",
    "register",
    "registered",
    "report_default_rows",
]

logger = logging.getLogger(__name__)

INTERVALS = ("month", "week", "day")
DDL_LOCK_TIMEOUT = "5s"
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


def forget_layouts() -> None:
    """Drop what this process read of the partitions (after DDL of others, e.g. in tests)."""
    _LAYOUTS.clear()


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


def _gaps(lower: datetime, upper: datetime, existing: list[Partition]) -> list[tuple[datetime, datetime]]:
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


# --- DDL ---------------------------------------------------------------------------------------


@contextmanager
def _ddl(table: PartitionedTable, *, run_pending_checks: bool = False) -> Iterator[Any]:
    """One transaction with a bounded lock wait, serialised per table (two beats, an import).

    ``run_pending_checks``: PostgreSQL refuses to drop a table that has foreign-key checks
    pending, as it does inside a caller's transaction that inserted rows (Django's keys are
    checked at commit): run them first.
    """
    nested = connection.in_atomic_block and run_pending_checks
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [DDL_LOCK_TIMEOUT])
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"partitions:{table.table}"])
        if nested:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        yield cursor
        # SET LOCAL would outlive this block inside a caller's transaction: put it back
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
        if nested:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's foreign keys are initially deferred


def _partition_name(table: PartitionedTable, lower: datetime) -> str:
    suffix = f"{lower:%Y%m%d}" if lower.time() == datetime.min.time() else f"{lower:%Y%m%d_%H%M%S}"
    return f"{table.table}_p{suffix}"


def create_partition(table: PartitionedTable, lower: datetime, upper: datetime) -> int:
    """Create the partition ``[lower, upper)``, moving into it the DEFAULT partition's rows of that range.

    Returns how many rows were moved. The partition is made as a plain table, filled from the
    DEFAULT partition and attached, under the DEFAULT partition's lock (no row can arrive there
    meanwhile). Attaching builds the parent's indexes on it and checks its foreign keys.
    """
    name = _partition_name(table, lower)
    quote = connection.ops.quote_name
    parent, default = quote(table.table), quote(table.default)
    column = quote(table.column)
    with _ddl(table) as cursor:
        if _gaps(lower, upper, partitions(table)) != [(lower, upper)]:
            return 0  # another run created it (or part of it) meanwhile
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table.default])
        has_default = cursor.fetchone()[0]
        cursor.execute(f"CREATE TABLE {quote(name)} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        moved = 0
        if has_default:
            cursor.execute(f"LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE")
            columns = ", ".join(quote(str(f.column)) for f in table.model._meta.concrete_fields)
            cursor.execute(
                f"WITH moved AS (DELETE FROM {default} WHERE {column} >= %s AND {column} < %s "
                f"RETURNING {columns}) INSERT INTO {quote(name)} ({columns}) SELECT {columns} FROM moved",
                [lower, upper],
            )
            moved = cursor.rowcount
        cursor.execute(
            f"ALTER TABLE {parent} ATTACH PARTITION {quote(name)} FOR VALUES FROM (%s) TO (%s)",
            [lower, upper],
        )
    _LAYOUTS.pop((connection.alias, table.table), None)
    logger.info("Created partition %s [%s, %s); moved %d rows from the default", name, lower, upper, moved)
    return moved


def _ensure(table: PartitionedTable, lower: datetime, upper: datetime) -> tuple[list[str], int]:
    """Create partitions for every interval that overlaps ``[lower, upper]``; (names, rows moved)."""
    created, moved = [], 0
    existing = partitions(table)
    start = bucket(lower)[0]
    while start <= upper:
        end = bucket(start)[1]
        for gap_lower, gap_upper in _gaps(start, end, existing):
            moved += create_partition(table, gap_lower, gap_upper)
            created.append(_partition_name(table, gap_lower))
        start = end
    return created, moved


@dataclass
class MaintenanceReport:
    """What one :func:`maintain` run did to one table."""

    created: list[str] = field(default_factory=list)
    moved: int = 0
    failed: list[str] = field(default_factory=list)


def maintain(table: PartitionedTable, *, now: datetime | None = None) -> MaintenanceReport:
    """Partitions for now and ``PARTITIONS_AHEAD`` intervals ahead; rows in DEFAULT moved to theirs.

    Idempotent; a partition whose locks could not be had in time is reported in ``failed`` and
    left for the next run (the rows stay readable in DEFAULT meanwhile).
    """
    report = MaintenanceReport()
    if not is_partitioned(table):
        return report
    now = now or timezone.now()
    last = bucket(now)[0]
    for _ in range(behavior_settings.PARTITIONS_AHEAD):
        last = bucket(last)[1]
    targets = [(bucket(now)[0], last)] + [(moment, moment) for moment in _default_buckets(table)]
    for lower, upper in targets:
        try:
            created, moved = _ensure(table, lower, upper)
        except DatabaseError as exc:
            logger.warning("Partition maintenance of %s at %s failed: %s", table.table, lower, exc)
            report.failed.append(f"{lower:%Y-%m-%d}")
            continue
        report.created += created
        report.moved += moved
    return report


def _default_buckets(table: PartitionedTable) -> list[datetime]:
    """The starts of the intervals (date_trunc's month, week from Monday, day) of the DEFAULT rows."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table.default])
        if not cursor.fetchone()[0]:
            return []
        cursor.execute(
            f"SELECT DISTINCT date_trunc(%s, {quote(table.column)}, 'UTC') FROM {quote(table.default)}",
            [behavior_settings.PARTITION_INTERVAL],
        )
        return [moment for (moment,) in cursor.fetchall()]


def maintain_all(*, now: datetime | None = None) -> dict[str, MaintenanceReport]:
    """:func:`maintain` every registered table that is partitioned; ``{label: report}``."""
    return {table.label: maintain(table, now=now) for table in registered() if is_partitioned(table)}


def cover(table: PartitionedTable, lower: datetime, upper: datetime) -> list[str]:
    """Make sure partitions hold ``[lower, upper]`` (an import about to store that range)."""
    if not is_partitioned(table) or _one_span(_layout(table), lower, upper):
        return []
    return _ensure(table, lower, upper)[0]


# --- retention ---------------------------------------------------------------------------------


def drop_partitions_before(table: PartitionedTable, cutoff: datetime) -> int:
    """Drop every partition whose upper bound is at or before ``cutoff``; rows they held.

    The count of a large partition is the planner's estimate (``reltuples``, kept by
    autovacuum): counting a month exactly would read it all, which dropping it avoids.
    """
    if not is_partitioned(table):
        return 0
    quote = connection.ops.quote_name
    dropped_rows = 0
    for part in partitions(table):
        if part.is_default or part.upper is None or part.upper > cutoff:
            continue
        try:
            with _ddl(table, run_pending_checks=True) as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [part.name])
                (estimate,) = cursor.fetchone()
                if estimate < 0:  # never analysed: small enough to count
                    cursor.execute(f"SELECT count(*) FROM {quote(part.name)}")
                    (estimate,) = cursor.fetchone()
                cursor.execute(f"DROP TABLE {quote(part.name)}")
        except DatabaseError as exc:
            logger.warning("Could not drop partition %s (next run retries): %s", part.name, exc)
            continue
        dropped_rows += estimate
        logger.info("Dropped partition %s (about %d rows) past retention", part.name, estimate)
    _LAYOUTS.pop((connection.alias, table.table), None)
    return dropped_rows


def prune_before(table: PartitionedTable, cutoff: datetime, *, batch_size: int = 10_000) -> int:
    """Remove rows whose time is before ``cutoff``: whole partitions first, then rows, in batches.

    Only the partition that straddles the cut (and DEFAULT) still has such rows after the drops,
    and partition pruning keeps the batched deletes on those. On SQLite: batched deletes.
    """
    dropped = drop_partitions_before(table, cutoff)
    return dropped + delete_before(table.model, table.column, cutoff, batch_size=batch_size)


def delete_before(
    model: type[models.Model], column: str, cutoff: datetime, *, batch_size: int = 10_000
) -> int:
    """Delete ``model``'s rows whose ``column`` is before ``cutoff``, in batches; how many.

    Batches keep each transaction (and the locks it holds) short. The delete repeats the time
    condition, so on a partitioned table it probes only the partitions before the cut.
    """
    manager, before = model._default_manager, {f"{column}__lt": cutoff}
    deleted = 0
    while True:
        ids = list(manager.filter(**before).order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            count, _ = manager.filter(pk__in=ids, **before).delete()
        deleted += count


EVENTS = register(Event, "occurred_at", "events")
