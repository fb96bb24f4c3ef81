"""``manage.py import_events``: streaming CSV import, line-numbered errors, idempotency."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from behavior.items import get_item_model, item_key_field
from behavior.models import Event

pytestmark = [pytest.mark.swappable, pytest.mark.django_db]


def _write(tmp_path, text: str):
    path = tmp_path / "events.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _run(path: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_events", path, "--no-progress", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_good_file_with_iso_and_unix_timestamps(tmp_path, make_item, user_factory):
    # given
    make_item("K-1")
    make_item("K-2")
    alice = user_factory(username="alice")
    path = _write(
        tmp_path,
        (
            "user_id,item_id,event_type,timestamp,value,session_id\n"
            "alice,K-1,view,1700000000,,\n"
            "alice,K-2,purchase,2023-11-14T22:15:00Z,19.90,\n"
            ",K-1,view,2023-11-14T22:16:00+01:00,,sess-9\n"
        ),
    )
    # when
    out, err = _run(path)
    # then
    assert "3 rows: 3 stored, 0 already stored, 0 rejected" in out
    # and nothing was rejected; the only word on stderr is that 2023's events are past retention
    assert err == (
        "Warning: 3 stored events are older than EVENT_RETENTION_DAYS (730 days): the next "
        "behavior.prune_events (daily) deletes them. To keep an imported history, set "
        "RECOMMENDER['EVENT_RETENTION_DAYS'] to None (keep forever) or to more days.\n"
    )
    events = list(
        Event.objects.order_by("occurred_at").values_list(
            "user_id", "visitor_id", "session_id", "event_type", "occurred_at", "value"
        )
    )
    assert events == [
        (None, "sess-9", "sess-9", "view", datetime(2023, 11, 14, 21, 16, tzinfo=UTC), None),
        (alice.pk, "", "", "view", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), None),
        (alice.pk, "", "", "purchase", datetime(2023, 11, 14, 22, 15, tzinfo=UTC), Decimal("19.90")),
    ]


def test_reimport_is_idempotent(tmp_path, make_item, user_factory):
    # given
    make_item("K-1")
    user_factory(username="bob")
    path = _write(
        tmp_path, "user_id,item_id,event_type,timestamp\nbob,K-1,view,1700000000\nbob,K-1,click,1700000100\n"
    )
    _run(path)
    # when
    out, _ = _run(path)
    # then
    assert "2 rows: 0 stored, 2 already stored, 0 rejected" in out
    assert Event.objects.count() == 2


def test_explicit_event_id_column_is_used(tmp_path, make_item, user_factory):
    # given
    make_item("K-1")
    user_factory(username="bob")
    event_id = "6f1c2b4e-8c1f-4a55-9a0e-0d7b1c3e5f70"
    path = _write(
        tmp_path, f"event_id,user_id,item_id,event_type,timestamp\n{event_id},bob,K-1,view,1700000000\n"
    )
    # when
    _run(path)
    # then
    assert str(Event.objects.get().event_id) == event_id


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_stored(tmp_path, make_item, user_factory):
    # given
    make_item("K-1")
    user_factory(username="carol")
    path = _write(
        tmp_path,
        (
            "user_id,item_id,event_type,timestamp,value,session_id\n"
            "carol,K-1,view,1700000000,,\n"  # line 2: good
            "carol,NOPE,view,1700000000,,\n"  # line 3: unknown item
            "dave,K-1,view,1700000000,,\n"  # line 4: unknown user
            "carol,K-1,jump,1700000000,,\n"  # line 5: bad type
            "carol,K-1,view,next tuesday,,\n"  # line 6: bad timestamp
            "carol,K-1,view,4102444800,,\n"  # line 7: year 2100: future
            ",K-1,view,1700000000,,\n"  # line 8: anonymous without session
            "carol,K-1,purchase,1700000000,abc,\n"  # line 9: bad value
            "carol,K-1,click,1700000000,,\n"  # line 10: good
        ),
    )
    # when
    out, err = _run(path)
    # then
    assert "9 rows: 2 stored, 0 already stored, 7 rejected" in out
    lines, (warning,) = err.strip().splitlines()[:-1], err.strip().splitlines()[-1:]
    assert warning.startswith("Warning: 2 stored events are older than EVENT_RETENTION_DAYS")
    assert [line.split(":")[0] for line in lines] == [
        "line 3",
        "line 4",
        "line 5",
        "line 6",
        "line 7",
        "line 8",
        "line 9",
    ]
    report = {line.split(":")[0]: line for line in lines}
    assert "item_id: Unknown item." in report["line 3"]
    assert "user_id: Unknown user 'dave'." in report["line 4"]
    assert "event_type:" in report["line 5"]
    assert "timestamp:" in report["line 6"]
    assert "timestamp: Is in the future." in report["line 7"]
    assert "session_id:" in report["line 8"]
    assert "value:" in report["line 9"]
    assert Event.objects.count() == 2


def test_timestamps_beyond_the_calendar_are_reported_by_line_and_the_rest_stored(
    tmp_path, make_item, user_factory
):
    # given
    make_item("K-1")
    user_factory(username="carol")
    path = _write(
        tmp_path,
        (
            "user_id,item_id,event_type,timestamp\n"
            "carol,K-1,view,1700000000\n"  # line 2: good
            "carol,K-1,view,-70000000000\n"  # line 3: before year 1
            "carol,K-1,view,9999-12-31T23:59:59-05:00\n"  # line 4: after 9999 in UTC
            "carol,K-1,view,0001-01-01T00:00:00+05:00\n"  # line 5: before year 1 in UTC
            "carol,K-1,view,1e400\n"  # line 6: infinite
            "carol,K-1,click,1700000000\n"  # line 7: good
        ),
    )
    # when: no traceback, exit status 0
    out, err = _run(path, "--chunk-size", "3")
    # then
    assert "6 rows: 2 stored, 0 already stored, 4 rejected" in out
    # (2023's events also draw the retention warning of an old import, after the rejected lines)
    assert [line for line in err.strip().splitlines() if not line.startswith("Warning:")] == [
        "line 3: timestamp: Timestamp out of range.",
        "line 4: timestamp: Timestamp out of range.",
        "line 5: timestamp: Timestamp out of range.",
        "line 6: timestamp: Timestamp out of range.",
    ]
    assert Event.objects.count() == 2


def _refuse_session(name: str) -> None:
    """A trigger that makes the database refuse every event of session ``name`` (a real failure)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.session_id = '{name}' THEN RAISE EXCEPTION 'refused by the test trigger'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON behavior_event "
            "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
        )


