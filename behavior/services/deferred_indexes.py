"""Offline initial loads: the secondary event indexes dropped for a load and rebuilt after it.

Inserting a row into ``behavior_event`` updates each of its indexes; for a load of millions
of rows, maintaining the non-unique b-trees row by row costs more than building them
once afterwards (a sorted build). :func:`deferred_event_indexes` does that *safely*:

- everything happens in ONE transaction (Postgres DDL is transactional): if the load
  fails or the process dies, the indexes were never dropped as far as anyone can see;
- the primary key and the unique ``event_id`` index stay (idempotency depends on it; on a
  partitioned table ``(event_id, occurred_at)``, and its indexes are dropped and rebuilt on
  every partition);
- the foreign keys (user, item) are dropped too and added back at the end, which checks
  every row in one join instead of one trigger query per inserted row (~40% of the
  insert cost); a dangling id fails the ``ADD CONSTRAINT`` and rolls the whole load back;
- the definitions are read from the catalogue (``pg_get_indexdef``), so indexes added by
  later migrations are restored exactly as they were.

The price: ``DROP INDEX`` holds an ACCESS EXCLUSIVE lock on the table until the commit,
so every reader and writer of events waits for the whole load. It is therefore opt-in
(``import_events --defer-indexes``), for initial loads into a quiet database, never a
default. Other databases: a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from behavior.models import Event

__all__ = ["deferred_event_indexes", "foreign_key_definitions", "secondary_index_definitions"]

logger = logging.getLogger(__name__)

# Session-level memory for the index builds (SET LOCAL: this transaction only, no server change).
INDEX_BUILD_MEMORY = "256MB"


def secondary_index_definitions() -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of every non-unique, non-primary index on the events table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass AND NOT x.indisunique AND NOT x.indisprimary "
            "ORDER BY c.relname",
            [Event._meta.db_table],
        )
        # A partitioned table's index is defined "ON ONLY" the parent; rebuilt on the whole
        # table (every partition), it must not be.
        return [(name, statement.replace(" ON ONLY ", " ON ", 1)) for name, statement in cursor.fetchall()]


def foreign_key_definitions() -> list[tuple[str, str]]:
    """(name, definition) of every foreign key constraint of the events table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
            [Event._meta.db_table],
        )
        return list(cursor.fetchall())


@contextmanager
def deferred_event_indexes() -> Iterator[None]:
    """Run the body in one transaction with the secondary event indexes dropped, then rebuild them."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        definitions = secondary_index_definitions()
        foreign_keys = foreign_key_definitions()
        table = connection.ops.quote_name(Event._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
            # Foreign keys are checked per statement, as outside a transaction: deferred
            # checks would queue one trigger event per row in memory until the commit,
            # and CREATE INDEX refuses to run with such events pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for name, _ in foreign_keys:
                cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {connection.ops.quote_name(name)}")
            for name, _ in definitions:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
        logger.info(
            "Dropped %d secondary event indexes and %d foreign keys for the load",
            len(definitions),
            len(foreign_keys),
        )
        yield
        with connection.cursor() as cursor:
            for _, statement in definitions:
                cursor.execute(statement)
            for name, definition in foreign_keys:
                quoted = connection.ops.quote_name(name)
                cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {quoted} {definition}")
        logger.info(
            "Rebuilt %d secondary event indexes and %d foreign keys", len(definitions), len(foreign_keys)
        )
