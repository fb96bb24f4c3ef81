"""Property-based tests of the CSV import (hypothesis): any rows, no crash, every row accounted for.

Generated files mix good rows with every kind of bad cell (unknown users and items, wrong
types, times beyond the calendar, junk values and ids, short and long rows, quoted
newlines). Whatever they hold, the import finishes; each row is stored, recognised as
stored, or reported once with the line its record ends on; importing the file again
stores nothing.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from behavior.models import Event
from behavior.services.import_chunks import ImportReport
from behavior.services.importing import import_events_csv

pytestmark = [pytest.mark.django_db]

HEADER = ["user_id", "item_id", "event_type", "timestamp", "value", "session_id", "event_id"]
# A file has no lone surrogates (it is UTF-8) and the csv module refuses NUL characters.
cell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
timestamps = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.builds(lambda m, tz: m.replace(tzinfo=tz).isoformat(), moments, offsets),
    st.sampled_from(
        [
            "-70000000000",
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+05:00",
            "1e400",
            "nan",
            "1700000000.5",
            "",
        ]
    ),
    cell_text,
)
cells = {
    "user_id": st.sampled_from(["alice", "bob", "", "nobody"]) | cell_text,
    "item_id": st.sampled_from(["K-1", "K-2", "", "NOPE"]) | cell_text,
    "event_type": st.sampled_from(["view", "purchase", "search", "click", "jump", ""]),
    "timestamp": timestamps,
    "value": st.sampled_from(["", "19.90", "-1", "1e9", "99999999999", "abc"]) | cell_text,
    "session_id": st.sampled_from(["", "sess-1", "bad id!", "x" * 70]) | cell_text,
    "event_id": st.sampled_from(["", "not-a-uuid"]) | st.uuids().map(str),
}
row = st.fixed_dictionaries(cells).map(lambda r: [r[name] for name in HEADER])
odd_row = st.lists(cell_text, min_size=1, max_size=9)  # too short or too long


@pytest.fixture
def catalogue(make_item, user_factory):
    make_item("K-1")
    make_item("K-2")
    user_factory(username="alice")
    user_factory(username="bob")


def _record_end_lines(text: str) -> list[int]:
    """The line number each data record ends on, as the csv module counts them (blank rows skipped)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    return [reader.line_num for r in reader if r and not (len(r) == 1 and not r[0].strip())]


def _import(path, chunk_size: int) -> tuple[ImportReport, list[int]]:
    """Import ``path`` inline; return the report and the reported lines."""
    reported: list[int] = []
    report = import_events_csv(
        str(path),
        chunk_size=chunk_size,
        writers=0,
        on_rejected=lambda line, errors: reported.append(line),
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return report, reported


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(row | odd_row, min_size=1, max_size=25), chunk=st.integers(min_value=1, max_value=7))
def test_any_file_is_imported_without_crash_and_every_row_accounted_for(catalogue, tmp_path, rows, chunk):
    # given
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    text = buffer.getvalue()
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    path.write_text(text, encoding="utf-8", newline="")
    records = _record_end_lines(text)
    before = Event.objects.count()
    # when
    report, reported = _import(path, chunk)
    second, again = _import(path, chunk)
    # then: every record stored, already stored or reported once, by the line it ends on
    assert report.rows == len(records)
    assert report.accepted + report.duplicates + report.rejected == report.rows
    assert len(reported) == len(set(reported)) == report.rejected
    assert set(reported) <= set(records)
    assert Event.objects.count() - before == report.accepted
    # and: a second import stores nothing and reports the same lines
    assert (second.accepted, second.rejected) == (0, report.rejected)
    assert second.duplicates == report.accepted + report.duplicates
    assert sorted(again) == sorted(reported)
