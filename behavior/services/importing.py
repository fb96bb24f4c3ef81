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

``create_missing`` creates unknown users (unusable password) and placeholder items. A
placeholder item gets its key field set; every other *required* field (no default, not
nullable, not blank-able) is filled generically: text fields with the key, numbers with 0,
booleans with False, a foreign key with the first existing related row (or a placeholder
related row built by the same rules). Other field types cannot be guessed: such rows are
rejected with a clear error. Shops with richer item models should create items first.
Then ``PLACEHOLDER_ITEM_VALUES`` sets the availability fields the model has (by default
active, available and one in stock): an event proves that the item existed, and an imported
history whose items all start out of stock would make every recommendation list empty
without a word. The report names the values set (:attr:`ImportReport.placeholder_values`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha1
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import DatabaseError, models, transaction
from django.utils import timezone

from behavior.conf import behavior_settings
from behavior.items import get_item_model, item_ids_by_key, item_key_field
from behavior.models import EventOrigin
from behavior.services import ingest as services
from behavior.services import validation as v
from behavior.services.bulkload import ChunkLoader, copy_line, deferred_event_indexes
from behavior.services.collection import fewer_collections
from behavior.services.copy_format import NULL, copy_text
from behavior.services.storage import context_json

REQUIRED_COLUMNS = ("user_id", "item_id", "event_type", "timestamp")
OPTIONAL_COLUMNS = ("value", "session_id", "event_id")
# uuid5 namespace of event ids derived from row content (fixed forever: it is the idempotency key).
IMPORT_NAMESPACE = uuid.UUID("5f0b7c1e-9a43-4d5e-8d1c-2b7f3e0c6a91")
# API field names -> CSV column names, for the report.
_FIELD_TO_COLUMN = {"item": "item_id", "occurred_at": "timestamp", "visitor_id": "session_id"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution
# Most user/item ids kept between chunks (then the cache starts afresh): bounds memory.
_CACHE_LIMIT = 500_000
# sha1 state after the namespace bytes: copying it costs less than hashing them again per row.
_NAMESPACE_SHA1 = sha1(IMPORT_NAMESPACE.bytes)
# RFC 4122 variant bits (10xx) of the 17th hex digit, as uuid.UUID(bytes=..., version=5) sets them.
_UUID_VARIANT = {digit: f"{int(digit, 16) & 0x3 | 0x8:x}" for digit in "0123456789abcdef"}


def content_event_id(content: str) -> str:
    """``uuid.uuid5(IMPORT_NAMESPACE, content).hex``, without building UUID objects.

    The same bits as :func:`uuid.uuid5` (a test pins the equality): these ids are the
    idempotency key of every import ever made, so they must never change.
    """
    # The first 16 bytes of the digest in hex, with the version digit set to 5 and the
    # variant bits of the 17th digit: string slicing costs less than integer masking.
    hasher = _NAMESPACE_SHA1.copy()
    hasher.update(content.encode("utf-8"))
    digest = hasher.hexdigest()
    return f"{digest[:12]}5{digest[13:16]}{_UUID_VARIANT[digest[16]]}{digest[17:32]}"


# The columns every imported row shares after received_at (storage.COLUMNS order):
# recommendation_id NULL, placement "", position NULL, context {}, is_bot false, origin "import";
# and their COPY text, formatted once.
_SHARED_TAIL: tuple[Any, ...] = (None, "", None, {}, False, EventOrigin.IMPORT.value)
_CONSTANT_TAIL = (
    "".join(f"\t{copy_text(context_json(x) if isinstance(x, dict) else x)}" for x in _SHARED_TAIL) + "\n"
)
# Cache entries of users and items: (pk, the pk as COPY text). Anonymous rows / rows without item.
_ANONYMOUS = (None, NULL)
_NO_ITEM = (None, NULL)
# "YYYY-MM-DD " of a unix day number, and "HH:MM:SS+00" of every second of a day: a
# timestamp's COPY text is then two look-ups instead of formatting a datetime.
_DAY_TEXT: dict[int, str] = {}
_TIME_OF_DAY: list[str] = []


def _day_text(day: int) -> str:
    if len(_DAY_TEXT) > 100_000:
        _DAY_TEXT.clear()
    text = _DAY_TEXT[day] = f"{_EPOCH + timedelta(days=day):%Y-%m-%d} "
    return text


def _time_of_day_text() -> list[str]:
    if not _TIME_OF_DAY:
        minutes = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
        seconds = [f"{s:02d}+00" for s in range(60)]
        _TIME_OF_DAY.extend([minute + second for minute in minutes for second in seconds])
    return _TIME_OF_DAY


def _remember(cache: dict[str, tuple[Any, str]], found: dict[str, Any]) -> None:
    """Add key -> (pk, COPY text of pk) entries; start afresh beyond ``_CACHE_LIMIT`` (bounded memory)."""
    if len(cache) > _CACHE_LIMIT:
        cache.clear()
    for key, pk in found.items():
        cache[key] = (pk, copy_text(pk))


class _Batch:
    """The rows of one chunk being prepared by the fast path."""

    def __init__(self, now: datetime, *, copy_text: bool) -> None:
        self.now = now
        self.now_text = now.isoformat()
        # Unix seconds of the latest accepted time (a whole second is later iff it is greater).
        self.latest_second = (v.Limits.for_now(now, historical=True).latest - _EPOCH) // timedelta(seconds=1)
        self.copy_text = copy_text
        self.rows: list[tuple] = []
        self.lines: list[str] = []
        self.seen: set[str] = set()
        self.duplicates = 0


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


@dataclass
class ImportReport:
    """Totals of one import; rejected rows are reported through the callback as they happen."""

    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    users_created: int = 0
    items_created: int = 0
    # the PLACEHOLDER_ITEM_VALUES the created items got (the fields the item model has)
    placeholder_values: dict[str, Any] = dataclasses.field(default_factory=dict)


RejectCallback = Callable[[int, dict[str, list[str]]], None]


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
    indexes rebuilt at the end (see :mod:`behavior.services.bulkload`: locks the events table).
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
        importer = _ChunkImporter(
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


class _ChunkImporter:
    """Turns chunks of CSV rows into raw events and stores them through ``ingest_events``."""

    def __init__(
        self,
        columns: dict[str, int],
        *,
        create_missing: bool,
        report: ImportReport,
        on_rejected: RejectCallback | None,
        now: datetime | None,
        loader: ChunkLoader,
    ) -> None:
        self.columns = columns
        self.width = max(columns.values()) + 1
        self.create_missing = create_missing
        self.report = report
        self.on_rejected = on_rejected
        self.now = now
        self.user_model = get_user_model()
        self.username_field = self.user_model.USERNAME_FIELD
        self.loader = loader
        # Keys already resolved in earlier chunks (a million-row file names the same few
        # thousand users and items again and again): key -> (pk, pk as COPY text); only
        # positive answers are kept.
        self.users: dict[str, tuple[Any, str]] = {}
        self.items: dict[str, tuple[Any, str]] = {}

    def _reject(self, line: int, errors: dict[str, list[str]]) -> None:
        self.report.rejected += 1
        self.pending.append((line, errors))

    def run(self, chunk: list[tuple[int, list[str]]]) -> None:
        """Validate and store one chunk; report its rejected rows in line order."""
        self.pending: list[tuple[int, dict[str, list[str]]]] = []
        try:
            self._run(chunk)
        finally:
            if self.on_rejected is not None:
                for line, errors in sorted(self.pending, key=lambda entry: entry[0]):
                    self.on_rejected(line, errors)

    def _run(self, chunk: list[tuple[int, list[str]]]) -> None:
        self.report.rows += len(chunk)
        batch = _Batch(self.now or timezone.now(), copy_text=self.loader.copy_text)
        slow = self._run_fast(chunk, batch)
        if slow:
            self._run_generic(slow, batch)
        self._submit(batch, (chunk[0][0], chunk[-1][0]))

    def _submit(self, batch: _Batch, lines: tuple[int, int]) -> None:
        """Hand every row of the chunk to the loader at once: one transaction, all or nothing."""
        self.report.duplicates += batch.duplicates
        rows = batch.rows
        for row_filter in services.ROW_FILTERS:  # privacy hook (erased shoppers), as in ingest_events
            rows = row_filter(rows)
        if rows:
            # The preformatted COPY text is only valid for the rows exactly as prepared.
            payload = "".join(batch.lines).encode() if rows is batch.rows and batch.lines else None
            self.loader.submit(rows, payload, lines)

    def _run_fast(self, chunk: list[tuple[int, list[str]]], batch: _Batch) -> list[tuple[int, list[str]]]:
        """Prepare the rows that are certainly valid; return the others for the generic path.

        The hot loop of a large import (see :meth:`_prepare`). Users and items come from
        caches filled by earlier chunks; rows naming one not cached yet pass again once the
        missing keys are looked up (and created under ``--create-missing``) in one query.
        Any row that a check does not accept outright (short/long rows, an unknown user or
        item, an unusual timestamp, a bad value...) goes to :meth:`_run_generic`, the
        original per-event validation, so the accepted values and every error message
        stay exactly as they were.
        """
        slow: list[tuple[int, list[str]]] = []
        misses = self._prepare(chunk, batch, slow, final=False)
        if misses:
            self._resolve(misses)
            self._prepare(misses, batch, slow, final=True)
        return slow

    def _prepare(
        self, chunk: list[tuple[int, list[str]]], batch: _Batch, slow: list, *, final: bool
    ) -> list[tuple[int, list[str]]]:
        """Add the rows that pass every fast check to ``batch``; the others to ``slow``.

        Returns the rows that passed every check except a user or item that is not
        cached (unless ``final``: then they are slow too). Rows are checked in full
        before their user and item are looked at, so only rows that the generic path
        would also accept that far may create users or items under ``--create-missing``.
        Per row: plain string checks, dict look-ups, uuid5 from one sha1, one tuple (the
        row for ``services.ROW_FILTERS`` and the non-COPY paths) and, on Postgres, its
        ``COPY`` line.
        """
        col = self.columns
        i_user, i_item, i_type, i_time = col["user_id"], col["item_id"], col["event_type"], col["timestamp"]
        i_value, i_session, i_event = col.get("value"), col.get("session_id"), col.get("event_id")
        width = len(col)
        users, items = self.users, self.items
        event_types, item_required, is_identifier = v.EVENT_TYPES, v.item_required, v.is_identifier
        latest, now, now_text, copy = batch.latest_second, batch.now, batch.now_text, batch.copy_text
        seen, rows, lines = batch.seen, batch.rows, batch.lines
        day_text, time_of_day = _DAY_TEXT, _time_of_day_text()
        from_timestamp = datetime.fromtimestamp  # == _EPOCH + timedelta(seconds=...) for whole seconds
        misses: list[tuple[int, list[str]]] = []
        for entry in chunk:
            row = entry[1]
            if len(row) != width:
                slow.append(entry)
                continue
            username = row[i_user].strip()
            item = row[i_item].strip()
            event_type = row[i_type].strip()
            stamp = row[i_time].strip()
            session = row[i_session].strip() if i_session is not None else ""
            if (
                (not username and not session)
                or event_type not in event_types
                or (not item and item_required(event_type))
                or (session and not is_identifier(session))
                or not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 11)
                or (seconds := int(stamp)) > latest
            ):
                slow.append(entry)
                continue
            user = users.get(username) if username else _ANONYMOUS
            found = items.get(item) if item else _NO_ITEM
            if user is None or found is None:
                if final or not v.is_item_key(username or "-") or not v.is_item_key(item or "-"):
                    slow.append(entry)
                else:
                    misses.append(entry)
                continue
            value = row[i_value].strip() if i_value is not None else ""
            amount = None
            if value:
                try:
                    amount = v.clean_value(value)
                except v.FieldError:
                    slow.append(entry)
                    continue
            event_id = row[i_event].strip() if i_event is not None else ""
            if event_id:
                try:
                    key = v.clean_uuid(event_id).hex
                except v.FieldError:
                    slow.append(entry)
                    continue
            else:
                # seconds * 10**6 == (moment - _EPOCH) // _MICROSECOND, as in _run_generic
                key = content_event_id(
                    f"{username}\x1f{item}\x1f{event_type}\x1f{seconds * 1_000_000}\x1f{value}\x1f{session}"
                )
            if key in seen:
                batch.duplicates += 1
                continue
            seen.add(key)
            visitor = "" if username else session
            rows.append(
                (
                    key,
                    user[0],
                    visitor,
                    session,
                    found[0],
                    event_type,
                    amount,
                    1,
                    from_timestamp(seconds, UTC),
                    now,
                    None,  # the values of _SHARED_TAIL, with a context dict of the row's own
                    "",
                    None,
                    {},
                    False,
                    EventOrigin.IMPORT.value,
                )
            )
            if copy:
                day, second = divmod(seconds, 86_400)
                date = day_text.get(day) or _day_text(day)
                amount_text = NULL if amount is None else amount
                lines.append(
                    f"{key}\t{user[1]}\t{visitor}\t{session}\t{found[1]}\t{event_type}\t{amount_text}"
                    f"\t1\t{date}{time_of_day[second]}\t{now_text}{_CONSTANT_TAIL}"
                )
        return misses

    def _resolve(self, misses: list[tuple[int, list[str]]]) -> None:
        """Look up (or create, under ``--create-missing``) the users and items of ``misses``."""
        i_user, i_item = self.columns["user_id"], self.columns["item_id"]
        names = {n for n in (row[i_user].strip() for _, row in misses) if n and n not in self.users}
        keys = {k for k in (row[i_item].strip() for _, row in misses) if k and k not in self.items}
        if names:
            _remember(self.users, self._users(names))
        if keys:
            if self.create_missing:
                self._create_items(keys)
            _remember(self.items, item_ids_by_key(keys))

    def _run_generic(self, chunk: list[tuple[int, list[str]]], batch: _Batch) -> None:
        """The per-event checks of :func:`behavior.services.ingest.ingest_events` (exact error messages).

        The valid rows join ``batch`` (stored with the fast rows, in the chunk's transaction).
        """
        col = self.columns
        i_user, i_item, i_type, i_time = col["user_id"], col["item_id"], col["event_type"], col["timestamp"]
        i_value, i_session, i_event = col.get("value"), col.get("session_id"), col.get("event_id")
        parsed: list[tuple[int, str, str, str, Any, str, str, str]] = []
        for line, row in chunk:
            if len(row) < self.width:
                row = row + [""] * (self.width - len(row))
            elif len(row) > len(col):
                self._reject(line, {"row": [f"Has {len(row)} fields; the header has {len(col)}."]})
                continue
            username = row[i_user].strip()
            session = row[i_session].strip() if i_session is not None else ""
            if not username and not session:
                self._reject(line, {"session_id": ["Required when user_id is empty (it names the visitor)."]})
                continue
            try:
                moment = v.parse_timestamp(row[i_time].strip())
            except v.FieldError as exc:
                self._reject(line, {"timestamp": [str(exc)]})
                continue
            parsed.append(
                (
                    line,
                    username,
                    row[i_item].strip(),
                    row[i_type].strip(),
                    moment,
                    row[i_value].strip() if i_value is not None else "",
                    session,
                    row[i_event].strip() if i_event is not None else "",
                )
            )
        if not parsed:
            return
        users = self._users({p[1] for p in parsed if p[1]})
        if self.create_missing:
            self._create_items({p[2] for p in parsed if p[2]})

        raws: list[dict[str, Any]] = []
        lines: list[int] = []
        for line, username, item, event_type, moment, value, session, event_id in parsed:
            user_pk = None
            if username:
                user_pk = users.get(username)
                if user_pk is None:
                    self._reject(line, {"user_id": [f"Unknown user {username!r}."]})
                    continue
            identifier: str | uuid.UUID = event_id
            if not identifier:
                micros = (moment - _EPOCH) // _MICROSECOND
                content = f"{username}\x1f{item}\x1f{event_type}\x1f{micros}\x1f{value}\x1f{session}"
                identifier = uuid.uuid5(IMPORT_NAMESPACE, content)
            raws.append(
                {
                    "event_id": identifier,
                    "user_id": user_pk,
                    "item": item,
                    "event_type": event_type,
                    "occurred_at": moment,
                    "value": value,
                    "session_id": session,
                    "visitor_id": "" if username else session,
                }
            )
            lines.append(line)
        if not raws:
            return
        prepared = services.prepare_rows(
            raws, trusted=True, historical=True, now=batch.now, origin=EventOrigin.IMPORT.value
        )
        for entry in prepared.rejected:
            errors = {_FIELD_TO_COLUMN.get(k, k): reasons for k, reasons in entry["errors"].items()}
            self._reject(lines[entry["index"]], errors)
        batch.duplicates += prepared.duplicates
        for stored in prepared.rows:
            key = stored[0].hex  # the fast path's form of an event id
            if key in batch.seen:  # the same event as a fast row of this chunk
                batch.duplicates += 1
                continue
            batch.seen.add(key)
            batch.rows.append(stored)
            if batch.copy_text:
                batch.lines.append(copy_line(stored))

    def _users(self, usernames: set[str]) -> dict[str, Any]:
        """Username -> user pk, creating the missing users when asked to."""
        if not usernames:
            return {}
        manager = self.user_model._default_manager
        found = dict(
            manager.filter(**{f"{self.username_field}__in": usernames}).values_list(self.username_field, "pk")
        )
        missing = usernames - found.keys()
        if missing and self.create_missing:
            max_length = (
                getattr(self.user_model._meta.get_field(self.username_field), "max_length", None) or 150
            )
            creatable = [name for name in missing if len(name) <= max_length and "\x00" not in name]
            unusable = make_password(None)  # one hash for the chunk: nobody can log in with it
            with transaction.atomic():
                new_users = [
                    self.user_model(**{self.username_field: name, "password": unusable}) for name in creatable
                ]
                manager.bulk_create(new_users, ignore_conflicts=True)
            created = dict(
                manager.filter(**{f"{self.username_field}__in": creatable}).values_list(
                    self.username_field, "pk"
                )
            )
            self.report.users_created += len(created)
            found.update(created)
        return found

    def _create_items(self, keys: set[str]) -> None:
        """Create placeholder items for unknown keys (see the module docstring)."""
        missing = keys - item_ids_by_key(keys).keys()
        if not missing:
            return
        model = get_item_model()
        try:
            items = [build_placeholder_item(key) for key in sorted(missing)]
        except PlaceholderError:
            return  # rows are then rejected as unknown items, with the usual error
        with transaction.atomic():
            model._default_manager.bulk_create(items, ignore_conflicts=True)
        self.report.items_created += len(item_ids_by_key(missing))
        self.report.placeholder_values = placeholder_availability()


class PlaceholderError(ValueError):
    """The item model has a required field whose placeholder value cannot be guessed."""


def build_placeholder_item(key: str) -> models.Model:
    """An unsaved item with ``key``, generic values for the other required fields and the
    availability of :func:`placeholder_availability`."""
    model = get_item_model()
    key_field = item_key_field()
    values = _placeholder_values(model, key, skip=key_field, depth=0)
    values.update(placeholder_availability())
    values[key_field] = key
    return model(**values)


def placeholder_availability() -> dict[str, Any]:
    """The ``PLACEHOLDER_ITEM_VALUES`` of the fields the item model has (others are ignored)."""
    names = {f.name for f in get_item_model()._meta.concrete_fields}
    return {name: value for name, value in behavior_settings.PLACEHOLDER_ITEM_VALUES.items() if name in names}


def _placeholder_values(
    model: type[models.Model], text: str, *, skip: str = "", depth: int
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.name == skip or _is_optional(field):
            continue
        if isinstance(field, models.ForeignKey):
            values[field.name] = _related_placeholder(field, depth)
        elif isinstance(field, models.CharField | models.TextField):
            values[field.name] = text[: field.max_length] if field.max_length else text
        elif isinstance(field, models.IntegerField | models.DecimalField | models.FloatField):
            values[field.name] = 0
        elif isinstance(field, models.BooleanField):
            values[field.name] = False
        else:
            raise PlaceholderError(f"Cannot invent a value for {model.__name__}.{field.name}.")
    return values


def _is_optional(field: models.Field) -> bool:
    if isinstance(field, models.AutoField) or field.has_default() or field.null:
        return True
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return True
    return bool(field.blank and isinstance(field, models.CharField | models.TextField))


def _related_placeholder(field: models.ForeignKey, depth: int) -> models.Model:
    """The first existing related row, or a placeholder one (one level deep)."""
    related = field.related_model
    existing = related._default_manager.order_by("pk").first()
    if existing is not None:
        return existing
    if depth >= 1:
        raise PlaceholderError(f"No {related.__name__} exists to attach placeholder items to.")
    obj = related(**_placeholder_values(related, "imported", depth=depth + 1))
    obj.save()
    return obj
