"""Fixtures shared by the training, registry and data tests (imported by those modules).

Kept in a module of their own (rather than the folder's shared ``conftest.py``): only the
modules that import them pay for their imports, and the other tests of the folder do not see them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from behavior.items import get_item_model, item_key
from behavior.models import Event
from recommendations.services.registry import clear_model_cache
from tests import factories

__all__ = [
    "TINY_NETWORK",
    "fresh_registry",
    "item_factory",
    "media_root",
    "recommender_settings_override",
    "ring_events",
    "saved_model_dir",
    "tiny_network",
    "version_factory",
]

# A behaviour network small enough to train in about a second on two shared cores.
TINY_NETWORK = {
    "EMBEDDING_DIM": 16,
    "NUM_LAYERS": 1,
    "NUM_HEADS": 1,
    "EPOCHS": 2,
    "PATIENCE": 1,
    "BATCH_SIZE": 64,
    "MAX_SEQUENCE_LENGTH": 20,
    "DEVICE": "cpu",
    "TRAIN_THREADS": 1,
    "MIN_TRAINING_EVENTS": 50,
    "MIN_TRAINING_USERS": 5,
    # No heartbeat inside a one-second test run (and no second connection to the test database).
    "TRAINING_HEARTBEAT_SECONDS": 3600,
    "ACTIVE_MODEL_CHECK_SECONDS": 0,
}


def is_swapped() -> bool:
    """True under ``tests.settings_swapped`` (items are ``testapp.Book`` keyed by ISBN)."""
    return get_item_model()._meta.label == "testapp.Book"


_book_factory: type | None = None


def book_factory() -> type:
    """A factory of ``testapp.Book``, declared on first use (the app exists only when swapped)."""
    global _book_factory
    if _book_factory is None:
        import factory

        class BookFactory(factory.django.DjangoModelFactory):
            class Meta:
                model = "testapp.Book"

            isbn = factory.Sequence(lambda n: f"978-{n:09d}")
            title = factory.Sequence(lambda n: f"Book {n}")

        _book_factory = BookFactory
    return _book_factory


@pytest.fixture
def item_factory(db) -> Callable[..., Any]:
    """Create one item of the configured item model (Product by default, Book when swapped)."""

    def make(**kwargs: Any) -> Any:
        if is_swapped():
            return book_factory()(**kwargs)
        return factories.ProductFactory(**kwargs)

    return make


@pytest.fixture
def tiny_network(settings) -> dict[str, Any]:
    """Override ``RECOMMENDER`` with tiny hyperparameters (the project's own keys kept)."""
    merged = {**settings.RECOMMENDER, **TINY_NETWORK}
    settings.RECOMMENDER = merged
    return merged


@pytest.fixture
def recommender_settings_override(settings) -> Callable[..., Any]:
    """``with recommender_settings_override(KEY=value): ...`` on top of the current RECOMMENDER."""

    def override(**values: Any) -> override_settings:
        return override_settings(RECOMMENDER={**settings.RECOMMENDER, **values})

    return override


@pytest.fixture
def media_root(settings, tmp_path) -> Any:
    """A private MEDIA_ROOT: artefacts of one test never meet another's."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def fresh_registry(media_root, tmp_path, settings) -> Iterator[None]:
    """No model cached in this process before or after the test; artefact cache in tmp_path."""
    settings.RECOMMENDER = {**settings.RECOMMENDER, "MODEL_CACHE_DIR": str(tmp_path / "model-cache")}
    clear_model_cache()
    yield
    clear_model_cache()


def ring_walk_events(
    *,
    users: int = 20,
    items: int = 30,
    steps: int = 8,
    start: datetime | None = None,
    item_factory: Callable[..., Any],
) -> dict[str, Any]:
    """Shoppers walking a ring of items: shopper ``u`` views items ``u, u+1, u+2…`` (mod ``items``).

    The next item is always the successor of the last one, so a sequence model (or
    co-visitation) can predict it while popularity, nearly uniform here, cannot.
    Returns ``{"users", "items", "keys", "events"}``.
    """
    start = start or timezone.now() - timedelta(days=2)
    products = [item_factory() for _ in range(items)]
    shoppers = [factories.UserFactory(username=f"ring{u:03d}") for u in range(users)]
    events = []
    for u, shopper in enumerate(shoppers):
        for step in range(steps):
            product = products[(u + step) % items]
            events.append(
                factories.EventFactory.build(
                    event_id=uuid.uuid4(),
                    user=shopper,
                    item=product,
                    event_type="purchase" if step == steps - 1 else "view",
                    occurred_at=start + timedelta(minutes=u * 60 + step),
                )
            )
    Event.objects.bulk_create(events)
    return {"users": shoppers, "items": products, "keys": [item_key(p) for p in products], "events": events}


@pytest.fixture
def ring_events(db, item_factory) -> Callable[..., dict[str, Any]]:
    """``ring_events(users=24, items=12, steps=8)`` creates a ring-walk event log."""

    def make(**kwargs: Any) -> dict[str, Any]:
        return ring_walk_events(item_factory=item_factory, **kwargs)

    return make


def ring_log(*, users: int = 20, items: int = 30, steps: int = 8) -> Any:
    """The ring walk of :func:`ring_walk_events` as an in-memory ``EventLog`` (no database)."""
    from recommendations.core.dataset import EventLog

    histories = {
        f"ring{u:03d}": [
            (f"SKU-R{(u + step) % items:03d}", "view", 1_700_000_000.0 + u * 3600 + step * 60)
            for step in range(steps)
        ]
        for u in range(users)
    }
    return EventLog.from_histories(histories)


def tiny_config() -> Any:
    """The ``NetworkConfig`` matching :data:`TINY_NETWORK`."""
    from recommendations.core.config import NetworkConfig

    return NetworkConfig.from_settings(TINY_NETWORK)


@pytest.fixture(scope="session")
def saved_model_dir(tmp_path_factory) -> Any:
    """A real tiny behaviour network, fitted once per session and saved (the artefact to copy)."""
    from recommendations.core.recommender import BehaviorRecommender

    folder = tmp_path_factory.mktemp("saved-model")
    BehaviorRecommender(tiny_config()).fit(ring_log()).save(folder)
    return folder


@pytest.fixture
def version_factory(db, fresh_registry, saved_model_dir) -> Callable[..., Any]:
    """``version_factory(number, status="candidate", **fields)``: a version with a real stored artefact."""
    from recommendations.models import ModelVersion
    from recommendations.services.artifact_store import store_artifact

    def make(number: int, status: str = "candidate", **fields: Any) -> ModelVersion:
        stored = store_artifact(saved_model_dir, number=number)
        defaults = {
            "metrics": {"NDCG@10": 0.5, "HR@10": 0.7, "MRR@10": 0.4, "coverage@10": 0.9, "users": 20},
            "baseline_metrics": {"popularity": {"NDCG@10": 0.1}, "covisitation": {"NDCG@10": 0.4}},
        }
        if status == "active":
            fields.setdefault("promoted_at", timezone.now())
            fields.setdefault("promoted_by", "test")
        return ModelVersion.objects.create(
            number=number,
            status=status,
            artifact_path=stored.path,
            artifact_files=stored.files,
            sha256=stored.sha256,
            **{**defaults, **fields},
        )

    return make
