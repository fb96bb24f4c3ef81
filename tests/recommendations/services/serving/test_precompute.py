"""The precompute path: streamed history columns, batch explanations, lists equal to the real-time path."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from behavior.items import item_key
from behavior.models import Event
from recommendations.data.histories import load_histories
from recommendations.data.history_batches import stream_user_histories
from recommendations.models import PrecomputedList
from recommendations.services.serving import explain, model
from recommendations.services.serving.precompute import refresh_recommendations
from recommendations.services.serving.precompute_explain import anchor_slots
from recommendations.services.serving.precompute_pipeline import ramped_batches
from recommendations.services.serving.precompute_store import round_scores
from tests.recommendations.conftest import days_ago
from tests.recommendations.services.test_training_support import *  # noqa: F403 (fixtures)


def _shoppers(user_factory, item_factory, event_factory, *, users: int = 7, items: int = 6):
    """Users with interleaved events: equal times, repeats, a bot event and one user without events."""
    products = [item_factory() for _ in range(items)]
    start = timezone.now().replace(microsecond=0) - timedelta(days=3)
    shoppers = [user_factory() for _ in range(users)]
    for u, shopper in enumerate(shoppers[:-1]):
        for step in range(3 + u):
            event_factory(
                user=shopper,
                item=products[(u + step * 2) % items],
                event_type=("view", "add_to_cart", "purchase")[step % 3],
                occurred_at=start + timedelta(minutes=step // 2, microseconds=17 * u),
            )
    event_factory(user=shoppers[0], item=products[0], occurred_at=start, is_bot=True)
    return shoppers


@pytest.mark.django_db
@pytest.mark.swappable
@pytest.mark.parametrize(("batch_users", "chunk_size", "limit"), [(2, 3, 50), (3, 1000, 4), (100, 5, 2)])
def test_streamed_histories_equal_load_histories(
    user_factory, item_factory, event_factory, batch_users, chunk_size, limit
):
    # given users with events (ties in time, a bot event, a user without events)
    shoppers = _shoppers(user_factory, item_factory, event_factory)
    expected = load_histories(users=shoppers, limit=limit)
    # when the same users are streamed in batches, with chunks that split users
    batches = list(
        stream_user_histories(
            user_ids=[s.pk for s in shoppers], limit=limit, batch_users=batch_users, chunk_size=chunk_size
        )
    )
    # then every user with events comes once, in order, with the same history as load_histories
    names = {s.pk: s.username for s in shoppers}
    got = {names[pk]: history for b in batches for pk, history in zip(b.user_ids, b.histories(), strict=True)}
    assert got == expected
    assert all(len(b.user_ids) <= batch_users for b in batches)
    assert [pk for b in batches for pk in b.user_ids] == sorted(s.pk for s in shoppers[:-1])


@pytest.mark.django_db
def test_streamed_histories_keep_an_event_type_outside_the_choices(user_factory, item_factory, event_factory):
    # given a stored event whose type is no longer among the field's choices
    shoppers = _shoppers(user_factory, item_factory, event_factory, users=4)
    legacy = Event.objects.filter(user=shoppers[1]).order_by("pk").first()
    Event.objects.filter(pk=legacy.pk).update(event_type="legacy_view")
    expected = load_histories(users=shoppers, limit=50)
    # when streamed (the packed read cannot code that type and reads these rows the general way)
    batches = list(stream_user_histories(user_ids=[s.pk for s in shoppers], limit=50))
    # then the histories are those of load_histories, the old type included
    names = {s.pk: s.username for s in shoppers}
    got = {names[pk]: history for b in batches for pk, history in zip(b.user_ids, b.histories(), strict=True)}
    assert got == expected
    assert "legacy_view" in {event_type for _, event_type, _ in got[shoppers[1].username]}


@pytest.mark.django_db
def test_streamed_times_are_the_exact_epoch_seconds_of_python(user_factory, item_factory, event_factory):
    # given events at instants with every kind of microsecond part, one before 1970
    from datetime import UTC, datetime

    shopper, product = user_factory(), item_factory()
    instants = [
        datetime(2026, 3, 1, 12, 34, 56, 123457, tzinfo=UTC),
        datetime(2026, 11, 28, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2001, 9, 9, 1, 46, 40, 1, tzinfo=UTC),
        datetime(2024, 2, 29, 0, 0, 0, 500000, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 58, 700001, tzinfo=UTC),
    ]
    for instant in instants:
        event_factory(user=shopper, item=product, occurred_at=instant)
    # when the user's history is streamed
    (batch,) = stream_user_histories(user_ids=[shopper.pk], limit=50)
    # then each time is bit for bit what datetime.timestamp() gives (the batch is oldest first)
    assert batch.timestamps.tolist() == sorted(instant.timestamp() for instant in instants)


@pytest.mark.django_db
def test_active_users_only_by_default(user_factory, product_factory, event_factory):
    # given one user active yesterday and one whose only event is a year old
    recent, dormant = user_factory(), user_factory()
    product = product_factory()
    event_factory(user=recent, item=product, occurred_at=days_ago(1))
    event_factory(user=dormant, item=product, occurred_at=days_ago(365))
    # when
    batches = list(stream_user_histories(active_days=90))
    # then
    assert [pk for b in batches for pk in b.user_ids] == [recent.pk]


def _anchors_one_by_one(vectors, history_columns, recommended):
    """``model.anchors``' rule written plainly: best known slot by cosine, first on ties, else slot 0."""
    out = np.zeros(recommended.shape, dtype=np.int64)
    for r in range(len(recommended)):
        known = [s for s, c in enumerate(history_columns[r]) if c >= 0]
        if not known:
            continue
        sims = vectors[history_columns[r][known]] @ vectors[recommended[r]].T
        out[r] = np.array(known)[np.argmax(sims, axis=0)]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_anchor_slots_equal_the_one_history_rule(seed):
    # given normalised vectors, recent slots with unknown (-1) and empty (-2) entries
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    history = rng.integers(0, 30, (12, 5))
    history[rng.random((12, 5)) < 0.2] = -1
    history[3] = -1  # a user none of whose recent items is known
    history[4, 2:] = -2
    recommended = rng.integers(0, 30, (12, 7))
    # when
    got = anchor_slots(vectors, history, recommended)
    # then
    assert got.tolist() == _anchors_one_by_one(vectors, history, recommended).tolist()
    assert (got[3] == 0).all()
    assert anchor_slots(None, history, recommended).tolist() == np.zeros((12, 7), dtype=int).tolist()


