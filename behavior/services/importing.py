"""Streaming CSV import of events (the service behind ``manage.py import_events``).

File format (DESIGN.md section 4): header ``user_id,item_id,event_type,timestamp`` plus
the optional columns ``value,session_id,event_id``, in any order.

- ``user_id`` is a username; empty means anonymous, and then ``session_id`` names the
  visitor (stored as both ``visitor_id`` and ``session_id``).
- ``item_id`` is the item key (``ITEM_KEY_FIELD``), ``timestamp`` unix seconds or ISO 8601.
- Without an ``event_id`` the id is a uuid5 of the row's content (user, item, type,
  normalized time, value, session), so importing the same file twice stores every event
  once. Two identical rows in one file are therefore one event.

The file is read and stored in chunks (``chunk_size`` rows): memory stays flat whatever
the file size. Rows that pass the fast path's checks (the same rules as
:func:`behavior.services.ingest.ingest_events`) are written as ``COPY`` text at once; every
other row is checked by :func:`behavior.services.ingest.prepare_rows` itself, for its exact
errors. A bad row is reported with its line number (the line its record ends on) and
never stops the import. Then all the valid rows of the chunk are stored together by
:class:`behavior.services.bulkload.ChunkLoader` (on Postgres: straight ``COPY`` into the
events table, by writer threads while the next chunk is read).

What a failure leaves behind: each chunk's events are stored in one transaction, all or
nothing. When storing a chunk fails (the database went away, a constraint), the import
stops with :class:`ImportStoreError` naming the chunk's lines: that chunk stored **no**
event; every chunk before it is stored; chunks after it are not, except that with writer
threads the one chunk a second writer was storing at the same moment may be. Users and
items created under ``create_missing`` are committed before their chunk's events and stay.
The import is idempotent, so running it again completes it without storing anything twice.

``create_missing`` creates unknown users (unusable password) and placeholder items
(:mod:`behavior.services.placeholders`: generic values for the required fields, then the
``PLACEHOLDER_ITEM_VALUES`` availability the model has, which the report names in
:attr:`ImportReport.placeholder_values`). Shops with richer item models should create items
first.

The work is split: this module reads the file and owns the errors; chunks are validated by
:class:`behavior.services.import_chunks.ChunkImporter`, whose hot loop is
:mod:`behavior.services.import_fastpath`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime

from django.db import DatabaseError

from behavior.services.bulkload import ChunkLoader
from behavior.services.collection import fewer_collections
from behavior.services.deferred_indexes import deferred_event_indexes
from behavior.services.import_chunks import ChunkImporter, ImportReport, RejectCallback

REQUIRED_COLUMNS = ("user_id", "item_id", "event_type", "timestamp")
OPTIONAL_COLUMNS = ("value", "session_id", "event_id")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (missing, unreadable, bad header)."""


class ImportStoreError(RuntimeError):
    """Storing one chunk failed; the import stopped (see the module docstring for what is stored)."""

    def __init__(self, lines: tuple[int, int] | None, stored: int, cause: BaseException) -> None:
        self.lines, self.stored = lines, stored
        where = f"lines {lines[0]}-{lines[1]}" if lines else "a chunk"
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(
            f"Storing the events of {where} failed ({reason}); none of them was stored. Earlier "
            f"chunks are stored ({stored} new events). Run the import again to complete it: rows "
            "already stored are recognised and never stored twice."
        )


def import_events_csv(
    path: str,
    *,
    create_missing: bool = False,
    chunk_size: int = 20_000,
    on_rejected: RejectCallback | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
    defer_indexes: bool = False,
    writers: int = 2,
) -> ImportReport:
    """Import one CSV file in chunks; see the module docstring for the format and rules.

    ``on_rejected(line_number, errors)`` is called for every rejected row (errors keyed
    by CSV column), ``on_progress(rows_done, bytes_read)`` after every chunk. Raises
    :class:`ImportFileError` for a missing/unreadable file or a bad header.
    ``defer_indexes`` runs the whole import in one transaction with the secondary event
    indexes rebuilt at the end (see :mod:`behavior.services.deferred_indexes`: locks the events table).
    ``writers``: threads that store chunks while the next one is prepared (Postgres,
    outside a transaction; see :class:`behavior.services.bulkload.ChunkLoader`); 0 stores inline.
    """
    if defer_indexes:
        with deferred_event_indexes():
            return import_events_csv(
                path,
                create_missing=create_missing,
                chunk_size=chunk_size,
                on_rejected=on_rejected,
                on_progress=on_progress,
                now=now,
            )
    try:
        binary = open(path, "rb")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:
        raise ImportFileError(f"Cannot open {path}: {exc.strerror or exc}") from exc
    with binary, fewer_collections():
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text)
        columns = _read_header(reader, path)
        report = ImportReport()
        loader = ChunkLoader(writers)
        importer = ChunkImporter(
            columns,
            create_missing=create_missing,
            report=report,
            on_rejected=on_rejected,
            now=now,
            loader=loader,
        )
        chunk: list[tuple[int, list[str]]] = []
        try:
            with loader:
                try:
                    for row in reader:
                        if not row or (len(row) == 1 and not row[0].strip()):
                            continue  # blank line
                        chunk.append((reader.line_num, row))
                        if len(chunk) >= chunk_size:
                            importer.run(chunk)
                            chunk = []
                            if on_progress:
                                on_progress(report.rows, binary.tell())
                except csv.Error as exc:
                    raise ImportFileError(f"Unreadable CSV at line {reader.line_num}: {exc}") from exc
                if chunk:
                    importer.run(chunk)
        except DatabaseError as exc:
            # A writer's failure names its chunk; otherwise it was the chunk being prepared.
            lines = loader.failed_lines or ((chunk[0][0], chunk[-1][0]) if chunk else None)
            raise ImportStoreError(lines, loader.inserted, exc) from exc
        # Every chunk is stored now (the writers are joined): count what the fast path stored.
        report.accepted += loader.inserted
        report.duplicates += loader.offered - loader.inserted
        if on_progress:
            on_progress(report.rows, binary.tell())
        return report


def _read_header(reader: Iterator[list[str]], path: str) -> dict[str, int]:
    """Column name -> index, or ImportFileError naming what is wrong with line 1."""
    try:
        header = next(reader, None)
    except (csv.Error, OSError) as exc:
        raise ImportFileError(f"Cannot read the header of {path}: {exc}") from exc
    if not header:
        raise ImportFileError(f"{path} is empty: expected a header line {','.join(REQUIRED_COLUMNS)}")
    names = [name.strip() for name in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    unknown = [c for c in names if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    repeated = sorted({c for c in names if names.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if problems:
        raise ImportFileError(
            f"Bad header on line 1: {'; '.join(problems)}. Expected {','.join(REQUIRED_COLUMNS)} "
            f"and optionally {','.join(OPTIONAL_COLUMNS)}."
        )
    return {name: i for i, name in enumerate(names)}
