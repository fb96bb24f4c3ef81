"""Real-time re-ranking through the active behaviour network, and the precomputed fast path."""

from __future__ import annotations

import pytest

from recommendations.models import PrecomputedList
from recommendations.services.serving import recommend_for
from recommendations.services.serving.precompute import refresh_recommendations
from tests.recommendations.conftest import days_ago


@pytest.mark.django_db
def test_fresh_session_events_change_the_next_list(active_model, event_factory):
    # given a visitor who looked at hats
    from shop.models import Product

    for i in range(3):
        event_factory(
            user=None,
            visitor_id="visitor-0001",
            item=Product.objects.get(sku=f"H{i}"),
            event_type="view",
            occurred_at=days_ago(0.01 - i * 0.001),
        )
    before = recommend_for(visitor_id="visitor-0001", limit=5)
    # when they view shoes
    for i in range(4):
        event_factory(
            user=None,
            visitor_id="visitor-0001",
            item=Product.objects.get(sku=f"S{i}"),
            event_type="view",
            occurred_at=days_ago(0.001 - i * 0.0001),
        )
    after = recommend_for(visitor_id="visitor-0001", limit=5)
    # then the session list is rebuilt from the new events and explained by them
    assert before.source == after.source == "session"
    assert after.model_version == active_model.version_number
    assert before.keys != after.keys
    assert sum(key.startswith("S") for key in after.keys) > sum(key.startswith("S") for key in before.keys)
    assert all(
        entry.reason.startswith("because you viewed") for entry in after.items if entry.source == "session"
    )


@pytest.mark.django_db
def test_precomputed_list_serves_until_newer_events(active_model, event_factory, user):
    # given a user with older events and a precomputed list
    from shop.models import Product

    event_factory(user=user, item=Product.objects.get(sku="S1"), event_type="view", occurred_at=days_ago(2))
    event_factory(
        user=user, item=Product.objects.get(sku="S2"), event_type="purchase", occurred_at=days_ago(1)
    )
    # when
    result = refresh_recommendations()
    served = recommend_for(user=user, limit=5)
    # then
    stored = PrecomputedList.objects.get(user=user)
    assert result.users == 1
    assert "S2" not in stored.item_keys
    assert len(stored.item_keys) == len(stored.reasons) == len(stored.scores)
    assert served.source == "personal"
    assert served.keys == [k for k in stored.item_keys if k not in {"S1", "S2"}][:5]


def test_every_web_thread_scores_on_one_torch_thread():
    # given a thread that ran torch at the default thread count before any web thread limited it
    # (e.g. the one that loaded the model), and another web thread that limits first
    import threading

    import torch

    from recommendations.services.serving import model

    before = torch.get_num_threads()
    loaded, limited_elsewhere = threading.Event(), threading.Event()
    counts: dict[str, int] = {}

    def early() -> None:
        torch.set_num_threads(2)
        # its first parallel op (or this query) fixes the thread's OpenMP count: two
        assert torch.get_num_threads() == 2
        loaded.set()
        limited_elsewhere.wait(10)
        # when it serves its first real-time request
        model.limit_threads_for_web()
        counts["early"] = torch.get_num_threads()

    def other() -> None:
        loaded.wait(10)
        model.limit_threads_for_web()
        counts["other"] = torch.get_num_threads()
        limited_elsewhere.set()

    try:
        threads = [threading.Thread(target=early), threading.Thread(target=other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    finally:
        torch.set_num_threads(before)
    # then both score on one OpenMP thread (the first one would otherwise keep two)
    assert counts == {"early": 1, "other": 1}


def test_web_threads_score_on_one_blas_thread():
    # given NumPy's BLAS (the single-history inference's products), by default one thread per core
    from threadpoolctl import threadpool_info

    from recommendations.services.serving import model

    # when a web thread prepares to score
    model.limit_threads_for_web()
    # then every BLAS library of the process runs one thread (no spinning helpers per product)
    blas = [entry for entry in threadpool_info() if entry["user_api"] == "blas"]
    assert blas and all(entry["num_threads"] == 1 for entry in blas)
