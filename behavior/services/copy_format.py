"""Postgres' text ``COPY`` format, written once for every bulk load (events, profiles, tags).

A field is its text with backslash, tab, newline and carriage return escaped; ``\\N`` is NULL;
booleans are ``t``/``f``; times are ISO 8601 with their offset. Anything else would be misread
by ``COPY``: a tab inside a value splits the row.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

#: the NULL marker of the text format
NULL = r"\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# One encoder for every row (json.dumps with arguments builds a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def copy_text(value: Any) -> str:
    """``value`` as a field of Postgres' text ``COPY`` format (``\\N`` for NULL, escapes applied)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).translate(_ESCAPES)


def escape(text: str) -> str:
    """``text`` with the characters ``COPY`` would misread escaped (no NULL or type handling)."""
    return text.translate(_ESCAPES)


def json_text(value: Any) -> str:
    """``value`` as compact JSON, escaped as one ``COPY`` field (for json/jsonb columns)."""
    return _ENCODER.encode(value).translate(_ESCAPES)
