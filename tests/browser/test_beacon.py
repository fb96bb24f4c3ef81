"""The beacon's outbox in a real browser: events survive an outage and are stored exactly once.

While ``POST /api/events/`` answers 503 (the database is down) the beacon keeps its events
in localStorage and resends them, unchanged, on the next page; the outbox is bounded and
counts what it drops; a new visitor id (login) empties it, so the next person's account
never receives the previous person's events.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from behavior.api.errors import UNAVAILABLE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
EVENTS = "**/api/events/"


@pytest.fixture
def shop_items(transactional_db):
    from tests.factories import ProductFactory

    return [ProductFactory(sku=f"BCN-{i}", name=f"Beacon item {i}") for i in range(3)]


def _database_down(page) -> list[str]:
    """Answer every events request with the API's 503; return the bodies the beacon sent."""
    sent: list[str] = []

    def outage(route) -> None:
        sent.append(route.request.post_data or "")
        route.fulfill(
            status=503,
            headers={"Retry-After": "60", "Content-Type": "application/json"},
            body=json.dumps({"detail": UNAVAILABLE, "retry_after": 60}),
        )

    page.route(EVENTS, outage)
    return sent


def _queued(page) -> list[dict]:
    return page.evaluate("JSON.parse(localStorage.getItem('behavior.outbox') || '[]').map(entry => entry.e)")


def _stored(ids: list[str], *, expected: int, seconds: float = 10.0) -> list:
    from behavior.models import Event

    deadline = time.monotonic() + seconds
    while True:
        rows = list(Event.objects.filter(event_id__in=ids).order_by("occurred_at"))
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_events_of_an_outage_are_resent_unchanged_on_the_next_page_and_stored_once(
    live_server, browser_page, shop_items
):
    # given: the database is down while the shopper adds three items to their wishlist
    page = browser_page
    page.goto(f"{live_server.url}/")
    sent = _database_down(page)
    for item in shop_items:
        page.evaluate("sku => behaviorBeacon.track('wishlist', sku)", item.sku)
    page.wait_for_timeout(500)
    queued = _queued(page)
    # when: it is back, and the shopper opens another page
    page.unroute(EVENTS)
    page.goto(f"{live_server.url}/p/{shop_items[0].sku}/")
    # then: the three events, with the ids and times they got at first, stored once each
    assert sent and len(queued) == 3
    rows = _stored([e["event_id"] for e in queued], expected=3)
    assert [(str(r.event_id), r.item.sku) for r in rows] == [(e["event_id"], e["item"]) for e in queued]
    assert all(
        r.occurred_at.isoformat(timespec="milliseconds").replace("+00:00", "Z") == e["occurred_at"]
        for r, e in zip(rows, queued, strict=True)
    )
    page.wait_for_function("behaviorBeacon.stats().queued === 0")


def test_the_outbox_is_bounded_and_counts_what_it_drops(live_server, browser_page, shop_items):
    # given
    page = browser_page
    page.goto(f"{live_server.url}/")
    _database_down(page)
    # when: 205 events during the outage
    page.evaluate(
        "sku => { for (let i = 0; i < 205; i++) behaviorBeacon.track('view', sku); }", shop_items[0].sku
    )
    # then: the newest 200 are kept, the 5 oldest dropped and counted
    stats = page.evaluate("behaviorBeacon.stats()")
    assert (stats["queued"], stats["dropped"], stats["size"]) == (200, 5, 200)


def test_a_new_visitor_id_at_login_empties_the_outbox(live_server, browser_page, shop_items):
    # given: an anonymous shopper's event is stuck in the outbox (the events API is down)
    from tests.factories import UserFactory

    UserFactory(username="next-person")
    page = browser_page
    page.goto(f"{live_server.url}/")
    sent = _database_down(page)
    page.evaluate("sku => behaviorBeacon.track('wishlist', sku)", shop_items[1].sku)
    queued = _queued(page)
    # when: someone logs in on this browser (the server issues a new visitor id), and the
    # events API is back on the page after the login
    page.goto(f"{live_server.url}/accounts/login/")
    page.wait_for_timeout(200)
    while len(sent) < 2:  # the login page's own attempt to send it (answered 503)
        page.wait_for_timeout(100)
    page.fill("#id_username", "next-person")
    page.fill("#id_password", "secret-pass-123")
    page.unroute(EVENTS)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.wait_for_timeout(500)
    # then: the queued event was discarded, never sent under the new id
    assert len(queued) == 1
    assert page.evaluate("behaviorBeacon.stats()")["discarded"] == 1
    assert _stored([queued[0]["event_id"]], expected=1, seconds=1.0) == []
    assert uuid.UUID(queued[0]["event_id"])
