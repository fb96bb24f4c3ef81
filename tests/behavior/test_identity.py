"""Visitor identity is the server's word: the attacks of issue 20, each through the full HTTP stack.

An attacker who knows (or guesses) a victim's visitor id puts it in their own cookie or in
an event's body; each test asserts that none of the victim's events is read, written or
merged (0 foreign events), and each would have failed with the unsigned, script-readable
cookie and the body's ``visitor_id`` of before. The last tests cover the signed cookie
itself, trusted server-to-server clients, Global Privacy Control and consent.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from behavior.identity import generation, read_visitor, sign_visitor
from behavior.models import Event
from behavior.services import ingest as services
from recommendations.services.privacy import export_user_data, forget_user
from tests.fastpath_modes import fast_path_mode  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_path_mode")]

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
VICTIM = "0123456789abcdef0123456789abcdef"  # the victim's id, as the server issued it
PASSWORD = "secret-pass-123"  # tests.factories.UserFactory's


def _browser() -> Client:
    return Client(HTTP_USER_AGENT=BROWSER)


def _victim_history(skus: list[str]) -> None:
    """The victim browsed and bought anonymously: events stored under their visitor id."""
    events = [{"event_type": "view", "item": sku} for sku in skus]
    events.append({"event_type": "purchase", "item": skus[0], "value": "19.99"})
    services.ingest_events(events, visitor_id=VICTIM, user_agent=BROWSER)


def _issued_id(response) -> str:
    visitor = read_visitor(response.cookies["rec_vid"].value)
    assert visitor is not None
    return visitor.id


def _post_events(client: Client, events: list[dict], **extra):
    body = json.dumps({"events": events})
    return client.post("/api/events/", body, content_type="application/json", **extra)


def _foreign(visitor_id: str = VICTIM) -> int:
    """Events stored under the victim's id that the victim did not write (the attacker's)."""
    return (
        Event.objects.filter(visitor_id=visitor_id)
        .exclude(event_type="purchase")
        .exclude(item__sku__in=["S1", "S2", "S3"])
        .count()
    )


def test_a_missing_generation_cookie_is_set_again(catalogue):
    # given: a browser with its visitor cookie but without the beacon's generation cookie
    browser = _browser()
    browser.cookies["rec_vid"] = sign_visitor(VICTIM)
    # when
    response = browser.get("/")
    # then: the same id, and its generation again
    assert "rec_vid" not in response.cookies
    assert response.cookies["rec_vgen"].value == generation(VICTIM)
    assert "rec_vgen" not in browser.get("/").cookies  # set once, not on every page


# --- the attacks -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [VICTIM, f"{VICTIM}:forged:signature", "visitor-0001"])
def test_an_unsigned_or_forged_cookie_is_ignored_and_replaced(value, catalogue):
    # given: the attacker's browser carries the victim's id (or a forged signature) as its cookie
    client = _browser()
    client.cookies["rec_vid"] = value
    # when
    response = client.get("/")
    # then: a new id of the server's, signed and HttpOnly, replaces it
    issued = _issued_id(response)
    assert issued != VICTIM and issued not in value
    assert response.cookies["rec_vid"]["httponly"]
    assert response.cookies["rec_vid"]["samesite"] == "Lax"
    assert response.cookies["rec_vgen"].value == generation(issued)
    assert not response.cookies["rec_vgen"]["httponly"]  # the beacon reads the generation only


def test_attack_read_a_victims_session_recommendations_with_their_id(catalogue, active_model):
    # given: the victim's anonymous history would personalise their list ("because you viewed")
    _victim_history(["S1", "S2", "S3"])
    victim = _browser()
    victim.cookies["rec_vid"] = sign_visitor(VICTIM)
    attacker = _browser()
    attacker.cookies["rec_vid"] = VICTIM
    # when
    theirs = victim.get("/api/recommendations/", {"limit": 5}).json()
    stolen = attacker.get("/api/recommendations/", {"limit": 5}).json()
    # then: the attacker's list comes from nobody's history; the victim's from theirs
    assert stolen["source"] != "session"
    assert not any("Shoe" in item["reason"] for item in stolen["items"])
    assert theirs["source"] == "session"


@pytest.mark.parametrize("where", ["cookie", "body"])
def test_attack_write_events_into_a_victims_history(catalogue, where):
    # given
    _victim_history(["S1", "S2", "S3"])
    attacker = _browser()
    event = {"event_type": "view", "item": "H1"}
    if where == "cookie":
        attacker.cookies["rec_vid"] = VICTIM
    else:
        event["visitor_id"] = VICTIM
    # when
    response = _post_events(attacker, [event, {"event_type": "add_to_cart", "item": "H2"}])
    # then: 0 events land in the victim's history
    assert response.status_code in (202, 400)
    assert _foreign() == 0
    assert Event.objects.filter(visitor_id=VICTIM).count() == 4  # the victim's own


def test_attack_log_in_with_a_victims_id_to_take_their_purchases(catalogue, user_factory):
    # given: the victim's anonymous purchases; the attacker's cookie names the victim's id
    _victim_history(["S1", "S2", "S3"])
    attacker_user = user_factory(username="mallory")
    attacker = _browser()
    attacker.cookies["rec_vid"] = VICTIM
    # when: the attacker logs in through the shop's login page
    response = attacker.post("/accounts/login/", {"username": "mallory", "password": PASSWORD})
    # then: nothing of the victim's is merged, exported or erasable through the attacker
    assert response.status_code == 302
    assert Event.objects.filter(user=attacker_user).count() == 0
    assert export_user_data(attacker_user)["events"] == []
    assert VICTIM not in export_user_data(attacker_user)["visitor_ids"]
    forget_user(attacker_user, requested_by="tests")
    assert Event.objects.filter(visitor_id=VICTIM, user__isnull=True).count() == 4


def test_attack_shared_browser_next_anonymous_shopper_is_not_merged_into_the_previous_account(
    catalogue, user_factory
):
    # given: Anna browses, logs in and logs out on a shared browser
    anna = user_factory(username="anna")
    browser = _browser()
    first = _issued_id(browser.get("/p/S1/"))
    login = browser.post("/accounts/login/", {"username": "anna", "password": PASSWORD})
    at_login = _issued_id(login)
    logout = browser.post("/accounts/logout/")
    at_logout = _issued_id(logout)
    # when: Bob, anonymous on the same browser, views and buys
    bob_events = [
        {"event_type": "view", "item": "H1"},
        {"event_type": "purchase", "item": "H1", "value": "5"},
    ]
    assert _post_events(browser, bob_events).status_code == 202
    # then: three different ids; Anna's account holds her own view only
    assert len({first, at_login, at_logout}) == 3
    assert list(Event.objects.filter(user=anna).values_list("item__sku", flat=True)) == ["S1"]
    assert Event.objects.filter(visitor_id=at_logout, user__isnull=True).count() == 2
    assert [e["item"] for e in export_user_data(anna)["events"]] == ["S1"]
    forget_user(anna, requested_by="tests")
    assert Event.objects.filter(visitor_id=at_logout, user__isnull=True).count() == 2  # Bob's stay


def test_login_merges_this_browsers_anonymous_events(catalogue, user_factory):
    # given: the positive side: a shopper's own anonymous history follows them into the account
    user = user_factory(username="carol")
    browser = _browser()
    browser.get("/")
    _post_events(browser, [{"event_type": "view", "item": "S4"}, {"event_type": "add_to_cart", "item": "S4"}])
    # when
    browser.post("/accounts/login/", {"username": "carol", "password": PASSWORD})
    # then
    merged = sorted(Event.objects.filter(user=user).values_list("event_type", flat=True))
    assert merged == ["add_to_cart", "view"]


def test_login_merges_nothing_stored_under_the_id_before_it_was_issued(catalogue, user_factory):
    # given: events stored under an id a day before the server issued it to this browser
    user = user_factory(username="dave")
    visitor = "fedcba9876543210fedcba9876543210"
    earlier = timezone.now() - timedelta(days=1)
    services.ingest_events([{"event_type": "view", "item": "S5"}], visitor_id=visitor, now=earlier)
    browser = _browser()
    browser.cookies["rec_vid"] = sign_visitor(visitor, issued_at=timezone.now() - timedelta(minutes=5))
    _post_events(browser, [{"event_type": "view", "item": "S6"}])
    # when
    browser.post("/accounts/login/", {"username": "dave", "password": PASSWORD})
    # then
    assert list(Event.objects.filter(user=user).values_list("item__sku", flat=True)) == ["S6"]


# --- server-to-server clients --------------------------------------------------------------------


def _token_client(user) -> Client:
    token = Token.objects.create(user=user)
    return Client(HTTP_USER_AGENT="python-requests/2.32", HTTP_AUTHORIZATION=f"Token {token.key}")


def test_a_token_client_with_the_permission_names_visitors_and_is_marked(catalogue, user_factory):
    # given
    service = user_factory(username="app-backend")
    service.user_permissions.add(Permission.objects.get(codename="record_for_visitors"))
    client = _token_client(service)
    # when
    response = _post_events(client, [{"event_type": "view", "item": "S1", "visitor_id": "app-user-42"}])
    # then: the visitor's anonymous event, never the service account's, marked as the client's
    assert response.status_code == 202, response.json()
    event = Event.objects.get()
    stored = (event.visitor_id, event.user_id, event.origin, event.is_bot)
    assert stored == ("app-user-42", None, "client", False)


def test_a_token_client_without_the_permission_cannot_name_visitors(catalogue, user_factory):
    # given
    client = _token_client(user_factory(username="plain-token"))
    # when
    response = _post_events(client, [{"event_type": "view", "item": "S1", "visitor_id": VICTIM}])
    # then
    assert response.status_code == 400
    assert "visitor_id" in response.json()["rejected"][0]["errors"]
    assert Event.objects.filter(visitor_id=VICTIM).count() == 0


def test_a_session_user_with_the_permission_still_cannot_name_visitors(catalogue, user_factory):
    # given: a page script of a privileged user's browser session
    staff = user_factory(username="staffer")
    staff.user_permissions.add(Permission.objects.get(codename="record_for_visitors"))
    browser = _browser()
    browser.force_login(staff)
    # when
    response = _post_events(browser, [{"event_type": "view", "item": "S1", "visitor_id": VICTIM}])
    # then
    assert response.status_code == 400
    assert Event.objects.filter(visitor_id=VICTIM).count() == 0


# --- opting out and consent --------------------------------------------------------------------


@pytest.mark.parametrize("header", [{"HTTP_SEC_GPC": "1"}, {"HTTP_DNT": "1"}])
def test_global_privacy_control_is_honoured_like_do_not_track(catalogue, header):
    # given: a browser that had a visitor cookie
    browser = _browser()
    browser.cookies["rec_vid"] = sign_visitor(VICTIM)
    # when
    page = browser.get("/", **header)
    api = _post_events(browser, [{"event_type": "view", "item": "S1"}], **header)
    # then: no event, no id, and the old cookie is deleted
    assert api.status_code == 202 and api.json()["accepted"] == 0
    assert Event.objects.count() == 0
    assert page.cookies["rec_vid"].value == "" and page.cookies["rec_vid"]["max-age"] == 0


def test_with_consent_required_nothing_is_issued_or_recorded_before_the_consent_signal(catalogue):
    # given
    browser = _browser()
    with override_settings(RECOMMENDER={"ITEM_KEY_FIELD": "sku", "CONSENT_COOKIE_NAME": "cookie_consent"}):
        # when: before consent
        before = browser.get("/p/S1/")
        api_before = _post_events(browser, [{"event_type": "view", "item": "S2"}])
        # and: after the shop's consent banner set its cookie
        browser.cookies["cookie_consent"] = "1"
        after = browser.get("/p/S3/")
    # then
    assert "rec_vid" not in before.cookies
    assert api_before.json()["accepted"] == 0
    visitor = _issued_id(after)
    assert list(Event.objects.values_list("visitor_id", "item__sku")) == [(visitor, "S3")]


class _ConsentFromSession:
    """A shop's own consent hook (the adapter subclass a shop would write)."""

    def __new__(cls):
        from behavior.adapter import DefaultTrackingAdapter

        class Adapter(DefaultTrackingAdapter):
            def has_consent(self, request) -> bool:
                return request.GET.get("consent") == "yes"

        return Adapter()


def test_require_consent_waits_for_the_adapters_hook(catalogue):
    # given
    browser = _browser()
    settings = {"ITEM_KEY_FIELD": "sku", "REQUIRE_CONSENT": True, "TRACKING_ADAPTER": _ConsentFromSession}
    with override_settings(RECOMMENDER=settings):
        # when
        without = browser.get("/p/S1/")
        given = browser.get("/p/S2/", {"consent": "yes"})
    # then
    assert "rec_vid" not in without.cookies
    assert list(Event.objects.values_list("visitor_id", "item__sku")) == [(_issued_id(given), "S2")]
