"""The cart's block and "Frequently bought together": complements, never substitutes, true reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from recommendations.services.serving import bought_together, complete_purchase
from recommendations.services.serving.popularity import refresh_popularity
from recommendations.services.serving.relations import refresh_item_relations


@pytest.fixture
def shop(category_factory, product_factory, user_factory, event_factory):
    """Phones, cases, coffee machines with beans, and books, with what shoppers did with them.

    - Phone 0: three shoppers bought case 0 two days after it, two bought case 1 in the same
      order; two bought phone 1 a week after it, but four compared the two phones and bought
      phone 1 instead (a substitute, not a complement).
    - Machine 0: four shoppers bought beans the day after; machine 1 is popular on its own.
    - Phone 2 and the books: never bought with anything; books 1 and 2 sell best of all.
    """
    categories = {
        name: category_factory(name=name, slug=name.lower())
        for name in ("Phones", "Cases", "Coffee", "Books")
    }
    items = {}
    for prefix, category, count in (
        ("P", "Phones", 3),
        ("C", "Cases", 4),
        ("M", "Coffee", 2),
        ("K", "Books", 4),
    ):
        for i in range(count):
            label = {"P": "Phone", "C": "Case", "M": "Machine", "K": "Book"}[prefix]
            items[f"{prefix}{i}"] = product_factory(
                sku=f"{prefix}{i}", name=f"{label} {i}", category=categories[category]
            )
    items["B0"] = product_factory(sku="B0", name="Beans 0", category=categories["Coffee"])
    start = timezone.now() - timedelta(days=20)

    def shopper(steps: list[tuple[str, str, float]]) -> None:
        user = user_factory()
        for key, event_type, day in steps:
            event_factory(
                user=user, item=items[key], event_type=event_type, occurred_at=start + timedelta(days=day)
            )

    for _ in range(3):
        shopper([("P0", "view", 0), ("P0", "purchase", 0.01), ("C0", "view", 2), ("C0", "purchase", 2.01)])
    for _ in range(2):
        shopper([("P0", "purchase", 1), ("C1", "add_to_cart", 1.001), ("C1", "purchase", 1.01)])
    for _ in range(2):
        shopper([("P0", "purchase", 3), ("P1", "purchase", 10)])
    for _ in range(4):
        shopper([("P0", "view", 4), ("P1", "view", 4.001), ("P1", "purchase", 4.01)])
    for _ in range(4):
        shopper([("M0", "view", 5), ("B0", "view", 5.001), ("M0", "purchase", 5.01), ("B0", "purchase", 6)])
    for _ in range(6):
        shopper([("M1", "view", 7), ("M1", "purchase", 7.01), ("C2", "view", 7.02), ("K1", "view", 7.03)])
    for key in ("P2", "K0", "K3", "C3"):
        shopper([(key, "view", 8)])
    for key in ("K1", "K2"):  # the best sellers: each bought alone, by eight shoppers
        for _ in range(8):
            shopper([(key, "view", 9), (key, "purchase", 9.01)])
    refresh_item_relations()
    refresh_popularity()
    return items


def _cart(page_request, *keys: str):
    return page_request(cart={key: 1 for key in keys})


@pytest.mark.django_db
def test_a_phone_in_the_cart_brings_its_cases_and_never_another_phone(shop, page_request):
    # when the shopper has phone 0 in the cart
    result = complete_purchase(limit=4, context={"request": _cart(page_request, "P0")})
    # then its cases come first, bought after it by three shoppers and with it by two, each
    # explained by the cart item; then the cases' category; never phone 1, which shoppers buy
    # instead of phone 0, nor the phone itself
    assert result.source == "complement"
    assert result.keys[:2] == ["C0", "C1"]
    assert [entry.reason for entry in result.items[:2]] == ["goes with Phone 0 in your cart"] * 2
    assert set(result.keys[2:]) <= {"C2", "C3"}
    assert {entry.reason for entry in result.items[2:]} <= {"popular in Cases"}
    assert not [key for key in result.keys if key.startswith("P")]


@pytest.mark.django_db
def test_a_coffee_machine_keeps_its_beans_of_the_same_category_but_no_other_machine(shop, page_request):
    # when the cart holds machine 0
    result = complete_purchase(limit=4, context={"request": _cart(page_request, "M0")})
    # then the beans bought after it lead; machine 1, popular in the same category, is a substitute
    assert result.keys[0] == "B0"
    assert result.items[0].reason == "goes with Machine 0 in your cart"
    assert "M1" not in result.keys


@pytest.mark.django_db
def test_a_phone_nobody_bought_anything_with_gets_what_goes_with_phones(shop, page_request):
    # when the cart holds phone 2, never bought: the complements of the popular phones stand in
    result = complete_purchase(limit=3, context={"request": _cart(page_request, "P2")})
    # then popular cases, said as such, and no phone
    assert result.source == "complement"
    assert result.keys and all(key.startswith("C") for key in result.keys)
    assert {entry.reason for entry in result.items} == {"popular in Cases"}


@pytest.mark.django_db
def test_without_any_complement_the_block_is_popular_items_of_other_categories(shop, page_request):
    # when the cart holds a book nobody bought anything with, in a category without complements
    result = complete_purchase(limit=4, context={"request": _cart(page_request, "K0")})
    # then it is the other block: popular items, none of them a book (books 1 and 2 sell best)
    assert result.source == "popular"
    assert len(result.keys) == 4
    assert not [key for key in result.keys if key.startswith("K")]
    assert result.keys[0] == "M1"  # the best seller outside Books
    assert result.items[0].reason == "popular in Coffee"


@pytest.mark.django_db
def test_two_cart_items_take_turns_and_neither_is_offered(shop, page_request, user_factory, event_factory):
    # given a shopper who already bought case 0
    user = user_factory()
    event_factory(user=user, item=shop["C0"], event_type="purchase", occurred_at=timezone.now())
    request = _cart(page_request, "P0", "M0")
    request.user = user
    # when their cart holds phone 0 and machine 0
    result = complete_purchase(user=user, limit=4, context={"request": request})
    # then the best complement of each comes first (the machine's beans, the phone's second case:
    # the first one is bought already), then popular cases; nothing in the cart nor a substitute
    assert result.keys[:2] == ["B0", "C1"]
    assert result.items[0].reason == "goes with Machine 0 in your cart"
    assert result.items[1].reason == "goes with Phone 0 in your cart"
    assert not {"C0", "P0", "M0", "P1", "P2", "M1"} & set(result.keys)


@pytest.mark.django_db
def test_bought_together_lists_complements_and_nothing_when_there_are_none(shop):
    # when
    phone = bought_together("P0", limit=4)
    book = bought_together("K0", limit=4)
    unsold = bought_together("P2", limit=4)
    # then the phone's cases, "bought together with" it; a book nobody bought anything with has
    # none, and neither has phone 2 (the cases other phones go with are not bought with it)
    assert phone.keys[:2] == ["C0", "C1"]
    assert [entry.reason for entry in phone.items[:2]] == ["bought together with Phone 0"] * 2
    assert phone.items[0].source == "complement"
    assert not [key for key in phone.keys if key.startswith("P")]
    assert book.keys == [] and unsold.keys == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cart", "title", "first"),
    [
        (("P0",), "Complete your purchase", "C0"),
        (("K0",), "Popular in other categories", "M1"),
    ],
)
def test_the_cart_tag_titles_the_block_by_what_it_holds(shop, page_request, cart, title, first):
    # given the cart page's tag
    template = Template("{% load recommendations %}{% show_cart_recommendations limit=4 %}")
    # when it renders for this cart
    html = template.render(Context({"request": _cart(page_request, *cart)}))
    # then
    assert f"<h2>{title}</h2>" in html
    assert html.index(f'data-item="{first}"') < html.index("</li>")


@pytest.mark.django_db
def test_the_cart_tag_with_an_empty_cart_shows_the_shoppers_list(shop, page_request):
    html = Template("{% load recommendations %}{% show_cart_recommendations limit=4 %}").render(
        Context({"request": page_request()})
    )
    assert "<h2>Recommended for you</h2>" in html
    assert "goes with" not in html


@pytest.mark.django_db
def test_a_shoppers_list_words_each_relation_by_where_its_anchor_comes_from(
    shop, page_request, event_factory
):
    # given a visitor who viewed phone 1, has machine 0 in the cart and looks at machine 1's page
    from recommendations.services.serving import recommend_for

    event_factory(user=None, visitor_id="visitor-0001", item=shop["P1"], event_type="view")
    request = _cart(page_request, "M0")
    # when the page's "Recommended for you" is built (no model: from the stored relations)
    result = recommend_for(
        visitor_id="visitor-0001", limit=10, context={"request": request, "item": shop["M1"]}
    )
    reasons = {entry.key: entry.reason for entry in result.items}
    # then each reason is true of this visitor: the page's item is "similar to", the cart's item
    # "goes with ... in your cart", the item they viewed "because you viewed"
    assert reasons["C2"] == "similar to Machine 1"
    assert reasons["B0"] == "goes with Machine 0 in your cart"
    assert reasons["P0"] == "because you viewed Phone 1"
    assert not {"M0", "M1", "P1"} & set(reasons)
