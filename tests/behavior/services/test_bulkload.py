"""The bulk paths of ``import_events``: writer threads, direct ``COPY``, foreign keys per chunk.

On Postgres outside a transaction (``transaction=True`` tests) chunks are stored by
writer threads with their own connections, straight into the events table with
``COPY``; these tests assert that the outcome is exactly that of the inline path. On
SQLite the same import tests run the inline path; the ``COPY`` details are Postgres only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection

from behavior.models import Event
from behavior.services import ingest as services
from behavior.services.bulkload import ChunkLoader, CopyChunk, copy_chunk
from behavior.services.copy_format import copy_text
from behavior.services.importing import ImportStoreError, import_events_csv
from behavior.services.reference_locks import array_literal, reference_locks

pytestmark = [pytest.mark.swappable]

HEADER = "user_id,item_id,event_type,timestamp,value,session_id\n"
STORED = ("event_id", "user_id", "visitor_id", "session_id", "item_id", "event_type", "value", "occurred_at")


def _write(tmp_path, lines: list[str]) -> str:
    path = tmp_path / "events.csv"
    path.write_text(HEADER + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("COPY and the writer threads are the Postgres bulk path")


def _copy_payload(rows: list[tuple]) -> bytes:
    """Rows (storage.COLUMNS order, empty context) as COPY text, the way the importer writes them."""
    return "".join("\t".join(copy_text(value) for value in row) + "\n" for row in rows).encode()


def _row(user_pk, item_pk, second: int) -> tuple:
    moment = datetime.fromtimestamp(1_700_000_000 + second, UTC)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    return (
        uuid.uuid4().hex,
        user_pk,
        "",
        "",
        item_pk,
        "view",
        None,
        1,
        moment,
        now,
        None,
        "",
        None,
        {},
        False,
        "import",
    )


@pytest.mark.django_db(transaction=True)
def test_threaded_import_reports_a_rejected_row_mid_chunk_and_keeps_the_rest(
    tmp_path, make_item, user_factory
):
    # given: 3-row chunks, a bad row in the middle of the second one, and line 8 repeating
    # line 2 (the same event, in another chunk that may be in flight at the same time)
    make_item("K-1")
    user_factory(username="alice")
    path = _write(
        tmp_path,
        [
            "alice,K-1,view,1700000000,,",
            "alice,K-1,view,1700000001,,",
            ",K-1,click,1700000002,,s-1",
            "alice,K-1,view,1700000003,,",
            "alice,K-1,jump,1700000004,,",  # line 6
            "alice,K-1,view,1700000005,,",
            "alice,K-1,view,1700000000,,",  # line 8 == line 2
            "alice,K-1,purchase,1700000007,12.5,",
        ],
    )
    rejected: list[tuple[int, dict]] = []
    # when
    report = import_events_csv(
        path, chunk_size=3, writers=2, on_rejected=lambda line, errors: rejected.append((line, errors))
    )
    # then
    assert [(line, list(errors)) for line, errors in rejected] == [(6, ["event_type"])]
    assert (report.rows, report.accepted, report.duplicates, report.rejected) == (8, 6, 1, 1)
    stamps = sorted(int(moment.timestamp()) for moment in Event.objects.values_list("occurred_at", flat=True))
    assert stamps == [1700000000, 1700000001, 1700000002, 1700000003, 1700000005, 1700000007]


@pytest.mark.django_db(transaction=True)
def test_threaded_reimport_stores_nothing_twice(tmp_path, make_item, user_factory):
    # given
    make_item("K-1")
    user_factory(username="bob")
    path = _write(tmp_path, [f"bob,K-1,view,{1700000000 + i},," for i in range(10)])
    first = import_events_csv(path, chunk_size=4, writers=2)
    # when
    again = import_events_csv(path, chunk_size=4, writers=2)
    # then
    assert (first.accepted, first.duplicates) == (10, 0)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 10, 0)
    assert Event.objects.count() == 10


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writers", [0, 2])
def test_chunk_partly_stored_before_stores_only_its_new_rows(tmp_path, make_item, user_factory, writers):
    # given: rows 0-4 imported; then one chunk with rows 2-7
    make_item("K-1")
    user_factory(username="dora")
    lines = [f"dora,K-1,view,{1700000000 + i},," for i in range(8)]
    import_events_csv(_write(tmp_path, lines[:5]), writers=writers)
    # when
    report = import_events_csv(_write(tmp_path, lines[2:]), writers=writers)
    # then
    assert (report.accepted, report.duplicates) == (3, 3)
    assert Event.objects.count() == 8


@pytest.mark.django_db(transaction=True)
def test_threaded_import_stores_what_the_inline_import_stores(tmp_path, make_item, user_factory):
    # given: every kind of row of the fast path (anonymous, no item, a value, a repeat)
    make_item("K-1")
    make_item("K-2")
    user_factory(username="carol")
    path = _write(
        tmp_path,
        [
            "carol,K-1,view,1700000000,,",
            "carol,K-2,purchase,1700000100,19.905,",
            ",K-1,click,1700000200,,sess-9",
            ",,search,1700000300,,sess-9",
            "carol,K-1,view,1700000000,,",
        ],
    )
    now = datetime(2024, 1, 1, tzinfo=UTC)
    # when
    threaded = import_events_csv(path, chunk_size=2, writers=2, now=now)
    stored_threaded = sorted(Event.objects.values_list(*STORED, "received_at", "context", "is_bot"))
    Event.objects.all().delete()
    inline = import_events_csv(path, chunk_size=2, writers=0, now=now)
    stored_inline = sorted(Event.objects.values_list(*STORED, "received_at", "context", "is_bot"))
    # then
    assert (threaded.accepted, threaded.duplicates) == (inline.accepted, inline.duplicates) == (4, 1)
    assert stored_threaded == stored_inline


@pytest.mark.django_db(transaction=True)
def test_threaded_import_applies_the_row_filters(tmp_path, make_item, user_factory, monkeypatch):
    # given: a privacy filter (services.ROW_FILTERS) that drops erin's rows
    make_item("K-1")
    erin = user_factory(username="erin")
    user_factory(username="fred")
    monkeypatch.setattr(
        services, "ROW_FILTERS", [*services.ROW_FILTERS, lambda rows: [r for r in rows if r[1] != erin.pk]]
    )
    names = ["erin", "fred"] * 4
    path = _write(tmp_path, [f"{name},K-1,view,{1700000000 + i},," for i, name in enumerate(names)])
    # when
    report = import_events_csv(path, chunk_size=3, writers=2)
    # then
    assert report.accepted == 4
    assert set(Event.objects.values_list("user__username", flat=True)) == {"fred"}


@pytest.mark.django_db(transaction=True)
def test_threaded_import_creates_missing_users_and_items(tmp_path, make_item):
    # given
    make_item("K-1")  # so that placeholder items have a related row to attach to
    path = _write(tmp_path, [f"user{i % 3},NEW-{i % 2},view,{1700000000 + i},," for i in range(9)])
    # when
    report = import_events_csv(path, chunk_size=2, writers=2, create_missing=True)
    # then
    assert (report.accepted, report.users_created, report.items_created) == (9, 3, 2)
    assert Event.objects.filter(user__isnull=False, item__isnull=False).count() == 9


@pytest.mark.django_db(transaction=True)
def test_writer_error_is_raised_and_the_failing_chunk_leaves_nothing(make_item, user_factory):
    # given: two chunks; the second refers to a user that does not exist
    _postgres_only()
    item = make_item("K-1")
    alice = user_factory(username="alice")
    good = [_row(alice.pk, item.pk, i) for i in range(3)]
    bad = [_row(alice.pk, item.pk, 10), _row(alice.pk + 1000, item.pk, 11)]
    # when / then
    with pytest.raises(IntegrityError), ChunkLoader(writers=2) as loader:  # raised by submit or close
        loader.submit(good, _copy_payload(good))
        loader.submit(bad, _copy_payload(bad))
    assert Event.objects.filter(event_id__in=[row[0] for row in bad]).count() == 0
    assert Event.objects.filter(event_id__in=[row[0] for row in good]).count() == 3


@pytest.mark.django_db(transaction=True)
def test_threaded_import_stops_at_a_failing_chunk_that_leaves_nothing(tmp_path, make_item, user_factory):
    # given: chunks of 2 rows; lines 4-5 hold a fast row and a per-event row the database refuses
    _postgres_only()
    from tests.behavior.services.test_importing import _refuse_session

    make_item("K-1")
    user_factory(username="alice")
    _refuse_session("poison")
    try:
        path = _write(
            tmp_path,
            [
                "alice,K-1,view,1700000001,,",
                "alice,K-1,view,1700000002,,",
                "alice,K-1,view,1700000003,,",
                ",K-1,view,2023-11-14T22:16:00Z,,poison",
            ],
        )
        # when
        with pytest.raises(ImportStoreError) as failure:
            import_events_csv(path, chunk_size=2, writers=2)
        # then
        assert failure.value.lines == (4, 5)
        assert sorted(e.occurred_at.timestamp() for e in Event.objects.all()) == [1700000001, 1700000002]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_poison ON behavior_event; DROP FUNCTION refuse_poison()")


@pytest.mark.django_db(transaction=True)
def test_chunk_is_checked_against_missing_users_and_replica_mode_ends_with_it(make_item, user_factory):
    # given
    _postgres_only()
    item = make_item("K-1")
    alice = user_factory(username="alice")
    locks = reference_locks()
    good = [_row(alice.pk, item.pk, 1), _row(None, item.pk, 2)]
    bad = [_row(alice.pk, item.pk, 3), _row(alice.pk + 1000, item.pk, 4)]
    # when
    inserted = copy_chunk(CopyChunk.of(good, _copy_payload(good), locks))
    with pytest.raises(IntegrityError):
        copy_chunk(CopyChunk.of(bad, _copy_payload(bad), locks))
    # then: the foreign keys were enforced and the trigger switch did not outlive the chunk
    assert inserted == 2
    assert Event.objects.count() == 2
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"


@pytest.mark.django_db
def test_reference_locks_cover_both_foreign_keys_unless_the_table_has_its_own_trigger():
    # given
    _postgres_only()
    locks = reference_locks()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('is_superuser') = 'on'")
        superuser = cursor.fetchone()[0]
        # when: a trigger of the shop's own on the events table (rolled back with the test)
        cursor.execute(
            "CREATE FUNCTION behavior_test_noop() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RETURN NEW; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER behavior_test_noop BEFORE INSERT ON {Event._meta.db_table} "
            "FOR EACH ROW EXECUTE FUNCTION behavior_test_noop()"
        )
        with_trigger = reference_locks()
    # then
    if superuser:
        assert sorted(lock.index for lock in locks) == [1, 4]  # user_id, item_id in storage.COLUMNS
    assert with_trigger is None


@pytest.mark.django_db
def test_array_literal_round_trips_awkward_keys():
    # given
    _postgres_only()
    values = ['a"b', "c\\d", "plain", "1", "é ☃", "{x,y}"]
    numbers = [3, 10**12, 0]
    # when
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::text::text[], %s::text::bigint[]", [array_literal(values), array_literal(numbers)]
        )
        back, numbers_back = cursor.fetchone()
    # then
    assert back == values
    assert numbers_back == numbers
