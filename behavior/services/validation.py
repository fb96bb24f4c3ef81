"""Plain-Python validation of one raw event (API JSON, CSV row, tracking helper).

Deliberately not a DRF serializer: the ingestion path handles tens of thousands of
events per second and a serializer per event costs more than the insert. Every
error names the field it is about, like a serializer's ``errors`` dict, so the API
answers ``{"index": i, "errors": {field: [reasons]}}`` per rejected event.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext

from behavior.conf import behavior_settings
from behavior.models import ITEM_EVENT_TYPES, EventType

EVENT_TYPES = frozenset(t.value for t in EventType)

# The public field names of an event in JSON (DESIGN.md section 4).
PUBLIC_FIELDS = frozenset(
    {
        "event_id",
        "event_type",
        "item",
        "occurred_at",
        "value",
        "quantity",
        "visitor_id",
        "session_id",
        "recommendation_id",
        "placement",
        "position",
        "context",
    }
)
# Keys that would let a client speak for another shopper. The user always comes from
# authentication, so these are rejected (loudly) rather than silently ignored.
IDENTITY_FIELDS = frozenset({"user", "user_id", "username"})

NON_FIELD = "non_field_errors"
MAX_ITEM_KEY_LENGTH = 255
MAX_ID_LENGTH = 64  # visitor_id, session_id, placement: the model's max_length
MAX_QUANTITY = 1_000_000
MAX_POSITION = 32_767  # PositiveSmallIntegerField
# DecimalField(max_digits=12, decimal_places=2): at most 10 digits before the point.
MAX_VALUE = Decimal("9999999999.99")
_CENT = Decimal("0.01")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]+$")
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Deepest nesting of objects and lists accepted inside a value (``context``).
MAX_JSON_DEPTH = 20


def _between(low: object, high: object) -> str:
    return gettext("Must be between %(low)s and %(high)s.") % {"low": low, "high": high}


class FieldError(ValueError):
    """One invalid field value; the message is the human reason."""


@dataclass(slots=True)
class Limits:
    """The time window events must fall into, computed once per batch."""

    now: datetime
    latest: datetime
    earliest: datetime | None

    @classmethod
    def for_now(cls, now: datetime, *, historical: bool = False) -> Limits:
        """Limits around ``now``; ``historical`` (imports) lifts the maximum age."""
        max_age = behavior_settings.MAX_EVENT_AGE_DAYS
        return cls(
            now=now,
            latest=now + timedelta(seconds=behavior_settings.FUTURE_TOLERANCE_SECONDS),
            earliest=None if historical or max_age is None else now - timedelta(days=max_age),
        )


def check_text(value: str) -> str:
    """Reject text that the database cannot store (NUL, lone surrogates)."""
    if "\x00" in value:
        raise FieldError(gettext("NUL characters are not allowed."))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FieldError(gettext("Invalid unicode text.")) from exc
    return value


def clean_uuid(value: Any) -> uuid.UUID:
    """A UUID from its string form (or a UUID)."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) > 64:
        raise FieldError(gettext("Must be a UUID string."))
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise FieldError(gettext("Must be a valid UUID.")) from exc


def is_identifier(value: str) -> bool:
    """Whether the non-empty ``value`` passes :func:`clean_identifier` (the import's fast path asks)."""
    return len(value) <= MAX_ID_LENGTH and _ID_PATTERN.match(value) is not None


def clean_identifier(value: Any, *, pattern: bool = True) -> str:
    """A short identifier (visitor id, session id, placement)."""
    if not isinstance(value, str):
        raise FieldError(gettext("Must be a string."))
    if not value or (pattern and is_identifier(value)):
        return check_text(value)
    if len(value) > MAX_ID_LENGTH:
        raise FieldError(gettext("At most %(max)d characters.") % {"max": MAX_ID_LENGTH})
    if pattern:
        raise FieldError(gettext("Only letters, digits and _ . : - are allowed."))
    return check_text(value)


def is_item_key(key: str) -> bool:
    """Whether :func:`clean_item_key` accepts the string ``key``."""
    try:
        clean_item_key(key)
    except FieldError:
        return False
    return True


def clean_item_key(value: Any) -> str:
    """An item key as a string (integers are accepted and converted)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError(gettext("Must be an item key (string)."))
    key = str(value)
    if not key or len(key) > MAX_ITEM_KEY_LENGTH:
        raise FieldError(gettext("Must be 1 to %(max)d characters.") % {"max": MAX_ITEM_KEY_LENGTH})
    return check_text(key)


def parse_timestamp(value: Any) -> datetime:
    """Unix seconds (number or numeric string) or an ISO 8601 string, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        return _parse_timestamp(value)
    except (OverflowError, OSError) as exc:
        # A value that names no representable moment: a timezone offset that moves
        # 0001-01-01 or 9999-12-31 across the ends of the calendar, or unix seconds that do.
        raise FieldError(gettext("Timestamp out of range.")) from exc


