"""Fixtures of the in-process integration tests (the process-based ones use ``harness``)."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone


def tiny_log():
    """60 shoppers browsing within one of two categories (S* or H*), 6 events each."""
    from recommendations.core.dataset import EventLog

    rng = np.random.default_rng(0)
    users, items, types, stamps = [], [], [], []
    base = timezone.now().timestamp() - 86400
    for user in range(60):
        prefix = "S" if user % 2 == 0 else "H"
        for step in range(6):
            users.append(f"u{user}")
            items.append(f"{prefix}{int(rng.integers(0, 6))}")
            types.append("view")
            stamps.append(base + user * 100 + step)
    return EventLog(
        users=np.array(users, dtype=object),
        items=np.array(items, dtype=object),
        event_types=np.array(types, dtype=object),
        timestamps=np.array(stamps, dtype=float),
    )


@pytest.fixture
def shop_items(category_factory, product_factory):
    """Six shoes and six hats, active and in stock."""
    shoes, hats = category_factory(name="Shoes", slug="shoes"), category_factory(name="Hats", slug="hats")
    return [product_factory(sku=f"S{i}", name=f"Shoe {i}", category=shoes, stock=5) for i in range(6)] + [
        product_factory(sku=f"H{i}", name=f"Hat {i}", category=hats, stock=5) for i in range(6)
    ]


@pytest.fixture
def trained_folder(tmp_path):
    """A saved tiny behaviour network (the core's artefact folder)."""
    from recommendations.core.config import NetworkConfig
    from recommendations.core.recommender import BehaviorRecommender

    config = NetworkConfig(
        embedding_dim=8, epochs=1, batch_size=64, device="cpu", threads=1, min_item_users=1, min_user_events=1
    )
    folder = tmp_path / "artefact"
    folder.mkdir()
    BehaviorRecommender(config).fit(tiny_log()).save(folder)
    return folder
