"""The import's fast path: CSV rows that are certainly valid, straight to events and COPY text.

The hot loop of a large import (:func:`prepare_fast`): plain string checks, dict look-ups of
users and items cached by earlier chunks, an event id from one sha1 and, on Postgres, the
row's ``COPY`` line formatted here. Any row a check does not accept outright goes back to the
caller for the generic, per-event validation, so accepted values and error messages are those
of :func:`behavior.services.ingest.prepare_rows`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from hashlib import sha1
from typing import Any

from behavior.models import EventOrigin
from behavior.services import validation as v
from behavior.services.copy_format import NULL, copy_text
from behavior.services.storage import context_json

__all__ = [
    "ANONYMOUS",
    "EPOCH",
    "IMPORT_NAMESPACE",
    "NO_ITEM",
    "CachedKey",
    "CsvRow",
    "ImportBatch",
    "content_event_id",
    "prepare_fast",
]

# uuid5 namespace of event ids derived from row content (fixed forever: it is the idempotency key).
IMPORT_NAMESPACE = uuid.UUID("5f0b7c1e-9a43-4d5e-8d1c-2b7f3e0c6a91")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# One CSV record: the line it ends on and its fields.
CsvRow = tuple[int, list[str]]
# A cached user or item: (pk, the pk as COPY text).
CachedKey = tuple[Any, str]
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
ANONYMOUS = (None, NULL)
NO_ITEM = (None, NULL)
# "YYYY-MM-DD " of a unix day number, and "HH:MM:SS+00" of every second of a day: a
# timestamp's COPY text is then two look-ups instead of formatting a datetime.
_DAY_TEXT: dict[int, str] = {}
_TIME_OF_DAY: list[str] = []


def _day_text(day: int) -> str:
    if len(_DAY_TEXT) > 100_000:
        _DAY_TEXT.clear()
    text = _DAY_TEXT[day] = f"{EPOCH + timedelta(days=day):%Y-%m-%d} "
    return text


def _time_of_day_text() -> list[str]:
    if not _TIME_OF_DAY:
        minutes = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
        seconds = [f"{s:02d}+00" for s in range(60)]
        _TIME_OF_DAY.extend([minute + second for minute in minutes for second in seconds])
    return _TIME_OF_DAY


class ImportBatch:
    """The rows of one chunk being prepared by the fast path."""

    def __init__(self, now: datetime, *, copy_text: bool) -> None:
        self.now = now
        self.now_text = now.isoformat()
        # Unix seconds of the latest accepted time (a whole second is later iff it is greater).
        self.latest_second = (v.Limits.for_now(now, historical=True).latest - EPOCH) // timedelta(seconds=1)
        self.copy_text = copy_text
        self.rows: list[tuple[Any, ...]] = []
        self.lines: list[str] = []
        self.seen: set[str] = set()
        self.duplicates = 0


def prepare_fast(
    chunk: list[CsvRow],
    batch: ImportBatch,
    slow: list[CsvRow],
    *,
    columns: dict[str, int],
    users: dict[str, CachedKey],
    items: dict[str, CachedKey],
    final: bool,
) -> list[CsvRow]:
    """Add the rows that pass every fast check to ``batch``; the others to ``slow``.

    Returns the rows that passed every check except a user or item that is not
    cached (unless ``final``: then they are slow too). Rows are checked in full
    before their user and item are looked at, so only rows that the generic path
    would also accept that far may create users or items under ``--create-missing``.
    Per row: plain string checks, dict look-ups, uuid5 from one sha1, one tuple (the
    row for ``ingest.ROW_FILTERS`` and the non-COPY paths) and, on Postgres, its
    ``COPY`` line.
    """
    col = columns
    i_user, i_item, i_type, i_time = col["user_id"], col["item_id"], col["event_type"], col["timestamp"]
    i_value, i_session, i_event = col.get("value"), col.get("session_id"), col.get("event_id")
    width = len(col)
    event_types, item_required, is_identifier = v.EVENT_TYPES, v.item_required, v.is_identifier
    latest, now, now_text, copy = batch.latest_second, batch.now, batch.now_text, batch.copy_text
    seen, rows, lines = batch.seen, batch.rows, batch.lines
    day_text, time_of_day = _DAY_TEXT, _time_of_day_text()
    from_timestamp = datetime.fromtimestamp  # == EPOCH + timedelta(seconds=...) for whole seconds
    misses: list[CsvRow] = []
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
        user = users.get(username) if username else ANONYMOUS
        found = items.get(item) if item else NO_ITEM
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
            # seconds * 10**6 == (moment - EPOCH) // _MICROSECOND, as in the generic path
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
