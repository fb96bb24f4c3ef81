"""One chunk of CSV rows at a time: validate (fast path, then generic checks), resolve, store.

:class:`ChunkImporter` is the engine of :func:`behavior.services.importing.import_events_csv`:
rows go through :func:`behavior.services.import_fastpath.prepare_fast` first, the rest through
the per-event checks of :func:`behavior.services.ingest.prepare_rows` (exact error messages);
users and items are looked up (or created under ``create_missing``) once and cached; all the
valid rows of a chunk go to :class:`behavior.services.bulkload.ChunkLoader` together.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from behavior.items import get_item_model, item_ids_by_key
from behavior.models import EventOrigin
from behavior.services import ingest as services
from behavior.services import validation as v
from behavior.services.bulkload import ChunkLoader, copy_line
from behavior.services.copy_format import copy_text
from behavior.services.import_fastpath import (
    EPOCH,
    IMPORT_NAMESPACE,
    CachedKey,
    CsvRow,
    ImportBatch,
    prepare_fast,
)
from behavior.services.placeholders import PlaceholderError, build_placeholder_item, placeholder_availability

__all__ = ["ChunkImporter", "ImportReport", "RejectCallback"]

# API field names -> CSV column names, for the report.
_FIELD_TO_COLUMN = {"item": "item_id", "occurred_at": "timestamp", "visitor_id": "session_id"}
_MICROSECOND = datetime.resolution
# Most user/item ids kept between chunks (then the cache starts afresh): bounds memory.
_CACHE_LIMIT = 500_000


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


def _remember(cache: dict[str, CachedKey], found: dict[str, Any]) -> None:
    """Add key -> (pk, COPY text of pk) entries; start afresh beyond ``_CACHE_LIMIT`` (bounded memory)."""
    if len(cache) > _CACHE_LIMIT:
        cache.clear()
    for key, pk in found.items():
        cache[key] = (pk, copy_text(pk))


class ChunkImporter:
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
        self.users: dict[str, CachedKey] = {}
        self.items: dict[str, CachedKey] = {}

    def _reject(self, line: int, errors: dict[str, list[str]]) -> None:
        self.report.rejected += 1
        self.pending.append((line, errors))

    def run(self, chunk: list[CsvRow]) -> None:
        """Validate and store one chunk; report its rejected rows in line order."""
        self.pending: list[tuple[int, dict[str, list[str]]]] = []
        try:
            self._run(chunk)
        finally:
            if self.on_rejected is not None:
                for line, errors in sorted(self.pending, key=lambda entry: entry[0]):
                    self.on_rejected(line, errors)

    def _run(self, chunk: list[CsvRow]) -> None:
        self.report.rows += len(chunk)
        batch = ImportBatch(self.now or timezone.now(), copy_text=self.loader.copy_text)
        slow = self._run_fast(chunk, batch)
        if slow:
            self._run_generic(slow, batch)
        self._submit(batch, (chunk[0][0], chunk[-1][0]))

    def _submit(self, batch: ImportBatch, lines: tuple[int, int]) -> None:
        """Hand every row of the chunk to the loader at once: one transaction, all or nothing."""
        self.report.duplicates += batch.duplicates
        rows = batch.rows
        for row_filter in services.ROW_FILTERS:  # privacy hook (erased shoppers), as in ingest_events
            rows = row_filter(rows)
        if rows:
            # The preformatted COPY text is only valid for the rows exactly as prepared.
            payload = "".join(batch.lines).encode() if rows is batch.rows and batch.lines else None
            self.loader.submit(rows, payload, lines)

    def _run_fast(self, chunk: list[CsvRow], batch: ImportBatch) -> list[CsvRow]:
        """Prepare the rows that are certainly valid; return the others for the generic path.

        The hot loop of a large import (``prepare_fast``). Users and items come from
        caches filled by earlier chunks; rows naming one not cached yet pass again once the
        missing keys are looked up (and created under ``--create-missing``) in one query.
        Any row that a check does not accept outright (short/long rows, an unknown user or
        item, an unusual timestamp, a bad value...) goes to :meth:`_run_generic`, the
        original per-event validation, so the accepted values and every error message
        stay exactly as they were.
        """
        slow: list[CsvRow] = []
        columns, users, items = self.columns, self.users, self.items
        misses = prepare_fast(chunk, batch, slow, columns=columns, users=users, items=items, final=False)
        if misses:
            self._resolve(misses)
            prepare_fast(misses, batch, slow, columns=columns, users=users, items=items, final=True)
        return slow

    def _resolve(self, misses: list[CsvRow]) -> None:
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

    def _run_generic(self, chunk: list[CsvRow], batch: ImportBatch) -> None:
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
                micros = (moment - EPOCH) // _MICROSECOND
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