def test_a_chunk_that_fails_to_store_leaves_nothing_and_names_its_lines(tmp_path, make_item, user_factory):
    # given: chunks of 3 rows; the second chunk mixes rows of the fast path with one that takes
    # the per-event path (an ISO time) and that the database refuses
    if connection.vendor != "postgresql":
        pytest.skip("the refusing trigger is PL/pgSQL")
    make_item("K-1")
    user_factory(username="carol")
    _refuse_session("poison")
    path = _write(
        tmp_path,
        (
            "user_id,item_id,event_type,timestamp,session_id\n"
            "carol,K-1,view,1700000001,\n"  # lines 2-4: the first chunk
            "carol,K-1,view,1700000002,\n"
            "carol,K-1,view,1700000003,\n"
            "carol,K-1,view,1700000004,\n"  # lines 5-7: the failing chunk
            ",K-1,view,2023-11-14T22:16:00Z,poison\n"
            "carol,K-1,view,1700000006,\n"
            "carol,K-1,view,1700000007,\n"  # line 8: never read
        ),
    )
    # when
    with pytest.raises(CommandError) as failure:
        _run(path, "--chunk-size", "3", "--writers", "0")
    # then: the first chunk is stored, nothing of the failing one, and the message says so
    assert sorted(e.occurred_at.timestamp() for e in Event.objects.all()) == [
        1700000001,
        1700000002,
        1700000003,
    ]
    message = str(failure.value)
    assert message.startswith("Storing the events of lines 5-7 failed (refused by the test trigger")
    assert "none of them was stored" in message
    assert "Earlier chunks are stored (3 new events)" in message


def test_create_missing_creates_users_and_placeholder_items(tmp_path, make_item):
    # given
    make_item("K-1")  # so that a related row (the shop's category) exists for placeholders
    path = _write(
        tmp_path,
        "user_id,item_id,event_type,timestamp\nerin,NEW-7,view,1700000000\nerin,K-1,view,1700000001\n",
    )
    # when
    out, _ = _run(path, "--create-missing")
    # then
    assert "2 rows: 2 stored" in out
    assert "created 1 users and 1 items" in out
    erin = get_user_model().objects.get(username="erin")
    assert not erin.has_usable_password()
    item = get_item_model()._default_manager.get(**{item_key_field(): "NEW-7"})
    assert Event.objects.filter(user=erin, item=item).count() == 1


