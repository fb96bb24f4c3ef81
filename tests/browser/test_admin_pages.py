"""What staff read in the admin, in a real browser: the dashboard's charts with units and names,
a profile by its shopper's name with interest in every category and features in words, the
profile list marking only the profiles to review, and a model version's metrics as a table.

Screenshots of each page are kept as test artefacts (see ``conftest.SCREENSHOTS``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CATEGORIES = ("Cameras", "Garden", "Books", "Coffee", "Phones", "Toys")


@pytest.fixture
def staff_shop(transactional_db):
    """Six categories, a camera fan among ordinary shoppers, profiles rebuilt, two model versions
    (holdout rates between 0 and 1 beside a count of 1,806 users) and impressions of two placements."""
    from recommendations.models import Impression, ModelVersion, UserProfile
    from recommendations.services.profiles import rebuild_profiles
    from tests.factories import CategoryFactory, ProductFactory, StaffFactory, UserFactory
    from tests.recommendations.services.profiles.test_rebuild import plant

    products = {
        name: ProductFactory(category=CategoryFactory(name=name, slug=name.lower()), price=Decimal("30"))
        for name in CATEGORIES
    }
    fan = UserFactory(username="shopper00256")
    plant(fan, products["Cameras"], ["view"] * 6 + ["add_to_cart", "purchase"], value=Decimal("30"))
    plant(fan, products["Garden"], ["view"] * 2, days_ago=2)
    for user in UserFactory.create_batch(5):
        plant(user, products["Books"], ["view"], days_ago=3)
    rebuild_profiles(full=True)
    for number, ndcg in ((1, 0.041), (2, 0.058)):
        ModelVersion.objects.create(
            number=number,
            artifact_path="none",
            sha256="0" * 64,
            metrics={"ndcg@10": ndcg, "precision@10": ndcg / 2, "users": 1806},
            baseline_metrics={"popularity": {"ndcg@10": 0.02, "precision@10": 0.01, "users": 1806}},
            hyperparameters={"epochs": 5, "embedding_dim": 64},
            artifact_files={"model.pt": "ab" * 32},
        )
    Impression.objects.create(placement="home", model_version=2, item_keys=["A"])
    Impression.objects.create(placement="home", model_version=None, item_keys=["A"])
    StaffFactory(username="boss")
    return UserProfile.objects.get(user=fan)


def _log_in(page, url: str) -> None:
    page.goto(f"{url}/admin/login/?next=/admin/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "secret-pass-123")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def _texts(page, selector: str) -> list[str]:
    """The text of each element (SVG text has no rendered inner text; table heads are upper-cased by CSS)."""
    return page.locator(selector).evaluate_all("els => els.map(e => e.textContent.trim())")


def test_the_dashboard_draws_rates_and_counts_apart_with_units_and_full_names(
    live_server, browser_page, staff_shop, screenshot
):
    page = browser_page
    _log_in(page, live_server.url)
    # when staff open the dashboard
    page.goto(f"{live_server.url}/admin/recommendations/dashboard/")
    page.locator("#rec-dashboard").wait_for()
    screenshot(page, "dashboard")
    # then the metrics chart is in percent and its axis tops at the best rate, not at 1,806 users
    ticks = _texts(page, "#rec-metrics .rec-y-tick")
    assert ticks == ["0%", "2.9%", "5.8%"]
    assert _texts(page, "#rec-metrics .rec-x-tick") == ["v1", "v2"]
    # and the counts have their own chart
    assert _texts(page, "#rec-metric-counts .rec-y-tick")[-1] == "1,806"
    # and placements read in words, segment names in full with their unit
    ctr_labels = _texts(page, "#rec-ctr .rec-bar-label")
    assert ctr_labels == ["home, no model (fallback lists)", "home, model v2"]
    segment_labels = _texts(page, "#rec-segments .rec-bar-label")
    from recommendations.models import Segment
    from recommendations.services.profiles.explanations import segment_title

    names = [segment_title(row.number, row.traits, row.name) for row in Segment.objects.order_by("number")]
    assert names and segment_labels == names  # whole names, never cut
    assert all(value.endswith(" shoppers") for value in _texts(page, "#rec-segments .rec-bar-value"))


def test_a_profile_reads_by_name_with_every_category_and_features_in_words(
    live_server, browser_page, staff_shop, screenshot
):
    page = browser_page
    _log_in(page, live_server.url)
    # when staff open the profile list and then the camera fan's profile
    page.goto(f"{live_server.url}/admin/recommendations/userprofile/")
    page.locator("#result_list").wait_for()
    screenshot(page, "profile-list")
    # then no row carries a red cross: only profiles to review are marked
    assert page.locator("#result_list img[src*='icon-no']").count() == 0
    flagged = page.locator("#result_list .rec-review-flag").count()
    from recommendations.models import UserProfile

    assert flagged == UserProfile.objects.filter(is_outlier=True).count()
    page.goto(f"{live_server.url}/admin/recommendations/userprofile/{staff_shop.pk}/change/")
    page.locator("#rec-interest").wait_for()
    screenshot(page, "profile")
    # then the page names the shopper, not a user id
    assert "profile of shopper00256" in page.locator("#content").inner_text()
    # and interest covers all six categories, Cameras first, shares in percent adding up to 100
    rows = page.locator("#rec-interest .rec-interest-row")
    assert rows.count() == len(CATEGORIES)
    first = rows.first.locator("td").all_inner_texts()
    assert first[0] == "Cameras"
    shares = [int(row.split("\t")[-1].strip().rstrip("%")) for row in rows.all_inner_texts()]
    assert 99 <= sum(shares) <= 101 and shares[0] > 50
    # and features read in words with their units, never as column codes
    features = page.locator("#rec-features").inner_text()
    assert "recency_days" not in features and "avg_order_value" not in features
    assert "Last active" in features and "Total spent" in features
    assert page.locator("#rec-features tr[data-code=monetary] td").last.inner_text() == "€30.00"
    assert page.locator("#rec-features tr[data-code=views] td").last.inner_text() == "8"
    reasons = _texts(page, "#rec-tags .rec-reason")
    assert "Share of activity in Cameras: " in " ".join(reasons)


def test_a_model_version_shows_its_metrics_as_a_table_not_json(
    live_server, browser_page, staff_shop, screenshot
):
    from recommendations.models import ModelVersion

    page = browser_page
    _log_in(page, live_server.url)
    version = ModelVersion.objects.get(number=2)
    # when staff open version 2
    page.goto(f"{live_server.url}/admin/recommendations/modelversion/{version.pk}/change/")
    page.locator("table.rec-metrics").wait_for()
    screenshot(page, "model-version")
    # then the metrics are a table: this version against popularity, rates in percent, counts whole
    assert _texts(page, "table.rec-metrics thead th") == [
        "metric",
        "this version",
        "popularity",
    ]
    rows = {
        row.locator("th").inner_text(): row.locator("td").all_inner_texts()
        for row in page.locator("table.rec-metrics tbody tr").all()
    }
    assert rows == {
        "ndcg@10": ["5.8%", "2.0%"],
        "precision@10": ["2.9%", "1.0%"],
        "users": ["1,806", "1,806"],
    }
    # and hyperparameters are name/value rows; the raw JSON is folded away
    assert page.locator("table.rec-key-values tr:has(th:text('epochs')) td").first.inner_text() == "5"
    assert all(not pre.is_visible() for pre in page.locator("details.rec-raw pre").all())
