"""Reasons are codes rendered in the reader's language at serve time (``services.serving.explain``)."""

from __future__ import annotations

import pytest
from django.utils import translation

from recommendations.services.serving import explain

# The sentences served before reasons were codes: English answers must stay byte for byte these.
ENGLISH = {
    explain.because("view", "Shoe 1"): "because you viewed Shoe 1",
    explain.because("click", "Shoe 1"): "because you viewed Shoe 1",
    explain.because("add_to_cart", "Hat 2"): "because you added Hat 2 to your cart",
    explain.because("wishlist", "Hat 2"): "because you saved Hat 2",
    explain.because("purchase", "Hat 2"): "because you bought Hat 2",
    explain.because("remove_from_cart", "Hat 2"): "because you looked at Hat 2",
    explain.again("view"): "you viewed this before",
    explain.again("add_to_cart"): "you added this to your cart before",
    explain.again("wishlist"): "you saved this",
    explain.again("purchase"): "you bought this before",
    explain.again("remove_from_cart"): "you looked at this before",
    explain.TRENDING: "trending",
    explain.NEW_ARRIVAL: "new arrival",
    explain.bought_with("Sock 3"): "bought together with Sock 3",
    explain.goes_with_cart("Sock 3"): "goes with Sock 3 in your cart",
    explain.similar_to("100% wool, 50 % off"): "similar to 100% wool, 50 % off",
    explain.popular_in("Shoes"): "popular in Shoes",
    explain.popular_in(""): "trending",
    explain.new_in("Hats"): "new in Hats",
    explain.new_in(""): "new arrival",
}


def test_english_rendering_is_the_sentence_served_before():
    with translation.override("en"):
        assert {reason: explain.render(reason) for reason in ENGLISH} == ENGLISH
    assert {reason: explain.english(reason) for reason in ENGLISH} == ENGLISH


def test_stored_forms_read_back_including_rows_written_as_english_text():
    for reason, text in ENGLISH.items():
        # the packed form of new rows, and the sentence of rows written before codes
        assert explain.unpack(reason.pack()) == reason
        assert explain.unpack(text) == reason
    # a sentence of no known form (an adapter's own) is shown as written
    assert explain.render(explain.unpack("staff pick")) == "staff pick"


def test_reasons_are_worded_through_gettext_in_the_active_language(monkeypatch):
    # given a catalogue that words every message per language
    monkeypatch.setattr(explain, "gettext", lambda message: f"<{translation.get_language()}> {message}")
    # when reasons are rendered in two languages
    with translation.override("zh-hans"):
        chinese = explain.render(explain.because("view", "Shoe 1"))
        label = explain.render(explain.popular_in("Shoes"))
    with translation.override("en"):
        english = explain.render(explain.because("view", "Shoe 1"))
    # then each names the item in its own language's sentence
    assert chinese == "<zh-hans> because you viewed Shoe 1"
    assert label == "<zh-hans> popular in Shoes"
    assert english == "<en> because you viewed Shoe 1"


def test_every_message_is_a_python_format_msgid():
    names = {"because you viewed %(name)s", "popular in %(label)s", "new in %(label)s", "trending"}
    assert names <= set(explain.MESSAGES.values())
    for message in explain.MESSAGES.values():
        assert message % {"name": "X", "label": "Y"}


@pytest.mark.django_db
def test_a_list_precomputed_before_codes_is_served_with_the_same_reasons(catalogue, user):
    # given a precomputed row written before reasons were codes (English sentences)
    from django.utils import timezone

    from recommendations.models import PrecomputedList
    from recommendations.services.serving import recommend_for

    PrecomputedList.objects.create(
        user=user,
        item_keys=["S1", "S2"],
        scores=[0.9, 0.8],
        reasons=["because you viewed Hat 1", "trending"],
        model_version=3,
        computed_at=timezone.now(),
    )
    # when it is served
    result = recommend_for(user=user, limit=2)
    # then its reasons are the same sentences, now with their codes
    assert [(e.key, e.reason, e.reason_code) for e in result.items] == [
        ("S1", "because you viewed Hat 1", "viewed"),
        ("S2", "trending", "trending"),
    ]
