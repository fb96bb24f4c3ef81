"""The serving service: fallback chain, business rules, explanations, impressions."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.template import Context, Template
from django.test import override_settings

from recommendations.models import Impression, NotInterested
from recommendations.services.experiments.plans import running_plan
from recommendations.services.merchandising.rules import rules_in_force
from recommendations.services.serving import impressions, recommend_for
from recommendations.services.serving.popularity import refresh_popularity
from recommendations.services.serving.relations import refresh_item_relations
from recommendations.services.shadow import sampling as shadow_sampling
from tests.recommendations.conftest import days_ago


def view(event_factory, item, *, user=None, visitor_id="", event_type="view", days=0.1, session_id=""):
    return event_factory(
        user=user,
        visitor_id=visitor_id,
        item=item,
        event_type=event_type,
        occurred_at=days_ago(days),
        session_id=session_id,
    )


@pytest.mark.django_db
def test_empty_database_gives_an_empty_list_without_error():
    # given no items and no events
    # when
    result = recommend_for(visitor_id="newcomer-1", limit=5)
    # then
    assert result.items == []
    assert result.source == "popular"
    assert result.model_version is None


@pytest.mark.django_db
def test_catalogue_without_events_serves_newest_items(catalogue):
    # given items but no events at all
    # when a brand-new visitor asks
    result = recommend_for(visitor_id="newcomer-1", limit=5)
    # then the list is full, newest first, each item explained
    assert [entry.key for entry in result.items] == ["H9", "H8", "H7", "H6", "H5"]
    assert {entry.reason for entry in result.items} == {"new in Hats"}
    assert [entry.position for entry in result.items] == [1, 2, 3, 4, 5]


@pytest.mark.django_db
def test_new_visitor_gets_full_list_of_trending_items(catalogue, event_factory, user):
    # given other shoppers' events: S3 bought, S1 carted, H2 viewed
    shoes, hats = catalogue["shoes"], catalogue["hats"]
    view(event_factory, shoes[3], user=user, event_type="purchase")
    view(event_factory, shoes[1], user=user, event_type="add_to_cart")
    view(event_factory, hats[2], user=user)
    # when a brand-new visitor asks for 6 items
    result = recommend_for(visitor_id="newcomer-1", limit=6)
    # then the weighted popular items come first, then new arrivals fill the list
    assert [entry.key for entry in result.items][:3] == ["S3", "S1", "H2"]
    assert [entry.reason for entry in result.items][:3] == ["trending"] * 3
    assert len(result.items) == 6
    assert all(entry.source == "popular" for entry in result.items)


@pytest.mark.django_db
def test_visitor_history_leads_to_popular_in_its_category(catalogue, event_factory, user):
    # given popular hats overall, and a visitor who looked at a shoe
    for hat in catalogue["hats"][:5]:
        view(event_factory, hat, user=user, event_type="purchase")
    view(event_factory, catalogue["shoes"][0], user=user)
    view(event_factory, catalogue["shoes"][1], user=user)
    view(event_factory, catalogue["shoes"][0], user=None, visitor_id="visitor-0001")
    # when
    result = recommend_for(visitor_id="visitor-0001", limit=3)
    # then the only other popular shoe leads, explained by its category
    assert result.items[0].key == "S1"
    assert result.items[0].reason == "popular in Shoes"


@pytest.mark.django_db
def test_purchased_items_are_never_recommended(catalogue, event_factory, user_factory):
    # given a popular shoe the user already bought
    buyer, others = user_factory(), user_factory()
    shoes = catalogue["shoes"]
    for shoe in shoes[:3]:
        view(event_factory, shoe, user=others, event_type="purchase")
    view(event_factory, shoes[0], user=buyer, event_type="purchase", days=20)
    # when
    result = recommend_for(user=buyer, limit=20)
    # then
    assert "S0" not in result.keys
    assert len(result.items) == 19


@pytest.mark.django_db
def test_popular_and_related_blocks_leave_out_what_the_shopper_bought(
    catalogue, event_factory, user_factory, page_request
):
    # given the most popular shoe, bought by the shopper, and bought with S1 by others
    from recommendations.services.serving import bought_together, popular_items

    buyer, others = user_factory(), user_factory()
    shoes = catalogue["shoes"]
    for shoe in shoes[:3]:
        view(event_factory, shoe, user=others, event_type="purchase", session_id="s1")
    view(event_factory, shoes[0], user=others, event_type="purchase", days=0.2)
    view(event_factory, shoes[0], user=buyer, event_type="purchase", days=20)
    refresh_popularity()
    refresh_item_relations()
    # when the shopper's page shows popular items and items bought with S1
    popular = popular_items(limit=20, context={"request": page_request(user=buyer)})
    related = bought_together("S1", limit=5, context={"request": page_request(user=buyer)})
    anonymous = popular_items(limit=20, context={"request": page_request()})
    # then the bought shoe is in neither list, while an anonymous visitor still sees it first
    assert "S0" not in popular.keys
    assert "S0" not in related.keys
    assert anonymous.keys[0] == "S0"


@pytest.mark.django_db
def test_cart_out_of_stock_inactive_and_not_interested_are_excluded(
    catalogue, event_factory, user, page_request
):
    # given four popular shoes, each excluded by one rule
    shoes = catalogue["shoes"]
    for shoe in shoes[:5]:
        view(event_factory, shoe, user=user, event_type="purchase")
    shoes[1].stock = 0
    shoes[1].save()
    shoes[2].is_active = False
    shoes[2].save()
    NotInterested.objects.create(visitor_id="visitor-0001", item_key="S3")
    request = page_request(cart={"S0": 1})
    # when
    result = recommend_for(visitor_id="visitor-0001", limit=5, context={"request": request})
    # then only S4 is left of the popular shoes
    assert [key for key in result.keys if key.startswith("S")][:1] == ["S4"]
    assert not {"S0", "S1", "S2", "S3"} & set(result.keys)


@pytest.mark.django_db
def test_exclude_parameter_and_no_duplicates_across_blocks(catalogue, page_request):
    # given one page request
    request = page_request()
    # when two blocks are rendered on it, the first excluding H9
    first = recommend_for(visitor_id="visitor-0001", limit=4, exclude=["H9"], context={"request": request})
    second = recommend_for(visitor_id="visitor-0001", limit=4, context={"request": request})
    # then
    assert first.keys == ["H8", "H7", "H6", "H5"]
    assert second.keys == ["H9", "H4", "H3", "H2"]
    assert first.recommendation_id != second.recommendation_id


@pytest.mark.django_db
def test_diversity_cap_limits_items_per_category(catalogue, event_factory, user):
    # given the six most popular items are all shoes
    for rank, shoe in enumerate(catalogue["shoes"][:6]):
        for _ in range(6 - rank):
            view(event_factory, shoe, user=user)
    view(event_factory, catalogue["hats"][0], user=user)
    # when at most two items of a category may be shown
    with override_settings(RECOMMENDER={**settings.RECOMMENDER, "DIVERSITY_CAP": 2}):
        result = recommend_for(visitor_id="newcomer-1", limit=4)
    # then
    assert result.keys[:3] == ["S0", "S1", "H0"]
    categories = [entry.item.category.slug for entry in result.items]
    assert categories.count("shoes") == 2
    assert categories.count("hats") == 2


@pytest.mark.django_db
def test_one_impression_row_per_list(catalogue, user, page_request):
    # given a page request with two blocks
    request = page_request(user=user)
    first = recommend_for(user=user, limit=3, placement="home", context={"request": request})
    second = recommend_for(user=user, limit=2, placement="footer", context={"request": request})
    # when the request finishes
    impressions.flush()
    # then one row per list, with its items, placement and shopper
    rows = {str(row.recommendation_id): row for row in Impression.objects.all()}
    assert set(rows) == {first.recommendation_id, second.recommendation_id}
    assert rows[first.recommendation_id].item_keys == first.keys
    assert rows[first.recommendation_id].placement == "home"
    assert rows[second.recommendation_id].user_id == user.pk
    assert rows[second.recommendation_id].source == "popular"


@pytest.mark.django_db
def test_without_request_no_impression_is_written(catalogue):
    # given / when the export path calls the service without a request
    recommend_for(visitor_id="v-12345678", limit=3)
    impressions.flush()
    # then
    assert Impression.objects.count() == 0


@pytest.mark.django_db
def test_bought_together_and_covisitation_explained(catalogue, event_factory, user_factory):
    # given shoppers who buy S0 with H5 in the same session
    from recommendations.services.serving import bought_together

    shoe, hat = catalogue["shoes"][0], catalogue["hats"][5]
    for _ in range(4):
        shopper = user_factory()
        view(event_factory, shoe, user=shopper, event_type="purchase", days=1.0)
        view(event_factory, hat, user=shopper, event_type="purchase", days=0.99)
    refresh_item_relations()
    refresh_popularity()
    # when
    result = bought_together("S0", limit=3)
    visitor = recommend_for(visitor_id="v-000000001", limit=3, context={"item": shoe})
    # then
    assert result.items[0].key == "H5"
    assert result.items[0].reason == "bought together with Shoe 0"
    assert result.items[0].source == "complement"
    assert visitor.items[0].key == "H5"
    assert visitor.items[0].reason == "bought together with Shoe 0"
    assert "S0" not in visitor.keys


@pytest.mark.django_db
def test_product_page_with_two_blocks_uses_few_queries(
    catalogue, event_factory, user, page_request, django_assert_max_num_queries
):
    # given some behaviour, precomputed relations and popularity
    for shoe in catalogue["shoes"][:4]:
        view(event_factory, shoe, user=user, event_type="purchase")
    refresh_item_relations()
    refresh_popularity()
    request = page_request(user=user)
    # the running experiments, the merchandising rules and the shadow runs (none) are read once
    # per process every few seconds, not per page
    running_plan("similar")
    rules_in_force("similar")
    shadow_sampling.runs_for("product")
    template = Template(
        "{% load recommendations %}{% show_similar product limit=4 %}"
        '{% show_recommended placement="product" limit=4 item=product %}'
    )
    # when / then
    # 10 for the page, 4 for writing its impressions under the erasure barrier (savepoint, lock,
    # tombstone check, release: a row queued before an erasure is never written after it)
    with django_assert_max_num_queries(14):
        html = template.render(Context({"request": request, "product": catalogue["shoes"][0]}))
        impressions.flush()
    assert html.count('class="rec-item"') == 8
    assert html.count("data-recommendation-id=") == 2


def _redis_reachable() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.django_db
def test_impressions_queue_in_redis_and_are_written_in_bulk(catalogue, user, page_request, settings):
    # given a Redis cache (db 4) and a queue of three lists
    from tests.conftest import require_service

    require_service("Redis", _redis_reachable())
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/4",
            "KEY_PREFIX": "test-serving-impressions",
        }
    }
    from django.core.cache import caches

    caches["default"].delete(impressions.QUEUE_KEY)
    impressions.flush()  # starts this process's flush interval now
    request = page_request(user=user)
    served = [
        recommend_for(user=user, limit=2, placement=f"p{i}", context={"request": request}) for i in range(3)
    ]
    # when the request ends (queue below the batch size), then the refresh task writes them
    impressions.flush(force=False)
    queued = impressions.pending()
    written_at_end_of_request = Impression.objects.count()
    written = impressions.flush()
    # then
    assert queued == 3
    assert written_at_end_of_request == 0
    assert written == 3
    rows = {str(row.recommendation_id): row for row in Impression.objects.all()}
    assert set(rows) == {result.recommendation_id for result in served}
    assert rows[served[1].recommendation_id].placement == "p1"
    assert rows[served[1].recommendation_id].item_keys == served[1].keys
    assert impressions.pending() == 0


def test_cache_key_is_the_default_caches_key_and_follows_settings_changes(settings):
    # given a default cache with one prefix and key version, whose key is read once
    from django.core.cache import cache

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_PREFIX": "shop-one",
            "VERSION": 3,
        }
    }
    first = impressions.cache_key("rec:fast:7")
    # when the cache settings change (another prefix, the default version)
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": "shop-two"}
    }
    second = impressions.cache_key("rec:fast:7")
    # then each is the key Django's cache itself makes under the settings of the time
    assert first == "shop-one:3:rec:fast:7"
    assert second == "shop-two:1:rec:fast:7" == cache.make_key("rec:fast:7")
    assert impressions.queue_key() == cache.make_key(impressions.QUEUE_KEY)


@pytest.mark.django_db
def test_purchases_outside_the_recent_history_stay_excluded_without_a_query_per_event(
    catalogue, event_factory, user_factory, settings
):
    # given a purchase older than the two most recent events the serving path reads
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.RECOMMENDER = {**getattr(settings, "RECOMMENDER", {}), "SESSION_EVENTS": 2}
    buyer = user_factory()
    view(event_factory, catalogue["shoes"][0], user=buyer, event_type="purchase", days=20)
    view(event_factory, catalogue["hats"][1], user=buyer, days=1.0)
    view(event_factory, catalogue["hats"][2], user=buyer, days=0.5)
    first = recommend_for(user=buyer, limit=20)
    # when the shopper has a new event
    view(event_factory, catalogue["hats"][3], user=buyer, days=0.01)
    with CaptureQueriesContext(connection) as captured:
        second = recommend_for(user=buyer, limit=20)
    # then the purchase is still left out, and no purchase query was needed for it
    assert "S0" not in first.keys
    assert "S0" not in second.keys
    assert not [query for query in captured.captured_queries if "'purchase'" in query["sql"]]
