"""Postgres' text COPY format, shared by the event loads and the profile writer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from behavior.services.copy_format import copy_text, json_text


def test_copy_text_escapes_what_copy_would_misread():
    assert copy_text(None) == r"\N"
    assert copy_text(True) == "t" and copy_text(False) == "f"
    assert copy_text(12) == "12"
    assert copy_text(0.25) == "0.25"
    assert copy_text("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert copy_text('{"a":"x\\y\tz\n"}') == '{"a":"x\\\\y\\tz\\n"}'
    assert copy_text(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert copy_text(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05+00:00"


def test_json_text_is_compact_json_escaped_as_one_field():
    assert json_text({"a": [1, 2]}) == '{"a":[1,2]}'
    assert json_text({"k": "x\ty"}) == '{"k":"x\\\\ty"}'
