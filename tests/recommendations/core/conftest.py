"""Tiny synthetic event logs and fast configurations for the core tests (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import EventLog

T0 = 1_700_000_000.0


def planted_log(n_users: int = 120, n_items: int = 20, length: int = 10, seed: int = 0) -> EventLog:
    """Every shopper walks the catalogue in a fixed cycle A -> B -> C ... from a random start."""
    rng = np.random.default_rng(seed)
    users, items, types, times = [], [], [], []
    for u in range(n_users):
        start = int(rng.integers(0, n_items))
        for k in range(length):
            users.append(f"user-{u}")
            items.append(f"sku-{(start + k) % n_items:03d}")
            types.append("add_to_cart" if k % 4 == 3 else "view")
            times.append(T0 + u * 10_000 + k * 90)
    return EventLog(
        np.array(users, dtype=object),
        np.array(items, dtype=object),
        np.array(types, dtype=object),
        np.array(times),
    )


def fast_config(**overrides) -> NetworkConfig:
    base = dict(
        embedding_dim=16,
        num_layers=1,
        num_heads=1,
        dropout=0.1,
        max_sequence_length=12,
        learning_rate=5e-3,
        batch_size=64,
        epochs=25,
        patience=4,
        threads=1,
        random_seed=7,
        device="cpu",
        propensity_horizon_days=0.02,
        min_item_users=1,
    )
    base.update(overrides)
    return NetworkConfig(**base)


@pytest.fixture(scope="session")
def planted() -> EventLog:
    return planted_log()


@pytest.fixture(scope="session")
def network_model(planted):
    """The network alone (no blend) fitted once on the planted cycles, refit on all events."""
    from recommendations.core.recommender import BehaviorRecommender

    return BehaviorRecommender(fast_config(blend=False)).fit(planted)