def _parse_timestamp(value: Any) -> datetime:
    if isinstance(value, bool):
        raise FieldError(gettext("Must be an ISO 8601 date-time or unix seconds."))
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40:
            raise FieldError(gettext("Must be an ISO 8601 date-time or unix seconds."))
        if _NUMERIC.match(text):
            value = float(text)
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError as exc:
                raise FieldError(gettext("Must be an ISO 8601 date-time or unix seconds.")) from exc
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > 1e11:  # beyond year 5138: a broken clock
            raise FieldError(gettext("Timestamp out of range."))
        return _EPOCH + timedelta(seconds=value)
    raise FieldError(gettext("Must be an ISO 8601 date-time or unix seconds."))


def clean_occurred_at(value: Any, limits: Limits) -> datetime:
    """A timestamp inside the accepted window (not in the future beyond the tolerance)."""
    moment = parse_timestamp(value)
    if moment > limits.latest:
        raise FieldError(gettext("Is in the future."))
    if limits.earliest is not None and moment < limits.earliest:
        raise FieldError(gettext("Is too far in the past."))
    return moment


def clean_value(value: Any) -> Decimal | None:
    """A money amount with two decimals, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise FieldError(gettext("Must be a number."))
    if isinstance(value, str) and (len(value) > 40 or not _NUMERIC.match(value.strip())):
        raise FieldError(gettext("Must be a number."))
    if isinstance(value, int) and abs(value) > MAX_VALUE:
        raise FieldError(_between(-MAX_VALUE, MAX_VALUE))
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise FieldError(gettext("Must be a number.")) from exc
    if not amount.is_finite() or abs(amount) > MAX_VALUE:
        raise FieldError(_between(-MAX_VALUE, MAX_VALUE))
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def clean_int(value: Any, *, low: int, high: int) -> int:
    """An integer in [low, high] (no booleans, no fractions)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)
        else:
            raise FieldError(gettext("Must be an integer."))
    if not low <= value <= high:
        raise FieldError(_between(low, high))
    return value


def _check_json_text(value: Any, depth: int = 0) -> None:
    """Walk a JSON value and reject text the database cannot store."""
    if depth > MAX_JSON_DEPTH:
        raise FieldError(gettext("Nested too deeply (at most %(max)d levels).") % {"max": MAX_JSON_DEPTH})
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            _check_json_text(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_text(item, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise FieldError(gettext("Numbers must be finite."))


def clean_context(value: Any) -> dict:
    """A free-form JSON object of extra facts (search query, page, referrer)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldError(gettext("Must be a JSON object."))
    _check_json_text(value)
    return value


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``value`` nests objects or lists more than ``limit`` levels deep.

    Iterative, so a body nested close to the JSON parser's own limit (~1000 levels) is
    measured without the recursion that ``json.dumps`` or a recursive walk would need.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(current, dict):
            children = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def field_name(key: Any) -> str:
    """A key of the client's event as a printable field name for an error (at most 64 characters).

    Keys are echoed in the answer: a lone surrogate (valid in JSON text, not in UTF-8)
    would make the response unencodable, so such characters are written as escapes.
    """
    text = key if isinstance(key, str) else str(key)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:64]


def event_size(raw: Mapping[str, Any]) -> int:
    """Bytes of one event as compact JSON (what the per-event cap applies to)."""
    try:
        return len(json.dumps(raw, separators=(",", ":"), default=str).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError, RecursionError):
        return 0  # unserializable or too deep values are caught by the field checks


# One character is at most 12 bytes of ASCII JSON (a surrogate pair as two \uXXXX escapes);
# 2 quotes + 1 colon + 1 comma per key; a number or literal of a flat event at most 32 bytes.
_MAX_CHAR_BYTES = 12
_SCALAR_BOUND = 32


def event_size_at_most(raw: Mapping[str, Any], limit: int) -> bool:
    """True when the compact JSON of ``raw`` is certainly within ``limit`` bytes.

    An upper bound from string lengths, checked before the exact :func:`event_size`,
    which is only computed for events with nested values or long strings: encoding
    every event a second time was a tenth of the CPU of a batch request.
    """
    bound = 2
    for key, value in raw.items():
        if not isinstance(key, str):
            return False
        bound += _MAX_CHAR_BYTES * len(key) + 4
        if isinstance(value, str):
            bound += _MAX_CHAR_BYTES * len(value) + 2
        elif (
            value is None
            or isinstance(value, bool | float)
            or (isinstance(value, int) and -(10**20) < value < 10**20)
        ):
            bound += _SCALAR_BOUND
        else:
            return False
    return bound <= limit


def item_required(event_type: str) -> bool:
    """Whether this event type must name an item (every type but search)."""
    return event_type in ITEM_EVENT_TYPES
