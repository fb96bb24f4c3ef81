"""The data clock: every window counts back from the newest stored event, not the wall clock.

The scenario of a shop that imports an older history (here: six weeks of 2017) and runs the
product's own commands with their defaults: it must train, profile, list popular items and
precompute its shoppers' lists, as a live shop with the same events would.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from behavior.items import get_item_model, item_key_field
from behavior.models import Event
from recommendations.adapter import get_adapter
from recommendations.data.clock import clock_bound, data_now
from recommendations.data.events import load_event_log
from recommendations.data.histories import load_histories
from recommendations.data.history_batches import active_users_queryset
from recommendations.models import PrecomputedList, ProfileTag, TrainingRun, UserProfile
from recommendations.services.profiles.outcome import round_significant
from recommendations.services.profiles.rebuild import rebuild_profiles
from recommendations.services.registry import get_active_model
from recommendations.services.serving import popularity
from recommendations.services.serving.precompute import refresh_recommendations
from recommendations.services.serving.service import popular_items
from recommendations.services.training import train_model
from tests import factories
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

START = datetime(2017, 11, 1, tzinfo=UTC)
SHOPPERS = 40
ITEMS = 30
DAYS = 42


def history_2017() -> list[tuple[str, str, str, int]]:
    """Six weeks of 2017: ``(username, item key, event type, unix seconds)`` rows, oldest first.

    Shopper ``u`` comes back every three days from day ``u % 10`` on and walks a ring of items
    (views, a cart now and then); every other shopper buys on every third visit. So there are
    buyers and non-buyers, recent and lapsed shoppers, and the last event is on day 41.
    """
    rows = []
    for u in range(SHOPPERS):
        for visit, day in enumerate(range(u % 10, DAYS, 3)):
            moment = START + timedelta(days=day, hours=10 + u % 8)
            for step in range(4):
                kind = "view"
                if step == 3 and visit % 2 == 1:
                    kind = "add_to_cart"
                if step == 3 and u % 2 == 0 and visit % 3 == 2:
                    kind = "purchase"
                key = f"OLD-{(u + visit + step) % ITEMS:02d}"
                rows.append((f"old{u:03d}", key, kind, int((moment + timedelta(minutes=step)).timestamp())))
    return sorted(rows, key=lambda row: row[3])


def import_history(tmp_path, rows) -> str:
    """``import_events --create-missing`` of ``rows``, as a shop would run it; returns its stdout."""
    path = tmp_path / "history-2017.csv"
    lines = ["user_id,item_id,event_type,timestamp", *(",".join(map(str, row)) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = io.StringIO()
    options = {"stdout": out, "stderr": io.StringIO()}
    call_command("import_events", str(path), "--create-missing", "--no-progress", **options)
    return out.getvalue()


@pytest.fixture
def old_shop(tmp_path, tiny_network, fresh_registry, item_factory):
    """The 2017 history imported into an empty shop (only a first item exists, for its category)."""
    item_factory()  # placeholders attach to an existing category, as in a shop with a catalogue
    rows = history_2017()
    report = import_history(tmp_path, rows)
    assert f"{len(rows)} rows: {len(rows)} stored" in report
    return rows


# --- the clock itself ------------------------------------------------------------------------------


def test_without_events_the_data_clock_is_the_wall_clock():
    wall = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert data_now(wall) == wall


def test_the_data_clock_is_the_newest_human_event(ring_events):
    # given a ring walk two days old and one newer event of a bot
    walk = ring_events(start=timezone.now() - timedelta(days=2))
    newest = max(event.occurred_at for event in walk["events"])
    factories.EventFactory(event_id=uuid.uuid4(), occurred_at=newest + timedelta(hours=1), is_bot=True)
    # then the clock is the newest shopper's event, not the bot's and not the wall clock
    assert data_now() == newest


def test_one_future_dated_event_does_not_move_the_clock(old_shop, recommender_settings_override):
    # given the 2017 history and one event stamped ten years ahead (a broken client clock)
    newest_2017 = datetime.fromtimestamp(max(row[3] for row in old_shop), tz=UTC)
    assert data_now() == newest_2017
    wall = timezone.now()
    factories.EventFactory(event_id=uuid.uuid4(), occurred_at=wall + timedelta(days=3650))
    # then the clock ignores it: still the newest 2017 event
    assert data_now(wall) == newest_2017
    # and an event within the allowed skew does count: it is the clock itself
    close = wall + timedelta(seconds=200)
    factories.EventFactory(event_id=uuid.uuid4(), occurred_at=close)
    assert data_now(wall) == close
    # but not beyond a smaller skew setting: the clock never passes wall + skew
    with recommender_settings_override(DATA_CLOCK_SKEW_SECONDS=60):
        assert clock_bound(wall) == wall + timedelta(seconds=60)
        assert data_now(wall) == newest_2017


# --- an imported 2017 history through the product's own path --------------------------------------


@pytest.mark.swappable
def test_an_imported_2017_history_trains_profiles_and_serves_with_the_defaults(old_shop):
    rows = old_shop
    shoppers = {row[0] for row in rows}
    buyers = {row[0] for row in rows if row[2] == "purchase"}

    # the placeholder items are recommendable (an event proves the item existed)
    keys = {row[1] for row in rows}
    assert len(get_adapter().filter_available(keys)) == len(keys) == ITEMS

    # training with the default TRAINING_WINDOW_DAYS (365) finds every event
    run = train_model(triggered_by="test")
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert (run.event_count, run.user_count, run.item_count) == (len(rows), SHOPPERS, ITEMS)
    assert run.model_version.status == "active"

    # profiles: recency from the end of the history, a real propensity, no blanket "churn risk"
    result = rebuild_profiles(full=True)
    assert result.propensity_source == "model"
    profiles = UserProfile.objects.filter(user__username__in=shoppers).select_related("user")
    assert profiles.count() == SHOPPERS
    recency = np.array([p.features["recency_days"] for p in profiles])
    assert recency.min() == 0.0 and recency.max() < 10  # everyone came back within 10 days of the end
    propensity = np.array([p.propensity for p in profiles])
    # not the 0.0000 of a clock years after the last event: the buyers (every other shopper) are
    # told apart from those who never bought
    bought = np.array([p.user.username in buyers for p in profiles])
    assert propensity.max() > 0.5
    assert propensity[bought].mean() > 5 * propensity[~bought].mean()
    # and it reads each shopper's whole history, as the head did when it was fitted, not only the
    # last MAX_SEQUENCE_LENGTH (20 here) events the network looks at
    heavy = profiles.get(user__username="old000")
    history = load_histories(users=[heavy.user_id], limit=10_000)["old000"]
    assert len(history) > 20
    clock = float(np.nextafter(data_now().timestamp(), np.inf))
    expected = get_active_model().recommender.propensity([history], clock)
    assert heavy.propensity == round_significant(expected)[0]
    last_20 = get_active_model().recommender.propensity([history[-20:]], clock)
    assert heavy.propensity != round_significant(last_20)[0]
    churn = ProfileTag.objects.filter(label="churn risk", profile__user__username__in=shoppers).count()
    assert buyers and churn == 0  # nobody lapsed: the last visits are within 10 days of the end
    last = max(datetime.fromtimestamp(row[3], tz=UTC) for row in rows)
    assert profiles.order_by("-last_activity_at").first().last_activity_at == last

    # popularity and trending: the imported items, not an empty list
    assert popularity.refresh_popularity() == ITEMS
    popularity.clear_local()
    listed = popular_items(limit=5, record=False)
    assert len(listed) == 5
    assert {item.source for item in listed} == {"popular"}

    # precompute: every shopper of the history is active (within ACTIVE_USER_DAYS of its end)
    users = get_user_model().objects.filter(username__in=shoppers)
    assert sorted(active_users_queryset(90)) == sorted(users.values_list("pk", flat=True))
    done = refresh_recommendations()
    assert done.users == SHOPPERS
    lists = PrecomputedList.objects.filter(user__username__in=shoppers)
    assert lists.count() == SHOPPERS
    assert all(row.item_keys for row in lists)


def test_a_model_without_a_propensity_head_leaves_propensity_to_the_heuristic(
    tmp_path, tiny_network, fresh_registry, item_factory
):
    # given a 2017 history without a single purchase: the model can learn no propensity head
    item_factory()
    rows = [row for row in history_2017() if row[2] != "purchase"]
    import_history(tmp_path, rows)
    run = train_model(triggered_by="test")
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert run.model_version.report["propensity"]["trained"] is False

    # when the profiles are rebuilt
    result = rebuild_profiles(full=True)

    # then the propensity is the heuristic's (which ranks shoppers), not the model's base rate of 0
    assert result.propensity_source == "heuristic"
    assert any("has no propensity head" in note for note in result.notes)
    profiles = UserProfile.objects.filter(user__username__in={row[0] for row in rows})
    propensity = np.array([p.propensity for p in profiles])
    assert len(propensity) == SHOPPERS and propensity.min() > 0.0 and len(set(propensity)) > 1
    assert {p.propensity_source for p in profiles} == {"heuristic"}


@pytest.mark.swappable
def test_windows_count_back_from_the_newest_event(old_shop):
    rows = old_shop
    end = max(row[3] for row in rows)
    # the training loader's window: the last 7 days of the history
    week = load_event_log(window_days=7)
    assert len(week) == sum(1 for row in rows if row[3] >= end - 7 * 86_400)
    assert 0 < len(week) < len(rows)
    # a clock given explicitly wins (a caller that already read it)
    assert len(load_event_log(window_days=7, clock=timezone.now())) == 0


# --- the not-enough-data message ------------------------------------------------------------------


@pytest.mark.swappable
def test_not_enough_data_says_how_many_events_lie_outside_the_window(old_shop, recommender_settings_override):
    rows = old_shop
    end = max(row[3] for row in rows)
    inside = sum(1 for row in rows if row[3] >= end - 86_400)
    assert inside < 200
    clock = datetime.fromtimestamp(end, tz=UTC)
    needed = int(np.ceil((end - min(row[3] for row in rows)) / 86_400))

    with recommender_settings_override(MIN_TRAINING_EVENTS=200):
        run = train_model(triggered_by="test", window_days=1)

    assert run.status == TrainingRun.Status.NOT_ENOUGH_DATA
    assert run.error == (
        f"{inside} usable events; MIN_TRAINING_EVENTS is 200; {len(rows) - inside:,} more events are "
        f"older than the 1-day window ending at {clock:%Y-%m-%d %H:%M:%S} UTC (the newest stored "
        f"event): run `retrain --window-days {needed}` or set TRAINING_WINDOW_DAYS to {needed} "
        "(None: every event) to include them"
    )
    # and the suggested window does include every event
    assert len(load_event_log(window_days=needed)) == len(rows)


@pytest.mark.swappable
def test_placeholder_items_are_created_available(old_shop):
    model = get_item_model()
    item = model._default_manager.get(**{item_key_field(): "OLD-07"})
    names = {f.name for f in model._meta.concrete_fields}
    if "stock" in names:
        assert item.stock == 1
    if "is_active" in names:
        assert item.is_active is True
    if "available" in names:
        assert item.available is True
    assert Event.objects.filter(item=item).exists()


@pytest.mark.parametrize("value", [-1, "300", True, float("nan"), float("inf")])
def test_an_invalid_clock_skew_is_a_startup_error(value: object, settings) -> None:
    from recommendations.checks import check_settings

    settings.RECOMMENDER = {**settings.RECOMMENDER, "DATA_CLOCK_SKEW_SECONDS": value}
    errors = [e for e in check_settings() if e.id == "recommendations.E005"]
    assert len(errors) == 1 and "DATA_CLOCK_SKEW_SECONDS" in errors[0].msg


@pytest.mark.parametrize("value", [0, 300, 2.5])
def test_a_valid_clock_skew_passes_the_check(value: object, settings) -> None:
    from recommendations.checks import check_settings

    settings.RECOMMENDER = {**settings.RECOMMENDER, "DATA_CLOCK_SKEW_SECONDS": value}
    assert not [e for e in check_settings() if e.id == "recommendations.E005"]
