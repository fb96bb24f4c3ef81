"""Offline bulk loads: the events table's secondary indexes and foreign keys rebuilt after a load.

Inserting a row into ``behavior_event`` updates eight indexes; for a load of millions of
rows, maintaining the five non-unique b-trees row by row costs more than building them
once afterwards (a sorted build). :func:`deferred_event_indexes` does that *safely*:

- everything happens in ONE transaction (Postgres DDL is transactional): if the load
  fails or the process dies, the indexes were never dropped as far as anyone can see;
- the primary key and the unique ``event_id`` index stay (idempotency depends on it);
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
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, OperationalError, connection, connections, transaction

from behavior import services
from behavior.models import Event

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
        return list(cursor.fetchall())


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


# --- chunked loads: one transaction per chunk, optionally in writer threads -----------------


def copy_text(value: Any) -> str:
    """``value`` as a field of Postgres' text ``COPY`` format (``\\N`` for NULL, escapes applied)."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).translate(_COPY_ESCAPES)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_sql(table: str) -> str:
    """``COPY table (event columns in services.COLUMNS order) FROM STDIN``."""
    by_attname = {f.attname: f for f in Event._meta.concrete_fields}
    quote = connection.ops.quote_name
    columns = ", ".join(quote(by_attname[name].column) for name in services.COLUMNS)
    return f"COPY {table} ({columns}) FROM STDIN"


def store_chunk(rows: list[tuple], payload: bytes | None) -> int:
    """Store one chunk of prepared rows in one transaction; return how many were new.

    ``payload`` is the same rows in text ``COPY`` format (``services.COLUMNS`` order), or
    None. On Postgres the payload is copied straight into the events table inside a
    savepoint: no staging table, no ``ON CONFLICT`` probe per row. When an event id is
    already stored (a re-import, or the same row in two chunks), the savepoint is rolled
    back and the chunk goes through ``services.store_rows`` (staging table plus
    ``INSERT ... ON CONFLICT DO NOTHING``), which counts the duplicates exactly. The
    commit does not wait for the WAL flush (``durable=False``, see ``services.store_rows``).
    """
    if payload is None or connection.vendor != "postgresql":
        return services.store_rows(rows, durable=False)[0] if rows else 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
        try:
            table = connection.ops.quote_name(Event._meta.db_table)
            with (
                transaction.atomic(),
                connection.wrap_database_errors,  # psycopg's errors as Django's, like execute()
                connection.cursor() as cursor,
                cursor.copy(_copy_sql(table)) as copy,
            ):
                copy.write(payload)
            return len(rows)
        except IntegrityError as exc:
            if not isinstance(exc.__cause__, psycopg_errors().UniqueViolation):
                raise
        return services.store_rows(rows, durable=False)[0]


def psycopg_errors() -> Any:
    """``psycopg.errors`` (imported lazily: only the Postgres paths need it)."""
    import psycopg

    return psycopg.errors


class ChunkLoader:
    """Stores chunks with :func:`store_chunk`, in writer threads where that is safe.

    Threads pay off on Postgres: the server indexes one chunk while Python prepares the
    next (psycopg releases the GIL while it waits for the server), and two writers keep
    two backends busy. Each writer has its own connection, so each chunk is its own
    transaction, exactly as inline. Inline (``writers=0``, other databases, or a caller
    inside a transaction whose uncommitted rows other connections could not see) every
    chunk is stored before ``submit`` returns.

    At most ``writers`` chunks wait in the queue (memory stays flat). A writer's error is
    raised by the next ``submit`` or by ``close``; chunks already queued are still stored,
    as they would have been before the error inline (every chunk is all or nothing, and
    the import is idempotent, so re-running it completes the rest).
    """

    # Deadlock between two writers (the same event id in two chunks in flight): retried.
    RETRIES = 3

    def __init__(self, writers: int = 2) -> None:
        self.inserted = 0
        self.offered = 0
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        # Chunks may come with their COPY text (see store_chunk): worth preparing on Postgres only.
        self.copy_text = connection.vendor == "postgresql"
        if writers > 0 and connection.vendor == "postgresql" and not connection.in_atomic_block:
            self._jobs: queue.Queue = queue.Queue(maxsize=writers)
            self._threads = [
                threading.Thread(target=self._work, name=f"import-writer-{i}", daemon=True)
                for i in range(writers)
            ]
            for thread in self._threads:
                thread.start()

    def submit(self, rows: list[tuple], payload: bytes | None) -> None:
        """Store one chunk now (inline) or queue it for a writer."""
        if self._error is not None:
            raise self._error
        if not self._threads:
            self._count(len(rows), store_chunk(rows, payload))
        else:
            self._jobs.put((rows, payload))

    def close(self) -> None:
        """Wait for the queued chunks, end the writers; raise the first writer error."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        if self._error is not None:
            raise self._error

    def __enter__(self) -> ChunkLoader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _count(self, offered: int, inserted: int) -> None:
        with self._lock:
            self.offered += offered
            self.inserted += inserted

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                if self._error is None:
                    try:
                        self._count(len(job[0]), self._store_retrying(*job))
                    except BaseException as exc:  # handed to the importing thread
                        self._error = self._error or exc
        finally:
            connections.close_all()  # this thread's connections only

    def _store_retrying(self, rows: list[tuple], payload: bytes | None) -> int:
        for attempt in range(self.RETRIES + 1):
            try:
                return store_chunk(rows, payload)
            except OperationalError as exc:
                deadlock = isinstance(exc.__cause__, psycopg_errors().DeadlockDetected)
                if attempt == self.RETRIES or not deadlock:
                    raise
                logger.info("Import chunk deadlocked with another writer; retrying")
        raise AssertionError("unreachable")