def _serving_path(loaded, user, n):
    """What the real-time path computes for the same user: model.recommend + model.anchors."""
    history = load_histories(users=[user], limit=50)[user.username]
    bought = {key for key, event_type, _ in history if event_type == "purchase"}
    scored = model.recommend(loaded, [history], n, exclude=[bought])[0]
    anchors = model.anchors(loaded, history, [key for key, _ in scored])
    from behavior.items import items_by_key

    names = {key: str(item) for key, item in items_by_key({a for a, _ in anchors.values()}).items()}
    reasons = [
        explain.from_anchor(k, anchors.get(k), names.get(anchors[k][0], "") if k in anchors else "").pack()
        for k, _ in scored
    ]
    return [k for k, _ in scored], [round(s, 6) for _, s in scored], reasons


def _browse(user_factory, event_factory, catalogue, users: int = 9):
    shoppers = [user_factory() for _ in range(users)]
    products = catalogue["shoes"] + catalogue["hats"]
    for u, shopper in enumerate(shoppers):
        for step in range(2 + u % 5):
            event_factory(
                user=shopper,
                item=products[(u * 3 + step * 7) % len(products)],
                event_type=("view", "view", "add_to_cart", "purchase")[(u + step) % 4],
                occurred_at=days_ago(2 - step * 0.01),
            )
    return shoppers


def _assert_lists_match_serving(active_model, shoppers):
    stored = {row.user_id: row for row in PrecomputedList.objects.all()}
    assert set(stored) == {s.pk for s in shoppers}
    for shopper in shoppers:
        row = stored[shopper.pk]
        keys, scores, reasons = _serving_path(active_model, shopper, len(row.item_keys))
        assert row.item_keys == keys
        # a batch of histories and one history alone run different float32 kernels: the ranking
        # is the same, the stored 6-decimal scores may differ in the last digit
        assert row.scores == pytest.approx(scores, abs=2e-6)
        assert row.reasons == reasons
        assert row.model_version == active_model.version_number


