"""What the profiles performance work changed: segment space, unweighted shares, rounding,
outlier eps floor, the COPY writer's text encoding, and the admin's fixed query count."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from sklearn.metrics import adjusted_rand_score

from recommendations.core.profiles import ProfileEvents, compute_features, fit_segments
from recommendations.core.profiles.outliers import knee_eps
from recommendations.core.profiles.segments import SegmentSpace
from recommendations.models import ProfileRun, UserProfile
from recommendations.services.profiles import rebuild_profiles
from recommendations.services.profiles.outcome import round_significant
from tests.factories import CategoryFactory, ProductFactory, UserFactory
from tests.recommendations.services.profiles.test_rebuild import plant

NOW = 1_700_000_000.0


def test_category_shares_are_unweighted_over_every_category():
    # given one user with a purchase in Books (weight 5 for affinities) and three Garden views
    events = ProfileEvents(
        n_users=1,
        users=np.zeros(4, dtype=np.int64),
        event_types=np.array(["purchase", "view", "view", "view"], dtype=object),
        timestamps=NOW - np.arange(4) * 60.0,
        values=np.array([10.0, np.nan, np.nan, np.nan]),
        quantities=np.ones(4),
        categories=np.array([0, 1, 1, 1]),
        prices=np.full(4, 10.0),
        is_bot=np.zeros(4, dtype=bool),
        category_names=["Books", "Garden", "Toys"],
    )
    # when
    table = compute_features(events, now=NOW, event_weights={"purchase": 5.0, "view": 1.0})
    # then: shares count events once each; the weighted affinities rank Books first
    assert table.category_names == ["Books", "Garden", "Toys"]
    assert table.category_shares.tolist() == [[0.25, 0.75, 0.0]]
    assert table.top_categories[0] == [("Books", 0.625), ("Garden", 0.375)]


def test_segment_space_realigns_categories_by_name_and_round_trips():
    # given a space fitted on log price levels 0.5, 1, 2 (median log 0, IQR ln 2)
    space = SegmentSpace(["A", "B"], affinity_weight=3.0, price_weight=1.0)
    space.fit(np.zeros((3, 2)), np.array([0.5, 1.0, 2.0]))
    # when shares arrive with the categories in another order plus an unknown one, price unknown
    matrix = SegmentSpace.from_dict(space.to_dict()).transform(
        np.array([[0.2, 0.8, 0.0]]), ["B", "A", "C"], np.array([np.nan])
    )
    # then
    assert space.price_center == pytest.approx(0.0)
    assert space.price_scale == pytest.approx(np.log(2.0))
    assert matrix.tolist() == [[pytest.approx(2.4), pytest.approx(0.6), 0.0]]


def test_segments_in_the_space_recover_types_that_volume_would_hide():
    # given three kinds of shoppers (one category each, or cheap items everywhere) whose event
    # volumes vary a hundredfold inside every kind
    rng = np.random.default_rng(3)
    kinds = np.repeat([0, 1, 2], 200)
    shares = np.zeros((600, 3))
    shares[kinds == 0] = rng.dirichlet([20, 1, 1], 200)
    shares[kinds == 1] = rng.dirichlet([1, 20, 1], 200)
    shares[kinds == 2] = rng.dirichlet([5, 5, 5], 200)
    price = np.where(kinds == 2, 0.5, 1.1) * rng.lognormal(0, 0.1, 600)
    space = SegmentSpace(["A", "B", "C"]).fit(shares, price)
    # when
    model = fit_segments(space.transform(shares, ["A", "B", "C"], price), k_range=(2, 6), random_state=42)
    labels = model.predict(space.transform(shares, ["A", "B", "C"], price))
    # then
    assert model.k == 3
    assert adjusted_rand_score(kinds, labels) > 0.95


def test_round_significant_matches_string_formatting():
    # given
    values = np.array([123456.789, 0.000123456789, -2.5e-7, 0.0, np.nan, np.inf, 1 / 3, 99999.5])
    # when
    rounded = round_significant(values)
    # then
    expected = [float(f"{v:.5g}") for v in values[:4]] + [None, None, float(f"{1 / 3:.5g}")]
    assert [None if np.isnan(v) else v for v in rounded[:7]] == expected
    assert rounded[7] == pytest.approx(99999.5, rel=1e-5)


def test_eps_is_never_below_the_floor_percentile_of_the_k_distance_curve():
    # given many identical rows (k-distance 0) and a spread-out rest
    rng = np.random.default_rng(0)
    data = np.vstack([np.zeros((900, 2)), rng.normal(size=(100, 2))])
    # when
    eps = knee_eps(data, 5, floor_percentile=99.0)
    # then
    from sklearn.neighbors import NearestNeighbors

    distances, _ = NearestNeighbors(n_neighbors=6).fit(data).kneighbors(data)
    assert eps >= np.percentile(distances[:, 5], 99.0) - 1e-12


@pytest.mark.django_db
def test_rebuild_stores_the_segment_space_and_places_users_by_category_mix():
    # given two categories and two kinds of users, each active in one of them
    books = CategoryFactory(name="Books", slug="books")
    garden = CategoryFactory(name="Garden", slug="garden")
    book = ProductFactory(category=books, price=Decimal("20.00"))
    spade = ProductFactory(category=garden, price=Decimal("20.00"))
    readers = UserFactory.create_batch(8)
    gardeners = UserFactory.create_batch(8)
    for i, user in enumerate(readers):
        plant(user, book, ["view"] * (3 + i), days_ago=1 + i)
    for i, user in enumerate(gardeners):
        plant(user, spade, ["view"] * (3 + 2 * i), days_ago=2 + i)
    # when
    rebuild_profiles(full=True)
    # then: each kind shares one segment, different from the other kind's
    run = ProfileRun.objects.get(kind=ProfileRun.Kind.FULL)
    assert run.params["segment_space"]["categories"] == ["Books", "Garden"] or run.params["segment_space"][
        "categories"
    ] == ["Garden", "Books"]
    reader_segments = {UserProfile.objects.get(user=u).segment_id for u in readers}
    gardener_segments = {UserProfile.objects.get(user=u).segment_id for u in gardeners}
    assert len(reader_segments) == 1 and len(gardener_segments) == 1
    assert reader_segments != gardener_segments


@pytest.mark.django_db
def test_admin_list_query_count_does_not_grow_with_profiles(admin_client):
    # given a rebuild over 5 users, then over 25
    category = CategoryFactory(name="Books", slug="books")
    product = ProductFactory(category=category, price=Decimal("20.00"))
    url = "/admin/recommendations/userprofile/"
    counts = []
    for batch in (5, 20):
        for user in UserFactory.create_batch(batch):
            plant(user, product, ["view", "view", "add_to_cart", "purchase"], value=Decimal("20"))
        rebuild_profiles(full=True)
        # when
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(url)
        # then
        assert response.status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]
