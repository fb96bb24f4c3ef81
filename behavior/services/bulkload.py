"""Bulk loads of events: chunks copied by writer threads; offline, indexes rebuilt after a load.

:class:`ChunkLoader` and :func:`copy_chunk` store the chunks of ``import_events`` (one
transaction each; see their docstrings). :func:`deferred_event_indexes` is the opt-in
mode for initial loads:

Inserting a row into ``behavior_event`` updates each of its indexes; for a load of millions
of rows, maintaining the non-unique b-trees row by row costs more than building them
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
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, OperationalError, connection, connections, transaction

from behavior.models import Event
from behavior.services.copy_format import copy_text, escape
from behavior.services.storage import (
    CONTEXT_INDEX,
    column_list,
    concrete_fields,
    context_json,
    store_rows,
)

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


def copy_line(row: tuple) -> str:
    """One prepared row (``storage.COLUMNS`` order) as a line of text ``COPY``.

    The general form, for rows the import's fast path did not format itself (those that
    took :func:`behavior.services.ingest.prepare_rows`): the context as compact JSON,
    times in ISO 8601 with their offset.
    """
    fields = [copy_text(value) for value in row]
    fields[CONTEXT_INDEX] = escape(context_json(row[CONTEXT_INDEX]))
    return "\t".join(fields) + "\n"


@dataclass(frozen=True)
class ReferenceLock:
    """One single-column foreign key of the events table, checked for a whole chunk at once.

    ``sql`` takes the chunk's distinct non-null values of column ``index`` (of
    ``COLUMNS``) and answers how many referenced rows exist, locking them
    ``FOR KEY SHARE`` until the commit: the very lock and check of Postgres' per-row
    foreign-key trigger, once per chunk instead of once per row.
    """

    index: int
    sql: str


def reference_locks() -> list[ReferenceLock] | None:
    """Lock queries standing in for the events table's foreign-key triggers, or None.

    None (keep the triggers) unless the role may ``SET session_replication_role``
    (superuser, or PG 15's ``GRANT SET ON PARAMETER``), every foreign key is a
    single column of ``COLUMNS``, and the table has no trigger or rule of its
    own that replica mode would also switch off. Postgres only.
    """
    if connection.vendor != "postgresql":
        return None
    table = Event._meta.db_table
    columns = {f.column: i for i, f in enumerate(concrete_fields())}
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('is_superuser') = 'on'")
        allowed = cursor.fetchone()[0]
        if not allowed and getattr(connection, "pg_version", 0) >= 150000:
            cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
            allowed = cursor.fetchone()[0]
        cursor.execute(
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal)"
            " + (SELECT count(*) FROM pg_rules WHERE tablename = %s)",
            [table, table],
        )
        if not allowed or cursor.fetchone()[0]:
            return None
        cursor.execute(
            "SELECT a.attname, r.relname, ra.attname, format_type(ra.atttypid, ra.atttypmod), "
            "cardinality(c.conkey) FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "JOIN pg_class r ON r.oid = c.confrelid "
            "JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1] "
            "WHERE c.conrelid = %s::regclass AND c.contype = 'f'",
            [table],
        )
        keys = cursor.fetchall()
    quote = connection.ops.quote_name
    locks = []
    for column, referenced, referenced_column, type_name, width in keys:
        if width != 1 or column not in columns:
            return None
        locks.append(
            ReferenceLock(
                index=columns[column],
                sql=f"SELECT count(*) FROM (SELECT 1 FROM {quote(referenced)} "
                # IN (SELECT unnest(...)): the array is parsed once (as "= ANY(...)" it is
                # not a constant, and a sequential scan would parse it for every row).
                f"WHERE {quote(referenced_column)} IN (SELECT unnest(%s::text::{type_name}[])) "
                "FOR KEY SHARE) AS locked",
            )
        )
    return locks


@dataclass
class CopyChunk:
    """One chunk ready for ``COPY``: its rows as COPY text, how many, and what they refer to.

    ``references`` pairs each :class:`ReferenceLock` with the chunk's distinct values of
    its column, taken while the rows still existed: the row tuples themselves are not kept
    (a chunk waiting for a writer costs its text only).
    """

    payload: bytes
    count: int
    references: list[tuple[ReferenceLock, list[Any]]]

    @classmethod
    def of(cls, rows: list[tuple], payload: bytes, locks: list[ReferenceLock] | None) -> CopyChunk:
        references = [(lock, list({row[lock.index] for row in rows} - {None})) for lock in locks or ()]
        return cls(payload, len(rows), references)


def array_literal(values: list[Any]) -> str:
    """``values`` as the text of a Postgres array: ``{1,2}`` for integers, else ``{"a","b"}``.

    Thousands of ids per chunk: one string parameter costs a fraction of adapting the
    list value by value, and the quoted form suits any other key type (the query casts it).
    """
    if set(map(type, values)) <= {int}:  # the usual integer keys need no quoting
        return "{" + ",".join(map(str, values)) + "}"
    quoted = (str(value).replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{text}"' for text in quoted) + "}"


def _lock_references(chunk: CopyChunk) -> bool:
    """Lock every row the chunk refers to; False if one is missing (then the triggers decide)."""
    with connection.cursor() as cursor:
        for lock, values in chunk.references:
            if values:
                cursor.execute(lock.sql, [array_literal(values)])
                if cursor.fetchone()[0] != len(values):
                    return False
    return True


def copy_chunk(chunk: CopyChunk) -> int:
    """Copy one chunk into the events table in one transaction; return how many rows were new.

    The payload is copied straight into the events table inside a savepoint: no staging
    table, no ``ON CONFLICT`` probe per row. When an event id is already stored (a
    re-import, or the same row in two chunks), the savepoint is rolled back, the stored
    ids are looked up in one query and the other rows copied: duplicates are counted
    exactly and the unique index on ``event_id`` still decides. The commit does not wait
    for the WAL flush (as ``store_rows(durable=False)``: a crash loses the last
    moments of an import, which re-running it restores).

    With ``references`` and a chunk that is a transaction of its own, the referenced
    users and items are checked and locked once for the chunk, and the per-row
    foreign-key triggers are switched off for this transaction only (``SET LOCAL
    session_replication_role = replica``, as ``pg_restore --disable-triggers`` does):
    they cost Postgres about a third of its work per row. A missing referenced row
    leaves the triggers on, which then fail the chunk as they always did.
    """
    # Only a chunk that commits on its own may switch the triggers off: SET LOCAL lasts
    # until the end of the outermost transaction, which a caller's would outlive.
    bypass = bool(chunk.references) and not connection.in_atomic_block
    table = connection.ops.quote_name(Event._meta.db_table)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
        if bypass and _lock_references(chunk):
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL session_replication_role = replica")
        payload, count = chunk.payload, chunk.count
        for attempt in range(_COPY_ATTEMPTS):
            try:
                with transaction.atomic():
                    _copy(payload, table)
                return count
            except IntegrityError as exc:
                stored = isinstance(exc.__cause__, psycopg_errors().UniqueViolation)
                if not stored or attempt == _COPY_ATTEMPTS - 1:
                    raise
            # Some event ids are stored already: copy the rest (a writer of the same ids
            # may commit in between, hence the attempts).
            payload, count = _without_stored_events(payload, table)
            if not count:
                return 0
        raise AssertionError("unreachable")


# Attempts at copying one chunk whose event ids other writers keep storing meanwhile.
_COPY_ATTEMPTS = 4


def _without_stored_events(payload: bytes, table: str) -> tuple[bytes, int]:
    """The COPY lines of ``payload`` whose event id (the first field) is not stored; how many."""
    lines = payload.split(b"\n")[:-1]  # COPY text escapes newlines in values: one line per row
    ids = array_literal([line.split(b"\t", 1)[0].decode() for line in lines])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT k.i FROM unnest(%s::text::uuid[]) WITH ORDINALITY AS k(id, i) "
            f"WHERE EXISTS (SELECT 1 FROM {table} e WHERE e.event_id = k.id)",
            [ids],
        )
        stored = {i - 1 for (i,) in cursor.fetchall()}
    kept = [line for i, line in enumerate(lines) if i not in stored]
    return b"".join(line + b"\n" for line in kept), len(kept)


def _copy(payload: bytes, table: str) -> None:
    with (
        connection.wrap_database_errors,  # psycopg's errors as Django's, like execute()
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({column_list()}) FROM STDIN") as copy,
    ):
        copy.write(payload)


def psycopg_errors() -> Any:
    """``psycopg.errors`` (imported lazily: only the Postgres paths need it)."""
    import psycopg

    return psycopg.errors


class ChunkLoader:
    """Stores chunks (:func:`copy_chunk` on Postgres), in writer threads where that is safe.

    Threads pay off on Postgres: the server indexes one chunk while Python prepares the
    next (psycopg releases the GIL while it waits for the server), and two writers keep
    two backends busy. Each writer has its own connection, so each chunk is its own
    transaction, exactly as inline. Inline (``writers=0``, other databases, or a caller
    inside a transaction whose uncommitted rows other connections could not see) every
    chunk is stored before ``submit`` returns.

    At most one chunk waits for a writer (memory stays flat). A writer's error is
    raised by the next ``submit`` or by ``close``, and ``failed_lines`` then names the
    lines of the chunk that failed (when ``submit`` was given them). Every chunk is all or
    nothing: the failed one stored none of its rows; chunks submitted after it are not
    stored; the one other chunk a second writer was storing at that moment may be. The
    import is idempotent, so re-running it completes the rest.
    """

    # Deadlock between two writers (the same event id in two chunks in flight): retried.
    RETRIES = 3

    def __init__(self, writers: int = 2) -> None:
        self.inserted = 0
        self.offered = 0
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self.failed_lines: tuple[int, int] | None = None
        self._threads: list[threading.Thread] = []
        # Chunks may come with their COPY text (see copy_chunk): worth preparing on Postgres only.
        self.copy_text = connection.vendor == "postgresql"
        # Computed here, in the importing thread, once for the whole load.
        self.locks = reference_locks() if self.copy_text else None
        if writers > 0 and connection.vendor == "postgresql" and not connection.in_atomic_block:
            # One chunk waiting is enough to keep the writers busy (memory stays flat).
            self._jobs: queue.Queue = queue.Queue(maxsize=1)
            self._threads = [
                threading.Thread(target=self._work, name=f"import-writer-{i}", daemon=True)
                for i in range(writers)
            ]
            for thread in self._threads:
                thread.start()

    def submit(self, rows: list[tuple], payload: bytes | None, lines: tuple[int, int] | None = None) -> None:
        """Store one chunk (``payload``: its COPY text, or None) now, or queue it for a writer.

        ``lines``: the first and last line of the file the chunk came from, for the error.
        """
        if self._error is not None:
            raise self._error
        job: CopyChunk | list[tuple] = rows
        if payload is not None and self.copy_text:
            job = CopyChunk.of(rows, payload, self.locks)
        if self._threads:
            self._jobs.put((job, lines))
        else:
            try:
                self._count(job, _store(job))
            except BaseException:
                self.failed_lines = lines
                raise

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

    def _count(self, job: CopyChunk | list[tuple], inserted: int) -> None:
        with self._lock:
            self.offered += job.count if isinstance(job, CopyChunk) else len(job)
            self.inserted += inserted

    def _work(self) -> None:
        try:
            while (entry := self._jobs.get()) is not None:
                job, lines = entry
                if self._error is None:
                    try:
                        self._count(job, self._store_retrying(job))
                    except BaseException as exc:  # handed to the importing thread
                        with self._lock:
                            if self._error is None:
                                self._error, self.failed_lines = exc, lines
        finally:
            connections.close_all()  # this thread's connections only

    def _store_retrying(self, job: CopyChunk | list[tuple]) -> int:
        for attempt in range(self.RETRIES + 1):
            try:
                return _store(job)
            except OperationalError as exc:
                deadlock = isinstance(exc.__cause__, psycopg_errors().DeadlockDetected)
                if attempt == self.RETRIES or not deadlock:
                    raise
                logger.info("Import chunk deadlocked with another writer; retrying")
        raise AssertionError("unreachable")


def _store(job: CopyChunk | list[tuple]) -> int:
    if isinstance(job, CopyChunk):
        return copy_chunk(job)
    return store_rows(job, durable=False)[0] if job else 0