@pytest.mark.django_db
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_refresh_lists_equal_the_real_time_path(
    active_model, user_factory, event_factory, catalogue, threads
):
    # given shoppers who viewed, carted and bought across both categories
    shoppers = _browse(user_factory, event_factory, catalogue)
    # when lists are refreshed in batches smaller than the number of users, scored by 1-3 threads
    with override_settings(RECOMMENDER={**settings.RECOMMENDER, "PRECOMPUTE_THREADS": threads}):
        result = refresh_recommendations(batch_size=4)
    # then each stored list is what the real-time path computes for the same history
    assert result.users == len(shoppers)
    assert set(result.timings) == {"load", "score", "explain", "write"}  # in a transaction: no threads
    _assert_lists_match_serving(active_model, shoppers)
    # and no item is explained by itself: an item the shopper had comes back "before", not
    # "because you viewed" itself
    names = {item.sku: item.name for items in catalogue.values() for item in items}
    rows = PrecomputedList.objects.all()
    pairs = [
        (key, explain.render(explain.unpack(reason)))
        for row in rows
        for key, reason in zip(row.item_keys, row.reasons, strict=True)
    ]
    assert not [(key, reason) for key, reason in pairs if names[key] in reason]
    assert {reason for _, reason in pairs if "this" in reason} <= {
        "you viewed this before",
        "you added this to your cart before",
    }
    assert any(reason.endswith("before") for _, reason in pairs)
    # and bought items never come back
    buyers = 0
    for shopper in shoppers:
        bought = {item_key(e.item) for e in Event.objects.filter(user=shopper, event_type="purchase")}
        buyers += bool(bought)
        assert not bought & set(PrecomputedList.objects.get(user=shopper).item_keys)
    assert buyers >= 3


@pytest.mark.django_db(transaction=True)
def test_refresh_outside_a_transaction_reads_ahead_with_the_same_lists(
    active_model, user_factory, event_factory, catalogue
):
    # given committed events (no surrounding transaction: the read-ahead thread is used on Postgres)
    shoppers = _browse(user_factory, event_factory, catalogue, users=6)
    # when refreshed twice (the second run replaces the lists)
    refresh_recommendations(batch_size=2)
    result = refresh_recommendations(batch_size=2)
    # then
    assert result.users == len(shoppers)
    assert PrecomputedList.objects.count() == len(shoppers)
    if connection.vendor == "postgresql":
        assert {"load (thread)", "write (thread)"} <= set(result.timings)
    _assert_lists_match_serving(active_model, shoppers)


@pytest.mark.django_db(transaction=True)
def test_refresh_raises_a_scoring_thread_error_and_stops_its_threads(
    active_model, user_factory, event_factory, catalogue, monkeypatch
):
    # given committed events and a lookup that fails on the second batch
    from recommendations.services.serving import precompute

    _browse(user_factory, event_factory, catalogue, users=6)
    calls = []
    real_items = precompute._Columns.items

    def failing_items(self, batch):
        calls.append(len(batch.user_ids))
        if len(calls) == 2:
            raise RuntimeError("lookup failed")
        return real_items(self, batch)

    monkeypatch.setattr(precompute._Columns, "items", failing_items)
    # when refreshed with two scoring threads
    with pytest.raises(RuntimeError, match="lookup failed"):
        refresh_recommendations(batch_size=2)
    # then the error reaches the caller and no precompute thread is left running
    running = [t.name for t in threading.enumerate() if t.name.startswith("precompute")]
    assert running == []


def test_write_behind_stores_in_order_and_raises_the_first_error():
    # given a store that fails on its third job
    from recommendations.services.serving.precompute_pipeline import WriteBehind as _WriteBehind

    stored = []

    def store(n):
        if n == 3:
            raise ValueError("disk full")
        stored.append(n)

    writer = _WriteBehind(store)
    # when five jobs are submitted and the writer is closed
    with pytest.raises(ValueError, match="disk full"):
        try:
            for n in range(5):
                writer(n)
        finally:
            writer.close()
    # then the jobs before the error were stored in order, none after it, and the thread is done
    assert stored == [0, 1, 2]
    assert not writer.thread.is_alive()


def test_round_scores_equals_round_to_six_digits():
    # given scores of every magnitude the blend gives, and values exactly halfway between two roundings
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.random(20_000) * 0.05,
            rng.random(5_000),
            (np.arange(5_000) + 0.5) / 1e6,
            (np.arange(1_000) + 0.5) / 1e6 + 0.25,
            rng.random(500) * 1e-6,
            [0.0, 1.0, 0.0000005, 0.0000015, 0.0000025, 2.5e-7, 123.4567895],
        ]
    )
    # when rounded on the whole array / then the floats are exactly those of round(v, 6)
    assert round_scores(values) == [round(v, 6) for v in values.tolist()]
    large = 1e7 + 0.1234565
    assert round_scores(np.array([large, float("inf")])) == [round(large, 6), float("inf")]


