"""rebuild_profiles on planted behaviour: tags with reasons, missing parts, upsert, incremental."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from behavior.models import Event
from recommendations.models import ProfileRun, ProfileTag, Segment, UserProfile
from recommendations.services.profiles import rebuild_profiles
from recommendations.services.profiles.explanations import note_texts, segment_description, segment_name
from tests.factories import CategoryFactory, EventFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def plant(user, product, types, *, days_ago=1.0, value=None, spacing_seconds=120):
    """Bulk-insert ``types`` events of ``user`` on ``product`` ending ``days_ago`` days ago."""
    end = timezone.now() - timedelta(days=days_ago)
    events = [
        EventFactory.build(
            user=user,
            item=product,
            event_type=event_type,
            occurred_at=end - timedelta(seconds=spacing_seconds * (len(types) - i)),
            value=value if event_type == "purchase" else None,
        )
        for i, event_type in enumerate(types)
    ]
    Event.objects.bulk_create(events)


@pytest.fixture
def shop():
    """Two categories with a cheap, a typical and a dear product each, plus a crowd of ordinary users."""
    books = CategoryFactory(name="Books", slug="books")
    garden = CategoryFactory(name="Garden", slug="garden")
    products = {
        "book": ProductFactory(category=books, price=Decimal("20.00")),
        "book_cheap": ProductFactory(category=books, price=Decimal("5.00")),
        "book_dear": ProductFactory(category=books, price=Decimal("40.00")),
        "spade": ProductFactory(category=garden, price=Decimal("30.00")),
        "rake": ProductFactory(category=garden, price=Decimal("30.00")),
    }
    crowd = UserFactory.create_batch(12)
    for i, user in enumerate(crowd):
        product = products["book"] if i % 2 else products["spade"]
        plant(user, product, ["view", "view", "add_to_cart", "purchase"], days_ago=3 + i, value=Decimal("20"))
    return products


def labels_of(user) -> set[str]:
    return {tag["label"] for tag in UserProfile.objects.get(user=user).tags}


def test_high_value_fires_for_the_top_spender_only(shop):
    # given a customer spending far more than the crowd
    big = UserFactory()
    plant(big, shop["book"], ["view", "purchase"], value=Decimal("900"))
    # when
    rebuild_profiles(full=True)
    # then
    assert "high_value" in labels_of(big)
    assert ProfileTag.objects.filter(label="high_value").count() == 1
    tag = next(t for t in UserProfile.objects.get(user=big).tags if t["label"] == "high_value")
    assert tag["reasons"][0]["feature"] == "monetary"
    assert tag["reasons"][0]["value"] == 900.0
    assert tag["reasons"][0]["operator"] == ">"
    assert tag["reasons"][0]["percentile"] == 90


def test_loyal_needs_three_orders(shop):
    # given one user with three orders (three sessions a day apart) and one with two
    loyal, almost = UserFactory(), UserFactory()
    for day in (1, 2, 3):
        plant(loyal, shop["book"], ["view", "purchase"], days_ago=day, value=Decimal("20"))
    for day in (1, 2):
        plant(almost, shop["book"], ["view", "purchase"], days_ago=day, value=Decimal("20"))
    # when
    rebuild_profiles(full=True)
    # then
    assert "loyal" in labels_of(loyal)
    assert "loyal" not in labels_of(almost)
    reason = next(t for t in UserProfile.objects.get(user=loyal).tags if t["label"] == "loyal")["reasons"][0]
    assert reason == {"feature": "frequency", "value": 3.0, "operator": ">=", "threshold": 3.0}


def test_new_customer_is_first_seen_within_two_weeks(shop):
    # given a newcomer and someone whose first event is 40 days old
    newcomer, veteran = UserFactory(), UserFactory()
    plant(newcomer, shop["book"], ["view"], days_ago=2)
    plant(veteran, shop["book"], ["view"], days_ago=40)
    plant(veteran, shop["book"], ["view"], days_ago=1)
    # when
    rebuild_profiles(full=True)
    # then
    assert "new_customer" in labels_of(newcomer)
    assert "new_customer" not in labels_of(veteran)


def test_churn_risk_is_a_buyer_gone_quiet(shop):
    # given a buyer inactive for 90 days, and a recent buyer
    gone, recent = UserFactory(), UserFactory()
    plant(gone, shop["book"], ["view", "purchase"], days_ago=90, value=Decimal("20"))
    plant(recent, shop["book"], ["view", "purchase"], days_ago=2, value=Decimal("20"))
    # when
    rebuild_profiles(full=True)
    # then
    assert "churn_risk" in labels_of(gone)
    assert "churn_risk" not in labels_of(recent)
    reasons = next(t for t in UserProfile.objects.get(user=gone).tags if t["label"] == "churn_risk")[
        "reasons"
    ]
    assert [r["feature"] for r in reasons] == ["purchase_recency_days", "recency_days"]


def test_cart_abandoner_leaves_carts_unbought(shop):
    # given four cart additions without a purchase, and a shopper who bought what they added
    abandoner, buyer = UserFactory(), UserFactory()
    plant(abandoner, shop["book"], ["view", "add_to_cart"] * 4)
    plant(buyer, shop["book"], ["view", "add_to_cart", "purchase"] * 2, value=Decimal("20"))
    # when
    rebuild_profiles(full=True)
    # then
    assert "cart_abandoner" in labels_of(abandoner)
    assert "cart_abandoner" not in labels_of(buyer)


def test_bargain_hunter_looks_at_cheap_items(shop):
    # given a shopper viewing items at a quarter of the category median, and one at the median
    hunter, typical = UserFactory(), UserFactory()
    plant(hunter, shop["book_cheap"], ["view"] * 4)
    plant(typical, shop["book"], ["view"] * 4)
    # when
    rebuild_profiles(full=True)
    # then
    assert "bargain_hunter" in labels_of(hunter)
    assert "bargain_hunter" not in labels_of(typical)
    reason = next(t for t in UserProfile.objects.get(user=hunter).tags if t["label"] == "bargain_hunter")[
        "reasons"
    ][0]
    assert reason["value"] == 0.25


def test_likely_buyer_from_heuristic_propensity_without_a_model(shop):
    # given an active shopper with many recent carts and orders, and a one-view visitor
    keen, idle = UserFactory(), UserFactory()
    for hour in range(6):
        plant(
            keen,
            shop["book"],
            ["view", "add_to_cart", "add_to_cart", "purchase"],
            days_ago=0.1 + hour * 0.05,
            value=Decimal("20"),
        )
    plant(idle, shop["book"], ["view"], days_ago=20)
    # when
    result = rebuild_profiles(full=True)
    # then
    keen_profile = UserProfile.objects.get(user=keen)
    assert result.propensity_source == "heuristic"
    assert keen_profile.propensity_source == "heuristic"
    assert keen_profile.propensity >= 0.6
    assert "likely_buyer" in labels_of(keen)
    assert "likely_buyer" not in labels_of(idle)
    assert "no_active_model" in [note["code"] for note in keen_profile.notes]
    assert any(text.startswith("no active model: ") for text in note_texts(keen_profile.notes))


def test_window_shopper_views_a_lot_without_buying(shop):
    # given 20 views and no purchase, and 20 views with a purchase
    window, buyer = UserFactory(), UserFactory()
    plant(window, shop["book"], ["view"] * 20)
    plant(buyer, shop["book"], ["view"] * 20 + ["purchase"], value=Decimal("20"))
    # when
    rebuild_profiles(full=True)
    # then
    assert "window_shopper" in labels_of(window)
    assert "window_shopper" not in labels_of(buyer)


def test_fan_of_category_is_templated_per_category(shop):
    # given a gardener (all events in Garden) and a shopper split between both categories
    gardener, mixed = UserFactory(), UserFactory()
    plant(gardener, shop["rake"], ["view"] * 6)
    plant(mixed, shop["rake"], ["view"] * 3)
    plant(mixed, shop["book"], ["view"] * 3, days_ago=2)
    # when
    rebuild_profiles(full=True)
    # then
    assert "fan_of:Garden" in labels_of(gardener)
    assert not {label for label in labels_of(mixed) if label.startswith("fan_of:")}
    reasons = next(t for t in UserProfile.objects.get(user=gardener).tags if t["label"] == "fan_of:Garden")[
        "reasons"
    ]
    assert reasons[0] == {"feature": "affinity:Garden", "value": 1.0, "operator": ">", "threshold": 0.5}


def test_users_with_missing_parts_get_a_profile_that_explains_them(shop):
    # given a single-event user, a user without events, and a buyer of an unpriced item
    single, nothing, unpriced_buyer = UserFactory(), UserFactory(), UserFactory()
    plant(single, shop["book"], ["view"])
    free = ProductFactory(category=shop["book"].category, price=Decimal("0"))
    plant(unpriced_buyer, free, ["view", "purchase"])
    # when
    rebuild_profiles(full=True)
    # then
    single_profile = UserProfile.objects.get(user=single)
    assert single_profile.segment is not None
    assert single_profile.features["purchase_recency_days"] is None
    assert "no_purchases" in [note["code"] for note in single_profile.notes]
    empty = UserProfile.objects.get(user=nothing)
    assert empty.segment is None and empty.propensity is None and empty.last_activity_at is None
    assert any("no events recorded for this account" in text for text in note_texts(empty.notes))
    unpriced = UserProfile.objects.get(user=unpriced_buyer)
    assert unpriced.features["monetary"] is None
    assert {"code": "no_priced_purchases", "params": {"purchases": 1}} in unpriced.notes
    assert "monetary: the only purchase has no known price (filled with the median)" in note_texts(
        unpriced.notes
    )


def test_segments_are_named_sized_and_stored_with_the_run(shop):
    # when
    result = rebuild_profiles(full=True)
    # then
    run = ProfileRun.objects.get(pk=result.run_id)
    segments = list(Segment.objects.filter(run=run))
    assert run.status == "completed" and run.kind == "full"
    assert len(segments) == result.segments == run.k >= 1
    assert sum(s.size for s in segments) == UserProfile.objects.filter(segment__isnull=False).count()
    # stored as codes and numbers, put into words when read
    assert all(s.traits and not s.name and not s.description for s in segments)
    assert all(segment_name(s.traits) and segment_description(s.traits) for s in segments)
    assert set(run.params["scaling_choices"]["monetary"].split(", ")) >= {"median fill", "log1p"}
    assert "eps" in run.params["outliers"] and run.params["tag_rules"]


def test_rebuild_twice_is_idempotent(shop):
    # given
    rebuild_profiles(full=True)
    first = {p.pk: (p.segment.traits if p.segment else None, p.tag_labels) for p in UserProfile.objects.all()}
    tags = ProfileTag.objects.count()
    # when
    rebuild_profiles(full=True)
    # then
    second = {
        p.pk: (p.segment.traits if p.segment else None, p.tag_labels) for p in UserProfile.objects.all()
    }
    assert second == first
    assert ProfileTag.objects.count() == tags
    assert Segment.objects.count() == ProfileRun.objects.filter(kind="full").first().k


def test_incremental_rebuild_touches_only_changed_users(shop):
    # given a full rebuild, then new events for one user only
    rebuild_profiles(full=True)
    changed = UserFactory()
    untouched_stamp = UserProfile.objects.order_by("pk").first().updated_at
    plant(changed, shop["book_cheap"], ["view"] * 4, days_ago=0)
    # when
    result = rebuild_profiles()
    # then
    assert result.kind == "incremental" and result.users == 1
    profile = UserProfile.objects.get(user=changed)
    assert (
        profile.segment is not None and profile.segment.run_id == ProfileRun.objects.filter(kind="full")[0].pk
    )
    assert "bargain_hunter" in labels_of(changed)
    assert UserProfile.objects.order_by("pk").first().updated_at == untouched_stamp


def test_incremental_rebuild_of_named_users_reuses_the_centres(shop):
    # given
    full = rebuild_profiles(full=True)
    user = UserProfile.objects.filter(segment__isnull=False).first().user
    before = UserProfile.objects.get(user=user).segment_id
    # when nothing changed and the user is rebuilt explicitly
    result = rebuild_profiles(user_ids=[user.pk])
    # then
    assert result.kind == "incremental"
    assert UserProfile.objects.get(user=user).segment_id == before
    assert Segment.objects.filter(run_id=full.run_id).count() == full.segments


@override_settings(
    RECOMMENDER={
        "TAG_RULES": [
            {
                "label": "viewer",
                "feature": "views",
                "operator": ">",
                "threshold": 1,
                "weight": 1,
                "description": "d",
            },
        ]
    }
)
def test_tag_rules_come_from_settings(shop):
    # when
    rebuild_profiles(full=True)
    # then
    assert set(ProfileTag.objects.values_list("label", flat=True)) == {"viewer"}
