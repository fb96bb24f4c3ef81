"""The demo catalogue: named categories, realistic product names, log-normal prices.

Pure Python: ``build_catalog(n_products, rng)`` returns plain ``ProductSpec`` rows that
the generator writes to the database. A category has one or more *parts* (Coffee sells
machines and supplies); a part is a "main" item line, an "accessory" line or neither,
and every main item is given a few complementary accessories (a case and a charger
for a phone, filters and beans for a coffee machine).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from itertools import product as cartesian


@dataclass(frozen=True)
class Part:
    """One product line of a category."""

    key: str
    brands: tuple[str, ...]
    lines: tuple[str, ...]
    variants: tuple[str, ...]
    median_price: float
    price_sigma: float
    blurb: str
    role: str = "normal"  # "main" items have complements taken from the part named by ``complement``
    complement: str = ""
    share: float = 1.0  # share of the category's products


@dataclass(frozen=True)
class CategorySpec:
    name: str
    slug: str
    code: str
    weight: float
    description: str
    parts: tuple[Part, ...]


CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        "Phones",
        "phones",
        "PHN",
        1.0,
        "Smartphones for every budget.",
        (
            Part(
                "phones",
                ("Nova", "Pixelon", "Aurora", "Zenfone", "Orbit", "Lumen"),
                ("X", "Pro", "Lite", "Max", "Mini", "Edge", "Fold"),
                ("64 GB", "128 GB", "256 GB", "512 GB"),
                520,
                0.55,
                "A smartphone with a bright OLED display, a fast chip and an all-day battery.",
                role="main",
                complement="phone_accessories",
            ),
        ),
    ),
    CategorySpec(
        "Laptops",
        "laptops",
        "LAP",
        1.0,
        "Notebooks for work, study and play.",
        (
            Part(
                "laptops",
                ("Vertex", "Nimbus", "Corebook", "Atlas", "Zephyr", "Quanta"),
                ("Air 13", "Pro 14", "Pro 16", "Studio 15", "Go 12", "Ultra 14"),
                ("8 GB / 256 GB", "16 GB / 512 GB", "32 GB / 1 TB"),
                1050,
                0.45,
                "A thin and light laptop with a sharp screen and a comfortable keyboard.",
                role="main",
                complement="laptop_accessories",
            ),
        ),
    ),
    CategorySpec(
        "Audio",
        "audio",
        "AUD",
        1.2,
        "Headphones, earbuds and speakers.",
        (
            Part(
                "audio",
                ("Sonora", "Bassline", "Echo", "Auralis", "Tempo"),
                ("Buds", "Buds Pro", "Over-Ear 700", "Studio Monitor", "Boom Speaker", "Soundbar 2"),
                ("Black", "White", "Blue", "Sand"),
                110,
                0.7,
                "Clear sound with deep bass and active noise cancelling.",
            ),
        ),
    ),
    CategorySpec(
        "Cameras",
        "cameras",
        "CAM",
        0.7,
        "Mirrorless, compact and action cameras.",
        (
            Part(
                "cameras",
                ("Optika", "Lumix One", "Shutterly", "Fotona"),
                ("Z5", "Z7", "Compact 100", "Action 4K", "Vlog V2"),
                ("body only", "with 24-70 mm lens", "kit"),
                680,
                0.6,
                "A camera with a large sensor, fast autofocus and 4K video.",
            ),
        ),
    ),
    CategorySpec(
        "Phone accessories",
        "phone-accessories",
        "PAC",
        1.3,
        "Cases, chargers and cables.",
        (
            Part(
                "phone_accessories",
                ("Nova", "Pixelon", "Aurora", "Guardly", "Voltix"),
                (
                    "Clear Case",
                    "Leather Case",
                    "Screen Protector",
                    "USB-C Charger 30 W",
                    "Wireless Charger",
                    "Braided Cable 2 m",
                    "Power Bank 10000",
                ),
                ("Black", "Clear", "Red", "Navy"),
                22,
                0.5,
                "An accessory that protects and powers your phone.",
                role="accessory",
            ),
        ),
    ),
    CategorySpec(
        "Laptop accessories",
        "laptop-accessories",
        "LAC",
        1.1,
        "Bags, mice, docks and stands.",
        (
            Part(
                "laptop_accessories",
                ("Vertex", "Nimbus", "Deskmate", "Clicko", "Portly"),
                ("Sleeve 14", "Backpack", "Wireless Mouse", "USB-C Dock", "Laptop Stand", "Keyboard"),
                ("Grey", "Black", "Olive"),
                45,
                0.55,
                "An accessory that makes your laptop setup more comfortable.",
                role="accessory",
            ),
        ),
    ),
    CategorySpec(
        "Books",
        "books",
        "BOK",
        1.6,
        "Novels, cookbooks and non-fiction.",
        (
            Part(
                "books",
                ("A. Marlow", "J. Okafor", "L. Brandt", "M. Sato", "R. Ellison", "T. Novak", "P. Duarte"),
                (
                    "The Quiet Harbour",
                    "Salt and Stone",
                    "A Field Guide to Birds",
                    "The Last Orchard",
                    "Numbers at Work",
                    "Night Trains",
                    "Winter Kitchen",
                    "The Glass Map",
                ),
                ("Paperback", "Hardcover", "E-book"),
                16,
                0.35,
                "A book readers keep recommending to their friends.",
            ),
        ),
    ),
    CategorySpec(
        "Kitchen",
        "kitchen",
        "KIT",
        1.2,
        "Cookware, knives and small appliances.",
        (
            Part(
                "kitchen",
                ("Cucina", "Chefline", "Ferro", "Hearth"),
                ("Frying Pan", "Chef's Knife", "Dutch Oven", "Stand Mixer", "Blender", "Cutting Board"),
                ("Small", "Medium", "Large"),
                55,
                0.75,
                "Kitchen equipment built to last, for everyday cooking.",
            ),
        ),
    ),
    CategorySpec(
        "Coffee",
        "coffee",
        "COF",
        1.0,
        "Coffee machines, grinders, beans and filters.",
        (
            Part(
                "coffee_machines",
                ("Brevista", "Moka & Co", "Crema", "Baristo"),
                ("Espresso One", "Filter Brewer", "Bean-to-Cup", "Burr Grinder"),
                ("Steel", "Black", "Cream"),
                240,
                0.6,
                "A coffee machine for café-quality coffee at home.",
                role="main",
                complement="coffee_supplies",
                share=0.45,
            ),
            Part(
                "coffee_supplies",
                ("Brevista", "Roastery", "Crema"),
                ("Paper Filters", "Espresso Beans", "Filter Roast", "Descaler", "Milk Jug"),
                ("250 g", "500 g", "1 kg", "100 pack"),
                12,
                0.45,
                "Everything your coffee machine needs.",
                role="accessory",
                share=0.55,
            ),
        ),
    ),
    CategorySpec(
        "Sports",
        "sports",
        "SPT",
        1.0,
        "Running, fitness and team sports.",
        (
            Part(
                "sports",
                ("Stride", "Kinetic", "Apex", "Pulse"),
                ("Running Shoes", "Yoga Mat", "Dumbbell Set", "Football", "Fitness Tracker", "Jump Rope"),
                ("S", "M", "L", "XL"),
                48,
                0.7,
                "Sports gear for training harder and recovering faster.",
            ),
        ),
    ),
    CategorySpec(
        "Outdoor",
        "outdoor",
        "OUT",
        1.0,
        "Tents, backpacks and camping gear.",
        (
            Part(
                "outdoor",
                ("Summit", "Trailhead", "Northway", "Pinecrest"),
                (
                    "Tent 2P",
                    "Hiking Backpack 40 L",
                    "Sleeping Bag",
                    "Camping Stove",
                    "Headlamp",
                    "Water Filter",
                ),
                ("Green", "Orange", "Grey"),
                85,
                0.7,
                "Outdoor equipment for weekends in the wild.",
            ),
        ),
    ),
    CategorySpec(
        "Toys",
        "toys",
        "TOY",
        0.9,
        "Games, puzzles and building sets.",
        (
            Part(
                "toys",
                ("Playwell", "Brickly", "Tinker", "Wonder"),
                ("Building Set", "Puzzle 1000", "Board Game", "Plush Bear", "Train Set", "Science Kit"),
                ("Junior", "Classic", "Deluxe"),
                30,
                0.6,
                "A toy that keeps curious minds busy for hours.",
            ),
        ),
    ),
    CategorySpec(
        "Beauty",
        "beauty",
        "BTY",
        0.9,
        "Skincare, haircare and fragrance.",
        (
            Part(
                "beauty",
                ("Lumière", "Verde", "Aqualis", "Rosé"),
                ("Face Serum", "Day Cream", "Shampoo", "Eau de Parfum", "Lip Balm", "Hair Dryer"),
                ("30 ml", "50 ml", "100 ml"),
                28,
                0.7,
                "Beauty care made with gentle ingredients.",
            ),
        ),
    ),
    CategorySpec(
        "Fashion",
        "fashion",
        "FSH",
        1.2,
        "Clothing, shoes and bags.",
        (
            Part(
                "fashion",
                ("Northcoat", "Linea", "Urbane", "Cotton & Co"),
                ("Denim Jacket", "Wool Sweater", "Sneakers", "Linen Shirt", "Tote Bag", "Rain Jacket"),
                ("XS", "S", "M", "L", "XL"),
                60,
                0.6,
                "Everyday fashion in durable fabrics.",
            ),
        ),
    ),
)


@dataclass
class ProductSpec:
    """One generated product (before it is saved)."""

    index: int
    sku: str
    name: str
    description: str
    category: str  # category name
    part: str
    role: str
    price: float
    stock: int
    is_active: bool
    popularity: float = 1.0  # Zipf weight within its category
    price_quantile: float = 0.5  # rank of its price within its category, in [0, 1]
    complements: list[int] = field(default_factory=list)  # indices of complementary products


def _price(rng: random.Random, part: Part) -> float:
    value = rng.lognormvariate(math.log(part.median_price), part.price_sigma)
    # Shop-like prices: 9.99, 24.99, 1049.00 ...
    return round(max(2.99, round(value) - 0.01 if value < 200 else float(round(value / 10) * 10 - 1)), 2)


def _names(rng: random.Random, part: Part, n: int) -> list[str]:
    combos = [f"{b} {line} {v}" for b, line, v in cartesian(part.brands, part.lines, part.variants)]
    rng.shuffle(combos)
    names = combos[:n]
    generation = 2
    while len(names) < n:  # a large catalogue: later generations of the same lines
        names.extend(f"{name} (Gen {generation})" for name in combos[: n - len(names)])
        generation += 1
    return names


def build_catalog(n_products: int, rng: random.Random) -> list[ProductSpec]:
    """Generate ``n_products`` products spread over the categories by their weights."""
    total_weight = sum(c.weight for c in CATEGORIES)
    counts = [max(4, round(n_products * c.weight / total_weight)) for c in CATEGORIES]
    counts[-1] = max(4, counts[-1] + n_products - sum(counts))  # exact total for any n >= 4 * categories
    products: list[ProductSpec] = []
    by_part: dict[str, list[ProductSpec]] = {}
    for spec, count in zip(CATEGORIES, counts, strict=True):
        part_counts = [max(2, round(count * p.share)) for p in spec.parts]
        part_counts[-1] = max(2, count - sum(part_counts[:-1]))
        serial = 0
        category_products: list[ProductSpec] = []
        for part, part_count in zip(spec.parts, part_counts, strict=True):
            for name in _names(rng, part, part_count):
                serial += 1
                brand = next(b for b in part.brands if name.startswith(b))
                roll = rng.random()
                stock = 0 if roll < 0.04 else rng.randint(1, 4) if roll < 0.12 else rng.randint(5, 150)
                spec_row = ProductSpec(
                    index=len(products),
                    sku=f"{spec.code}-{serial:04d}",
                    name=name,
                    description=f"{part.blurb} By {brand}. Category: {spec.name}.",
                    category=spec.name,
                    part=part.key,
                    role=part.role,
                    price=_price(rng, part),
                    stock=stock,
                    is_active=rng.random() >= 0.03,
                )
                products.append(spec_row)
                category_products.append(spec_row)
                by_part.setdefault(part.key, []).append(spec_row)
        # Zipf popularity within the category (a random order, so it is not alphabetical).
        ranks = list(range(len(category_products)))
        rng.shuffle(ranks)
        by_price = sorted(category_products, key=lambda p: (p.price, p.index))
        for rank, row in zip(ranks, category_products, strict=True):
            row.popularity = 1.0 / (rank + 1) ** 1.1
        for position, row in enumerate(by_price):
            row.price_quantile = position / max(1, len(by_price) - 1)
    for spec in CATEGORIES:
        for part in spec.parts:
            if part.role != "main":
                continue
            pool = [p for p in by_part.get(part.complement, []) if p.is_active]
            for row in by_part.get(part.key, []):
                row.complements = [p.index for p in rng.sample(pool, min(3, len(pool)))]
    return products