@pytest.mark.parametrize("total", [0, 1, 5, 100, 1000, 3000, 10_000])
def test_ramped_batches_cover_every_user_in_bounded_batches(total):
    # when a refresh of `total` users is cut into batches of at most 512
    sizes = ramped_batches(total, 512)
    # then every user is in exactly one batch, none is empty or larger than 512
    assert sum(sizes) == total
    assert all(0 < size <= 512 for size in sizes)
    if total >= 1000:
        # and the first batches ramp up, the last is a quarter batch
        assert sizes[:3] == [128, 256, min(512, total - 384 - 128)]
        assert sizes[-1] == 128


@pytest.mark.django_db
def test_refresh_collects_cycles_rarely_and_restores_the_thresholds(
    active_model, user_factory, event_factory, catalogue, monkeypatch
):
    # given shoppers with lists to compute, and the collector's thresholds before
    import gc

    from recommendations.services.serving import precompute

    _browse(user_factory, event_factory, catalogue)
    before = gc.get_threshold()
    during = []
    real_rank = precompute._rank

    def rank(*args, **kwargs):
        during.append(gc.get_threshold())
        return real_rank(*args, **kwargs)

    monkeypatch.setattr(precompute, "_rank", rank)
    # when refreshed
    refresh_recommendations(batch_size=4)
    # then every batch was scored with the bulk thresholds, and they are restored afterwards
    assert during and all(threshold == (100_000, 10, 10) for threshold in during)
    assert gc.get_threshold() == before


@pytest.mark.django_db
def test_precomputed_list_columns_are_lz4_compressed_on_postgres():
    # given: the migrated test database (lz4 lowers the CPU of every list a refresh writes)
    if connection.vendor != "postgresql":
        pytest.skip("column compression is a PostgreSQL setting")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        assert cursor.fetchone()[0], "this PostgreSQL lacks lz4; the migration would leave pglz"
        # when
        cursor.execute(
            "SELECT attname, attcompression FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped",
            [PrecomputedList._meta.db_table],
        )
        compression = dict(cursor.fetchall())
    # then: the JSON columns use lz4, the others keep the default
    assert {name: compression[name] for name in ("item_keys", "scores", "reasons")} == dict.fromkeys(
        ("item_keys", "scores", "reasons"), "l"
    )
    assert compression["computed_at"] == ""


@pytest.mark.django_db
def test_a_model_that_fails_on_one_batch_is_reported_and_the_other_lists_are_stored(
    active_model, user_factory, event_factory, catalogue, monkeypatch, caplog
):
    # given shoppers to refresh in batches of two, and a model that raises on its second batch
    shoppers = _browse(user_factory, event_factory, catalogue, users=6)
    recommender = active_model.recommender
    real_rank = type(recommender).rank_sequences
    calls = []

    def rank_sequences(self, seqs, n, **kwargs):
        calls.append(n)
        if len(calls) == 2:
            raise RuntimeError("weights corrupted")
        return real_rank(self, seqs, n, **kwargs)

    monkeypatch.setattr(type(recommender), "rank_sequences", rank_sequences)
    # when refreshed
    with caplog.at_level("ERROR", logger="recommendations.services.serving.precompute"):
        result = refresh_recommendations(batch_size=2)
    # then the refresh finishes, says how many users failed, and logs the model's error
    assert result.users == len(shoppers)
    assert result.failed_users == 1  # the second of the ramped batches (sizes 1, 1, 2, 2) has one user
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "failed to score 1 of 6 users" in errors[0] and "weights corrupted" in errors[0]
    # and every user has a row: the failed batch's list is empty, every other list is the real-time one
    rows = {row.user_id: row for row in PrecomputedList.objects.all()}
    assert set(rows) == {s.pk for s in shoppers}
    empty = [pk for pk, row in rows.items() if not row.item_keys]
    assert len(empty) == 1
    for shopper in shoppers:
        if shopper.pk in empty:
            continue
        keys, _scores, reasons = _serving_path(active_model, shopper, len(rows[shopper.pk].item_keys))
        assert rows[shopper.pk].item_keys == keys
        assert rows[shopper.pk].reasons == reasons
