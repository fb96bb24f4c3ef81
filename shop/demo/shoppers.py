"""The planted shopper types of the demo data: what each kind of shopper likes and does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShopperType:
    """Behaviour parameters of one planted shopper type.

    ``preferences`` weighs categories (absent categories get ``other_weight``);
    ``price_level`` is the preferred price quantile within a category (0 cheap, 1 dear);
    ``session_length`` the mean number of product views per session;
    ``cart_rate`` the chance that a view adds the item to the cart;
    ``buy_rate`` the chance that a session with a cart ends in a purchase;
    ``return_rate`` the chance that an abandoned cart brings the shopper back in the next days;
    ``activity`` the relative number of events a shopper of this type produces.
    """

    key: str
    label: str
    share: float
    preferences: dict[str, float]
    other_weight: float
    price_level: float
    session_length: float
    cart_rate: float
    buy_rate: float
    return_rate: float
    activity: float
    wishlist_rate: float = 0.02
    search_rate: float = 0.15

    def weight_of(self, category: str) -> float:
        return self.preferences.get(category, self.other_weight)

    @property
    def top_categories(self) -> frozenset[str]:
        """The categories this type prefers most (empty for types without a favourite)."""
        if not self.preferences:
            return frozenset()
        best = max(self.preferences.values())
        return frozenset(c for c, w in self.preferences.items() if w == best)


# Each type has its own favourite categories (no two types share one), its own price level
# and its own funnel, so a shopper's type can be told from a short history: what they look
# at, how dear it is and how far down the funnel they go.
SHOPPER_TYPES: dict[str, ShopperType] = {
    t.key: t
    for t in (
        ShopperType(
            "tech_enthusiast",
            "Tech enthusiast",
            0.20,
            {"Phones": 5, "Laptops": 5, "Cameras": 3, "Phone accessories": 1, "Laptop accessories": 1},
            0.05,
            price_level=0.85,
            session_length=3.5,
            cart_rate=0.15,
            buy_rate=0.5,
            return_rate=0.65,
            activity=1.0,
        ),
        ShopperType(
            "bargain_hunter",
            "Bargain hunter",
            0.18,
            {"Audio": 5, "Toys": 5},
            0.05,
            price_level=0.03,
            session_length=4.5,
            cart_rate=0.10,
            buy_rate=0.4,
            return_rate=0.6,
            activity=1.3,
            search_rate=0.35,
        ),
        ShopperType(
            "home_cook",
            "Home cook",
            0.17,
            {"Kitchen": 5, "Coffee": 5},
            0.05,
            price_level=0.6,
            session_length=3,
            cart_rate=0.18,
            buy_rate=0.55,
            return_rate=0.65,
            activity=0.9,
        ),
        ShopperType(
            "outdoor_sporty",
            "Outdoor & sporty",
            0.15,
            {"Sports": 5, "Outdoor": 5},
            0.05,
            price_level=0.45,
            session_length=3,
            cart_rate=0.13,
            buy_rate=0.45,
            return_rate=0.6,
            activity=0.9,
        ),
        ShopperType(
            "book_lover",
            "Book lover",
            0.15,
            {"Books": 8},
            0.05,
            price_level=0.3,
            session_length=2.5,
            cart_rate=0.28,
            buy_rate=0.65,
            return_rate=0.7,
            activity=1.0,
        ),
        ShopperType(
            "window_shopper",
            "Window shopper",
            0.15,
            {"Fashion": 5, "Beauty": 5},
            0.05,
            price_level=0.7,
            session_length=4,
            cart_rate=0.03,
            buy_rate=0.08,
            return_rate=0.15,
            activity=0.8,
            wishlist_rate=0.06,
        ),
    )
}

BOT_TYPE = "bot"
# The demo logins: each a different planted type, with a real history.
DEMO_SHOPPERS = {"alice": "tech_enthusiast", "bob": "home_cook", "carol": "book_lover"}