def test_placeholder_items_are_recommendable_and_the_command_says_so(tmp_path, make_item):
    # given an event of an unknown item
    make_item("K-1")
    path = _write(tmp_path, "user_id,item_id,event_type,timestamp\nerin,NEW-8,purchase,1700000000\n")
    # when it is imported with --create-missing
    out, _ = _run(path, "--create-missing")
    # then the placeholder got the availability fields its model has (Product: active and one in
    # stock; Book: available), and the command names them
    model = get_item_model()
    item = model._default_manager.get(**{item_key_field(): "NEW-8"})
    names = {f.name for f in model._meta.concrete_fields}
    given = {k: v for k, v in {"is_active": True, "available": True, "stock": 1}.items() if k in names}
    assert given and {name: getattr(item, name) for name in given} == given
    assert (
        f"The 1 placeholder items are named after their keys and set "
        f"{', '.join(f'{k}={v!r}' for k, v in given.items())} (RECOMMENDER['PLACEHOLDER_ITEM_VALUES'])"
    ) in out
    assert "recommendable until the catalogue sets their real names, prices and stock" in out


def test_placeholders_without_availability_fields_are_a_loud_warning(tmp_path, make_item, settings):
    # given a setting naming no field of the item model
    settings.RECOMMENDER = {**settings.RECOMMENDER, "PLACEHOLDER_ITEM_VALUES": {"published": True}}
    make_item("K-1")
    path = _write(tmp_path, "user_id,item_id,event_type,timestamp\nerin,NEW-9,view,1700000000\n")
    # when
    out, err = _run(path, "--create-missing")
    # then the item is created with the model's defaults, and stderr says what that may mean
    assert "created 1 users and 1 items" in out
    assert "placeholder items are named" not in out
    assert (
        "Warning: the 1 placeholder items keep the item model's defaults: the model has none of the "
        "fields of RECOMMENDER['PLACEHOLDER_ITEM_VALUES'] (published)."
    ) in err


def test_without_create_missing_unknown_rows_fail_the_import(tmp_path):
    # given
    path = _write(tmp_path, "user_id,item_id,event_type,timestamp\nfrank,NEW-1,view,1700000000\n")
    # when / then: no row could be imported at all: non-zero exit
    with pytest.raises(CommandError, match="No row"):
        _run(path)


def test_chunks_smaller_than_the_file_import_everything(tmp_path, make_item, user_factory):
    # given
    make_item("K-1")
    user_factory(username="gina")
    rows = "".join(f"gina,K-1,view,{1700000000 + i}\n" for i in range(25))
    path = _write(tmp_path, "user_id,item_id,event_type,timestamp\n" + rows)
    # when
    out, _ = _run(path, "--chunk-size", "4")
    # then
    assert "25 rows: 25 stored" in out
    assert Event.objects.count() == 25


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("user,item,type,time\nx,y,view,1\n", "missing column(s) user_id, item_id, event_type, timestamp"),
        ("user_id,item_id,event_type,timestamp,colour\n", "unknown column(s) colour"),
    ],
)
def test_bad_header_exits_non_zero(tmp_path, content, message):
    # given
    path = _write(tmp_path, content)
    # when / then
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _run(path)


def test_negative_writers_exits_non_zero(tmp_path):
    with pytest.raises(CommandError, match="--writers"):
        _run(_write(tmp_path, "user_id,item_id,event_type,timestamp\n"), "--writers", "-1")


def test_missing_file_exits_non_zero(tmp_path):
    with pytest.raises(CommandError, match="Cannot open"):
        _run(str(tmp_path / "nope.csv"))


def test_import_restores_the_garbage_collector_thresholds(tmp_path, make_item, user_factory):
    # given: the import raises the (process-wide) cyclic-GC thresholds while it runs
    import gc

    make_item("K-1")
    user_factory(username="alice")
    before = gc.get_threshold()
    good = _write(tmp_path, "user_id,item_id,event_type,timestamp\nalice,K-1,view,1700000000\n")
    bad = str(tmp_path / "bad.csv")
    (tmp_path / "bad.csv").write_text("user,item\n", encoding="utf-8")
    # when: one import succeeds and one fails on its header
    out, _ = _run(good)
    with pytest.raises(CommandError):
        _run(bad)
    # then: the thresholds are as before, both times
    assert "1 rows: 1 stored" in out
    assert gc.get_threshold() == before
