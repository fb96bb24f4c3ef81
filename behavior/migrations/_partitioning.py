"""Converting a plain table into one partitioned by time (PostgreSQL), and back.

Used by ``behavior.0007_partitioned_events`` and ``recommendations.0007_partitioned_impressions``.
Frozen with those migrations (the loader skips this module: its name starts with ``_``): a
later change of procedure is a new function for a new migration, never an edit of these.

Forward (:func:`partition_table`) keeps ingest running (docs/partitioning.md):

1. without blocking writers: the unique indexes a partition needs, ``(id, <time>)`` and
   ``(<unique column>, <time>)``, are built ``CONCURRENTLY`` on the table, and a ``CHECK``
   constraint ``<time> < bound`` is added ``NOT VALID`` and validated (validation takes a lock
   that lets inserts through);
2. in one short transaction, only catalogue work: the table is renamed ``<table>_legacy``, a
   partitioned table takes its name, columns, indexes (by their own names), checks and foreign
   keys, the legacy table's new indexes and keys are matched to the parent's (no index is built,
   no row is checked: the ``CHECK`` proves the partition bound), and the legacy table is attached
   as the partition ``[MINVALUE, bound)``, then a DEFAULT partition is added. ``bound`` is the
   first day of the month after tomorrow, so every row stored meanwhile fits the legacy range.

An empty table (a new installation) is simply replaced: it gets no legacy partition. The
partitions after ``bound`` are created by ``behavior.services.partition_maintenance`` (post_migrate and
the ``behavior.maintain_partitions`` task). Backward (:func:`unpartition_table`) copies every
row into a plain table built from the model state: blocking, for rollbacks and tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import transaction

# The swap waits at most this long for the table lock (queries queue behind a waiting lock):
# a long-running query on the table makes the migration fail with a clear message instead.
SWAP_LOCK_TIMEOUT = "10s"
SWAP_ATTEMPTS = 6


def legacy_bound(now: datetime | None = None) -> datetime:
    """The first day of the month after tomorrow (UTC): the legacy partition's upper bound."""
    day = (now or datetime.now(UTC)).astimezone(UTC) + timedelta(days=1)
    first = day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def _relkind(cursor, table: str) -> str | None:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
    row = cursor.fetchone()
    return row[0] if row else None


def partition_table(schema_editor, *, table: str, column: str, unique: tuple[str, ...] = ()) -> None:
    """Partition ``table`` by range of ``column`` (see the module docstring); no-op off PostgreSQL.

    ``unique``: columns that were unique on their own and become unique with ``column``.
    The migration calling this must be non-atomic (``CREATE INDEX CONCURRENTLY``).
    """
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        if _relkind(cursor, table) == "p":
            return
    quote = connection.ops.quote_name
    bound = legacy_bound()
    keys = {"id": f"{table}_legacy_pk"} | {name: f"{table}_legacy_{name}_time" for name in unique}
    check = f"{table}_legacy_bound"
    with connection.cursor() as cursor:
        for name, index in keys.items():
            _drop_invalid_index(cursor, index)
            cursor.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {quote(index)} "
                f"ON {quote(table)} ({quote(name)}, {quote(column)})"
            )
        # Adding the constraint takes the table lock for a moment: bounded, as the swap's
        # (a waiting lock queues every insert behind it). Validating it lets inserts through.
        cursor.execute(f"SET lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
        try:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT IF EXISTS {quote(check)}")
            cursor.execute(
                f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(check)} "
                f"CHECK ({quote(column)} < %s) NOT VALID",
                [bound],
            )
        finally:
            cursor.execute("RESET lock_timeout")
        cursor.execute(f"ALTER TABLE {quote(table)} VALIDATE CONSTRAINT {quote(check)}")
    for attempt in range(SWAP_ATTEMPTS):
        try:
            with transaction.atomic(using=connection.alias):
                _swap(connection, table=table, column=column, unique=unique, keys=keys, bound=bound)
            return
        except Exception as exc:
            if "lock timeout" not in str(exc) or attempt == SWAP_ATTEMPTS - 1:
                raise
    raise RuntimeError(f"could not lock {table}: long-running queries hold it; migrate again")


def _drop_invalid_index(cursor, index: str) -> None:
    """An index left INVALID by an interrupted concurrent build would be reused by IF NOT EXISTS."""
    cursor.execute(
        "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
        [index],
    )
    row = cursor.fetchone()
    if row and row[0]:
        cursor.execute(f'DROP INDEX CONCURRENTLY "{index}"')


