"""GET /api/profiles/<username>/ (staff) and /api/profiles/me/ (own profile only)."""

from __future__ import annotations

import pytest

from tests.recommendations.admin.test_profiles import shop_with_users

pytestmark = pytest.mark.django_db


def test_staff_reads_any_profile_with_reasons(client, staff_user):
    users = shop_with_users(5)
    client.force_login(staff_user)
    response = client.get(f"/api/profiles/{users[0].username}/")
    body = response.json()
    assert response.status_code == 200
    assert body["username"] == users[0].username
    assert set(body) == {
        "username",
        "segment",
        "tags",
        "propensity",
        "propensity_source",
        "is_outlier",
        "outlier_reason",
        "features",
        "last_activity_at",
        "updated_at",
        "model_version",
        "notes",
    }
    assert all(tag["reasons"] for tag in body["tags"])


def test_unknown_profile_is_404_for_staff(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/api/profiles/nobody/").status_code == 404


@pytest.mark.parametrize("who", ["other", "self", "anonymous"])
def test_non_staff_cannot_read_profiles_by_username(client, who):
    users = shop_with_users(2)
    if who != "anonymous":
        client.force_login(users[0])
    target = users[1] if who == "other" else users[0]
    response = client.get(f"/api/profiles/{target.username}/")
    assert response.status_code in (401, 403)
    assert "features" not in response.content.decode()


def test_me_shows_only_own_segment_and_tags(client):
    users = shop_with_users(3)
    client.force_login(users[1])
    response = client.get("/api/profiles/me/")
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"username", "segment", "tags", "updated_at"}
    assert body["username"] == users[1].username
    assert set(body["segment"]) == {"name", "description"}


def test_me_without_profile_is_404_and_anonymous_is_refused(client, user):
    assert client.get("/api/profiles/me/").status_code in (401, 403)
    client.force_login(user)
    response = client.get("/api/profiles/me/")
    assert response.status_code == 404
    assert response.json()["detail"] == "No profile has been built for you yet."
