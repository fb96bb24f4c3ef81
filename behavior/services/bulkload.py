"""Bulk loads of events: chunks copied into the events table, by writer threads where safe.

:class:`ChunkLoader` and :func:`copy_chunk` store the chunks of ``import_events`` (one
transaction each; see their docstrings). Per chunk, the foreign-key checks may be done in
one query (:mod:`behavior.services.reference_locks`); the opt-in offline mode for initial
loads, with the indexes rebuilt after the load, is :mod:`behavior.services.deferred_indexes`.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, OperationalError, connection, connections, transaction

from behavior.models import Event
from behavior.services import partition_maintenance, partitions
from behavior.services.copy_format import copy_text, escape
from behavior.services.reference_locks import ReferenceLock, array_literal, lock_references, reference_locks
from behavior.services.storage import CONTEXT_INDEX, OCCURRED_AT_INDEX, column_list, context_json, store_rows

__all__ = ["ChunkLoader", "CopyChunk", "copy_chunk", "copy_line", "psycopg_errors"]

logger = logging.getLogger(__name__)


def copy_line(row: tuple) -> str:
    """One prepared row (``storage.COLUMNS`` order) as a line of text ``COPY``.

    The general form, for rows the import's fast path did not format itself (those that
    took :func:`behavior.services.ingest.prepare_rows`): the context as compact JSON,
    times in ISO 8601 with their offset.
    """
    fields = [copy_text(value) for value in row]
    fields[CONTEXT_INDEX] = escape(context_json(row[CONTEXT_INDEX]))
    return "\t".join(fields) + "\n"


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


def copy_chunk(chunk: CopyChunk) -> int:
    """Copy one chunk into the events table in one transaction; return how many rows were new.

    The payload is copied straight into the events table inside a savepoint: no staging
    table, no ``ON CONFLICT`` probe per row. When an event id is already stored (a
    re-import, or the same row in two chunks), the savepoint is rolled back, the stored
    ids are looked up in one query and the other rows copied: duplicates are counted
    exactly and the unique index still decides (``event_id``; ``(event_id, occurred_at)`` on
    a partitioned table, where a row whose id is stored at any time is left out here). The
    commit does not wait for the WAL flush (as ``store_rows(durable=False)``: a crash loses
    the last moments of an import, which re-running it restores).

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
        if bypass and lock_references(chunk.references):
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
        if rows and self.copy_text:
            # a historical log: its partitions are made before its rows arrive (on Postgres,
            # where the table is partitioned), not left to the DEFAULT partition
            moments = [row[OCCURRED_AT_INDEX] for row in rows]
            partition_maintenance.cover(partitions.EVENTS, min(moments), max(moments))
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
