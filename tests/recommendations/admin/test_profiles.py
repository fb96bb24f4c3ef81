"""Admin of profiles, segments and the dashboard; the tag-rule system check; the commands; the API."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape

from recommendations.models import Segment, UserProfile
from recommendations.services.profiles import rebuild_profiles
from recommendations.services.profiles.display import reason_text
from recommendations.services.profiles.explanations import segment_name
from recommendations.services.profiles.texts import render_tags
from tests.factories import CategoryFactory, ProductFactory, UserFactory
from tests.recommendations.services.profiles.test_rebuild import plant

pytestmark = pytest.mark.django_db


def shop_with_users(count: int) -> list:
    books = CategoryFactory(name="Books", slug="books")
    book = ProductFactory(category=books, price=Decimal("20"))
    users = UserFactory.create_batch(count)
    for i, user in enumerate(users):
        plant(
            user,
            book,
            ["view"] * (1 + i % 7) + (["add_to_cart", "purchase"] if i % 3 == 0 else []),
            days_ago=1 + i % 20,
            value=Decimal("20"),
        )
    rebuild_profiles(full=True)
    return users


def changelist_queries(client, django_assert_num_queries, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_changelist_query_count_does_not_grow_with_profiles(client, staff_user, django_assert_num_queries):
    # given 5 profiles, then 50
    client.force_login(staff_user)
    url = reverse("admin:recommendations_userprofile_changelist")
    shop_with_users(5)
    small = changelist_queries(client, django_assert_num_queries, url)
    UserProfile.objects.all().delete()
    shop_with_users(45)
    # when / then: the same number of queries for 50 profiles
    with django_assert_num_queries(small):
        response = client.get(url)
    assert response.status_code == 200
    assert UserProfile.objects.count() == 51  # the 50 shoppers and the staff user (every active user)


def test_changelist_shows_tags_as_chips_and_filters_by_tag(client, staff_user):
    # given
    users = shop_with_users(12)
    client.force_login(staff_user)
    tagged = UserProfile.objects.filter(tag_rows__label="fan_of:Books").count()
    # when
    response = client.get(reverse("admin:recommendations_userprofile_changelist") + "?tag=fan_of:Books")
    # then
    content = response.content.decode()
    assert response.status_code == 200
    assert content.count('<span class="rec-chip"') >= tagged > 0
    assert len(response.context["cl"].result_list) == tagged
    assert users[0].username in content or tagged < 12


@pytest.mark.parametrize("query", ["propensity=low", "is_outlier__exact=0", "q=shopper"])
def test_other_filters_and_search_answer(client, staff_user, query):
    shop_with_users(6)
    client.force_login(staff_user)
    response = client.get(reverse("admin:recommendations_userprofile_changelist") + "?" + query)
    assert response.status_code == 200


def test_detail_page_shows_tags_with_reasons_timeline_and_recommendations(client, staff_user):
    # given
    users = shop_with_users(6)
    profile = UserProfile.objects.get(user=users[0])
    client.force_login(staff_user)
    # when
    response = client.get(reverse("admin:recommendations_userprofile_change", args=[profile.pk]))
    # then
    content = response.content.decode()
    assert response.status_code == 200
    for tag in profile.tags:
        assert tag["label"] in content
        assert escape(reason_text(tag["reasons"][0])) in content  # the reason in words, not a code
    assert 'id="rec-timeline"' in content and "Purchase" in content
    assert 'id="rec-recommendations"' in content


def test_detail_page_survives_a_failing_serving_layer(client, staff_user, monkeypatch):
    # given serving that raises
    users = shop_with_users(3)
    import recommendations.services.serving as serving

    def broken(**kwargs):
        raise RuntimeError("model store offline")

    monkeypatch.setattr(serving, "recommend_for", broken)
    client.force_login(staff_user)
    # when
    response = client.get(reverse("admin:recommendations_userprofile_change", args=[users[0].pk]))
    # then
    assert response.status_code == 200
    assert (
        "Recommendations could not be computed: RuntimeError: model store offline"
        in response.content.decode()
    )


def test_export_action_writes_csv(client, staff_user):
    users = shop_with_users(4)
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:recommendations_userprofile_changelist"),
        {
            "action": "export_csv",
            "_selected_action": [users[0].pk, users[1].pk],
        },
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == ["user_id", "segment_number", "segment", "tags", "tag_labels", "propensity"]
    assert sorted(r["user_id"] for r in rows) == sorted([users[0].username, users[1].username])
    # codes for programs, words in the exporter's language for people
    profile = UserProfile.objects.select_related("segment").get(user=users[0])
    row = next(r for r in rows if r["user_id"] == users[0].username)
    assert row["segment_number"] == str(profile.segment.number)
    assert row["segment"] == segment_name(profile.segment.traits) != ""
    assert row["tags"].split("|") == [tag["label"] for tag in profile.tags]
    assert row["tag_labels"].split("|") == [tag["label"] for tag in render_tags(profile.tags)]
    assert row["tags"] and "_" in row["tags"] and " " in row["tag_labels"]  # codes vs words


def _fan_of_books(users: list) -> UserProfile:
    profiles = UserProfile.objects.select_related("segment").filter(user__in=users)
    return next(p for p in profiles if any(t["label"] == "fan_of:Books" for t in p.tags))


@pytest.fixture
def english_afterwards():
    """A Chinese request leaves Chinese active in this thread: later tests start in English."""
    yield
    translation.activate("en")


def test_export_action_renders_words_in_the_staff_members_language(client, staff_user, english_afterwards):
    profile = _fan_of_books(shop_with_users(6))
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:recommendations_userprofile_changelist"),
        {"action": "export_csv", "_selected_action": [profile.pk]},
        HTTP_ACCEPT_LANGUAGE="zh-Hans",
    )
    row = next(csv.DictReader(io.StringIO(response.content.decode())))
    with translation.override("zh-hans"):
        assert row["segment"] == segment_name(profile.segment.traits)
    assert "fan_of:Books" in row["tags"] and "Books 爱好者" in row["tag_labels"].split("|")


def test_segment_admin_links_to_members_and_dashboard_renders(client, staff_user):
    shop_with_users(8)
    client.force_login(staff_user)
    segment = Segment.objects.first()
    response = client.get(reverse("admin:recommendations_segment_changelist"))
    assert f"?segment__id__exact={segment.pk}" in response.content.decode()
    dashboard = client.get("/admin/recommendations/dashboard/")
    assert dashboard.status_code == 200
    assert dashboard.content.decode().count("<svg") >= 3
    index = client.get(reverse("admin:index")).content.decode()
    assert "/admin/recommendations/dashboard/" in index


@pytest.mark.parametrize(
    "url",
    [
        "/admin/recommendations/userprofile/",
        "/admin/recommendations/dashboard/",
        "/admin/recommendations/segment/",
    ],
)
def test_admin_pages_are_staff_only(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@override_settings(
    RECOMMENDER={
        "TAG_RULES": [
            {"label": "ok", "feature": "views", "operator": ">", "threshold": 1},
            {"label": "broken rule", "feature": "views", "operator": "=>", "threshold": 1},
        ]
    }
)
def test_invalid_tag_rule_is_a_system_check_error_naming_the_rule():
    errors = [e for e in run_checks() if e.id == "recommendations.E010"]
    assert len(errors) == 1
    assert "TAG_RULES[1] ('broken rule')" in errors[0].msg and "'operator'" in errors[0].msg


def test_commands_rebuild_and_export(tmp_path):
    users = shop_with_users(3)
    out = io.StringIO()
    call_command("rebuild_profiles", "--full", stdout=out)
    assert "full rebuild" in out.getvalue()
    path = tmp_path / "profiles.csv"
    call_command("export_profiles", "--out", str(path), stdout=io.StringIO())
    rows = list(csv.DictReader(path.open()))
    assert {r["user_id"] for r in rows} >= {u.username for u in users}
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_profiles", "--out", str(tmp_path / "missing" / "x.csv"))
    with pytest.raises(CommandError, match="Unknown user"):
        call_command("rebuild_profiles", "--users", "nobody-here")


def test_task_runs_the_service():
    from recommendations.tasks import rebuild_profiles as task

    shop_with_users(3)
    result = task.delay(full=True).get()
    assert result["kind"] == "full" and result["users"] >= 3