def _swap(connection, *, table: str, column: str, unique, keys: dict[str, str], bound: datetime) -> None:
    quote = connection.ops.quote_name
    legacy = f"{table}_legacy"
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
        cursor.execute(f"LOCK TABLE {quote(table)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {quote(table)})")
        empty = cursor.fetchone()[0]
        # Every index but the primary key, the new keys and those unique without the time
        # column (a partitioned table cannot have them): recreated on the parent by name.
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = %s::regclass "
            "AND NOT x.indisprimary AND c.relname <> ALL(%s) "
            "AND (NOT x.indisunique OR (SELECT attnum FROM pg_attribute "
            "WHERE attrelid = x.indrelid AND attname = %s) = ANY(x.indkey::int2[])) ORDER BY 1",
            [table, list(keys.values()), column],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('c', 'f', 'p') AND conname <> %s ORDER BY 1",
            [table, f"{table}_legacy_bound"],
        )
        constraints = cursor.fetchall()
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        sequence = cursor.fetchone()[0]
        if sequence:
            cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
            last_value, is_called = cursor.fetchone()
        else:
            cursor.execute(f"SELECT coalesce(max(id), 0) + 1, false FROM {quote(table)}")
            last_value, is_called = cursor.fetchone()

        cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(legacy)}")
        for name, _ in indexes:
            cursor.execute(f"ALTER INDEX {quote(name)} RENAME TO {quote(name[:56] + '_legacy')}")
        cursor.execute(f"ALTER TABLE {quote(legacy)} ALTER COLUMN id DROP IDENTITY IF EXISTS")
        cursor.execute(f"ALTER TABLE {quote(legacy)} ALTER COLUMN id DROP DEFAULT")
        for name, _, kind in constraints:
            if kind == "p":
                cursor.execute(f"ALTER TABLE {quote(legacy)} DROP CONSTRAINT {quote(name)}")
        cursor.execute(
            f"ALTER TABLE {quote(legacy)} ADD CONSTRAINT {quote(legacy + '_pkey')} "
            f"PRIMARY KEY USING INDEX {quote(keys['id'])}"
        )

        cursor.execute(
            f"CREATE TABLE {quote(table)} (LIKE {quote(legacy)} INCLUDING DEFAULTS) "
            f"PARTITION BY RANGE ({quote(column)})"
        )
        sequence_name = f"{table}_id_seq"
        cursor.execute(f"CREATE SEQUENCE {quote(sequence_name)} OWNED BY {quote(table)}.id")
        cursor.execute("SELECT setval(%s, %s, %s)", [sequence_name, last_value, is_called])
        cursor.execute(
            f"ALTER TABLE {quote(table)} ALTER COLUMN id SET DEFAULT nextval(%s::regclass)",
            [sequence_name],
        )
        cursor.execute(f"ALTER TABLE {quote(table)} ADD PRIMARY KEY (id, {quote(column)})")
        for name in unique:
            cursor.execute(
                f"CREATE UNIQUE INDEX {quote(f'{table}_{name}_time')} "
                f"ON {quote(table)} ({quote(name)}, {quote(column)})"
            )
        for _, definition in indexes:
            cursor.execute(definition)  # the original name, on the new parent (it has the table's name)
        for name, definition, kind in constraints:
            if kind != "p":
                cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
        if empty:
            cursor.execute(f"DROP TABLE {quote(legacy)}")
        else:
            cursor.execute(
                f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(legacy)} FOR VALUES FROM (MINVALUE) TO (%s)",
                [bound],
            )
        cursor.execute(f"CREATE TABLE {quote(table + '_default')} PARTITION OF {quote(table)} DEFAULT")


def unpartition_table(schema_editor, model, *, indexes: tuple[str, ...] = ()) -> None:
    """Copy a partitioned table's rows into a plain table built from ``model``'s state; blocking.

    One transaction: the rows wait in a temporary table while the plain table is created.
    ``indexes``: ``CREATE INDEX`` statements of indexes the model state does not know (a BRIN
    index of an earlier migration), run after the copy.
    """
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    table = model._meta.db_table
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in model._meta.concrete_fields)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if _relkind(cursor, table) != "p":
            return
        cursor.execute(f"LOCK TABLE {quote(table)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"CREATE TEMP TABLE unpartitioned_rows ON COMMIT DROP AS SELECT {columns} FROM {quote(table)}")
        cursor.execute(f"DROP TABLE {quote(table)} CASCADE")
        schema_editor.create_model(model)
        cursor.execute(f"INSERT INTO {quote(table)} ({columns}) SELECT {columns} FROM unpartitioned_rows")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, false) FROM {quote(table)}",
            [table],
        )
        for statement in indexes:
            cursor.execute(statement)
