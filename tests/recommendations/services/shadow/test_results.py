"""A shadow run's figures: overlap, and where the clicked items stood in each list."""

from __future__ import annotations

import pytest

from recommendations.models import Impression
from recommendations.services.shadow.results import shadow_results

pytestmark = pytest.mark.django_db


def _served(score, user):
    Impression.objects.create(
        recommendation_id=score.recommendation_id, user=user, item_keys=score.served_keys, placement="home"
    )


def click(event_factory, user, product, score):
    event_factory(user=user, item=product, event_type="click", recommendation_id=score.recommendation_id)


def test_clicks_are_located_in_the_served_and_the_shadow_list(
    user, other_user, product_factory, event_factory, shadow_run_factory, shadow_score_factory
):
    # given two scored requests of one run
    products = {sku: product_factory(sku=sku) for sku in ("A", "B", "C", "D")}
    run = shadow_run_factory(failures=3)
    first = shadow_score_factory(run=run, user=user, served_keys=["A", "B", "C"], shadow_keys=["C", "A"])
    second = shadow_score_factory(
        run=run, user=user, served_keys=["D", "A"], shadow_keys=["B"], overlap_at_10=0.0
    )
    _served(first, user)
    _served(second, user)
    # when the shopper clicks C (served 3rd, shadow 1st) and B (served 2nd, not in the shadow)
    # on the first list and D (served 1st, not in the shadow) on the second
    for score, sku in ((first, "C"), (first, "B"), (second, "D")):
        event_factory(
            user=user, item=products[sku], event_type="click", recommendation_id=score.recommendation_id
        )
    # and clicks that attribute nothing: another shopper's, an item the list did not show
    event_factory(
        user=other_user, item=products["A"], event_type="click", recommendation_id=first.recommendation_id
    )
    event_factory(
        user=user, item=products["D"], event_type="click", recommendation_id=first.recommendation_id
    )
    # then
    figures = shadow_results(run)
    assert figures.requests == 2
    assert figures.failures == 3
    assert figures.mean_overlap == pytest.approx((1 / 3 + 0.0) / 2)
    assert figures.clicks == figures.clicks_in_served == 3
    assert figures.clicks_in_shadow == 1
    assert figures.mean_rank_served == pytest.approx((3 + 2 + 1) / 3)
    assert figures.mean_rank_shadow == pytest.approx(1.0)


def test_a_list_without_impression_attributes_nothing(
    user, product_factory, event_factory, shadow_score_factory
):
    score = shadow_score_factory(user=user)
    event_factory(
        user=user,
        item=product_factory(sku="A"),
        event_type="click",
        recommendation_id=score.recommendation_id,
    )
    figures = shadow_results(score.run)
    assert (figures.requests, figures.clicks, figures.mean_rank_served) == (1, 0, None)
