"""The profiles admin in a real browser: log in as staff, filter by a tag, open a profile."""

from __future__ import annotations

from decimal import Decimal

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_filters_profiles_by_tag_and_sees_reasons_and_recommendations(live_server, browser_page):
    # given shoppers in Garden and a rebuild
    from recommendations.services.profiles import rebuild_profiles
    from tests.factories import CategoryFactory, ProductFactory, StaffFactory, UserFactory
    from tests.recommendations.services.profiles.test_rebuild import plant

    garden = CategoryFactory(name="Garden", slug="garden")
    rake = ProductFactory(category=garden, price=Decimal("30"))
    ProductFactory(category=garden, price=Decimal("30"))
    fan = UserFactory(username="gardener")
    plant(fan, rake, ["view"] * 6 + ["add_to_cart", "purchase"], value=Decimal("30"))
    for user in UserFactory.create_batch(4):
        plant(user, rake, ["view"], days_ago=3)
    StaffFactory(username="boss")
    rebuild_profiles(full=True)
    page = browser_page
    # when staff logs in and filters by the tag
    page.goto(f"{live_server.url}/admin/login/?next=/admin/recommendations/userprofile/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "secret-pass-123")
    page.click("input[type=submit]")
    page.click("#changelist-filter a:has-text('fan of Garden')")
    page.wait_for_url("**tag=fan_of%3AGarden**")
    # then the list is filtered and the profile shows its tags, reasons and recommendations
    assert "tag=fan_of%3AGarden" in page.url
    page.click("a:text('gardener')")
    # count() does not wait: on a busy machine it ran before the change page had loaded
    page.wait_for_url("**/change/**")
    page.locator("#rec-tags").wait_for()
    assert page.locator("#rec-tags .rec-tag", has_text="fan of Garden").count() == 1
    assert "Share of activity in Garden: 100% (rule: more than 50%)" in page.locator("#rec-tags").inner_text()
    assert page.locator("#rec-recommendations").is_visible()
    recommendations = page.locator("#rec-recommendations .rec-recommendation").count()
    error = page.locator("#rec-recommendations-error").count()
    assert recommendations > 0 or error == 1
