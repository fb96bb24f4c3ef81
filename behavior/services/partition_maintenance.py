"""Creating, filling and dropping the time partitions of events and impressions (PostgreSQL).

The read side (registry, layout, intervals) is :mod:`behavior.services.partitions`.

- :func:`maintain` creates the partitions of the current interval and ``PARTITIONS_AHEAD``
  after it, and moves rows that landed in the DEFAULT partition into partitions created for
  them: PostgreSQL refuses to create a partition while the DEFAULT partition holds rows that
  belong to it, so a partition is created as a plain table, the rows are moved into it and it
  is attached, in one transaction holding the DEFAULT partition's lock (:func:`create_partition`);
- :func:`cover` creates the partitions an import is about to fill (a historical log);
- :func:`prune_before` drops the partitions that lie wholly before a cut and deletes rows only
  in the one that straddles it (and in the DEFAULT partition).

SQLite keeps plain tables: every function here is then a no-op (or a plain batched delete).
DDL waits at most ``DDL_LOCK_TIMEOUT`` for its locks (a waiting lock queues every insert behind
it): a busy table makes the run give up on that partition, and the next run tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

from behavior.conf import behavior_settings
from behavior.services.partitions import (
    PartitionedTable,
    bucket,
    forget_layouts,
    gaps,
    holds,
    is_partitioned,
    partitions,
    registered,
)

__all__ = [
    "MaintenanceReport",
    "cover",
    "create_partition",
    "delete_before",
    "drop_partitions_before",
    "maintain",
    "maintain_all",
    "prune_before",
]

logger = logging.getLogger(__name__)

DDL_LOCK_TIMEOUT = "5s"


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
        if gaps(lower, upper, partitions(table)) != [(lower, upper)]:
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
    forget_layouts(table)
    logger.info("Created partition %s [%s, %s); moved %d rows from the default", name, lower, upper, moved)
    return moved


def _ensure(table: PartitionedTable, lower: datetime, upper: datetime) -> tuple[list[str], int]:
    """Create partitions for every interval that overlaps ``[lower, upper]``; (names, rows moved)."""
    created, moved = [], 0
    existing = partitions(table)
    start = bucket(lower)[0]
    while start <= upper:
        end = bucket(start)[1]
        for gap_lower, gap_upper in gaps(start, end, existing):
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
    if not is_partitioned(table) or holds(table, lower, upper):
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
    forget_layouts(table)
    return dropped_rows


def prune_before(table: PartitionedTable, cutoff: datetime, *, batch_size: int = 10_000) -> int:
    """Remove rows whose time is before ``cutoff``: whole partitions first, then rows, in batches.

    Only the partition that straddles the cut (and DEFAULT) still has such rows after the drops,
    and partition pruning keeps the batched deletes on those. On SQLite: batched deletes.
    """
    dropped = drop_partitions_before(table, cutoff)
    return dropped + delete_before(table.model, table.column, cutoff, batch_size=batch_size)


def delete_before(
    model: type[models.Model],
    column: str,
    cutoff: datetime,
    *,
    batch_size: int = 10_000,
    among: models.QuerySet[Any] | None = None,
) -> int:
    """Delete ``model``'s rows whose ``column`` is before ``cutoff``, in batches; how many.

    ``among`` narrows the rows that may go (every row of ``model`` by default). Batches keep each
    transaction (and the locks it holds) short. The delete repeats the time condition, so on a
    partitioned table it probes only the partitions before the cut.
    """
    manager, before = model._default_manager, {f"{column}__lt": cutoff}
    candidates = (manager.all() if among is None else among).filter(**before).order_by()
    deleted = 0
    while True:
        ids = list(candidates.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            count, _ = manager.filter(pk__in=ids, **before).delete()
        deleted += count
