"""``rebuild_profiles``: features -> scaling -> outliers -> segments -> tags -> upsert.

A full rebuild learns everything (scaler, segment centres, outlier core points, tag
thresholds) and stores it on a :class:`ProfileRun`; an incremental rebuild recomputes only
the users with new events and places them with what the last full run learned.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from threadpoolctl import threadpool_limits

from behavior.models import Event
from recommendations.conf import network_config, recommender_settings
from recommendations.core.profiles.features import (
    AFFINITY_PREFIX,
    EMBEDDING_PREFIX,
    HEURISTIC_PROPENSITY_FORMULA,
    FeatureTable,
    compute_features,
    heuristic_propensity,
)
from recommendations.core.profiles.outliers import (
    OUTLIER_FEATURES,
    OutlierModel,
    detect_outliers,
    outlier_reasons,
)
from recommendations.core.profiles.preprocessing import FeatureScaler
from recommendations.core.profiles.segments import (
    SegmentModel,
    SegmentSpace,
    describe_segments,
    fit_segments,
    nearest_centre,
)
from recommendations.core.profiles.tags import evaluate_rules, resolve_thresholds
from recommendations.data.clock import data_now
from recommendations.models import ProfileRun, ProfileTag, Segment, UserProfile
from recommendations.runtime.locks import run_lock
from recommendations.services.profiles.features import load_catalogue, load_profile_events, profile_users
from recommendations.services.profiles.tags import get_tag_rules
from recommendations.services.profiles.writer import vacuum_profiles, write_profiles

PROFILE_LOCK_NAME = "recommendations.rebuild_profiles"
# A rebuild of 100k profiles takes about a minute; a dead process frees the lease after this.
PROFILE_LEASE_SECONDS = 3600

logger = logging.getLogger(__name__)

EMBEDDING_COMPONENTS = 4
MODEL_BATCH = 2048
# Outlier core points kept on the run for incremental rebuilds (a random subset is enough).
MAX_STORED_CORE_POINTS = 3000
PROFILE_NATIVE_THREADS = 1
# Latest events per shopper read for the model's propensity and embedding (the embedding keeps
# the last MAX_SEQUENCE_LENGTH itself). The propensity head's counting features (events, items,
# active days, per-type counts) saw each shopper's whole training window when it was fitted;
# only the last MAX_SEQUENCE_LENGTH events would undercount every longer history, a train/serve
# skew (on a week of Taobao, where the median shopper has 55 events: ROC-AUC 0.5735 with 50
# events, 0.578 with all). The bound keeps a batch's histories in memory.
PROPENSITY_HISTORY_EVENTS = 1000
# Users K-means learns the segment centres from (a fixed random sample of the eligible ones).
SEGMENT_FIT_SAMPLE = 20_000


@dataclass
class RebuildResult:
    """What one rebuild did."""

    run_id: int
    kind: str
    users: int
    segments: int
    outliers: int
    tagged: int
    seconds: float
    propensity_source: str
    notes: list[str] = field(default_factory=list)


@dataclass
class _Computed:
    user_pks: list[Any]
    usernames: list[str]
    table: FeatureTable
    has_events: np.ndarray
    propensity_source: str
    model_version: int | None
    notes: list[str]
    embeddings: np.ndarray | None = None
    # the data clock (unix seconds) the features count back from: recency_days is relative to it
    clock: float = 0.0


def rebuild_profiles(*, user_ids: Iterable[Any] | None = None, full: bool = False) -> RebuildResult:
    """Rebuild user profiles; idempotent (upserts) and batched by ``PROFILE_BATCH_SIZE``.

    ``full=True`` recomputes everyone and re-learns segments, outliers and thresholds.
    Otherwise the rebuild is incremental — only ``user_ids``, or by default the users with
    events received since their profile's ``updated_at`` — reusing the last full run;
    it falls back to a full rebuild when there is no full run yet or more than
    ``PROFILE_INCREMENTAL_MAX_SHARE`` of the profiles changed.
    """
    started = time.monotonic()
    # Two schedulers, a redelivered task or a manual run must never rebuild at the same time:
    # the loser returns at once with a "skipped" result instead of waiting.
    with run_lock(PROFILE_LOCK_NAME, lease_seconds=PROFILE_LEASE_SECONDS) as lock:
        if lock is None:
            return RebuildResult(
                run_id=0,
                kind="skipped",
                users=0,
                segments=0,
                outliers=0,
                tagged=0,
                seconds=round(time.monotonic() - started, 3),
                propensity_source="",
                notes=["another profile rebuild is running"],
            )
        return _locked_rebuild(user_ids, full, started)


def _locked_rebuild(user_ids: Iterable[Any] | None, full: bool, started: float) -> RebuildResult:
    # One native thread for K-means / DBSCAN / BLAS: where the cores are busy, OpenMP workers
    # spin against each other and the silhouette search over k runs many times slower than on
    # one thread. Every array here is small enough for one core.
    with threadpool_limits(limits=PROFILE_NATIVE_THREADS):
        result = _rebuild(user_ids, full, started)
    if result.kind == ProfileRun.Kind.FULL:
        vacuum_profiles()
    return result


def _rebuild(user_ids: Iterable[Any] | None, full: bool, started: float) -> RebuildResult:
    current = latest_full_run()
    if not full and current is not None:
        if user_ids is None:
            changed = changed_user_ids()
            total = max(UserProfile.objects.count(), 1)
            if len(changed) <= recommender_settings.PROFILE_INCREMENTAL_MAX_SHARE * total:
                return _rebuild_incremental(current, changed, started)
        else:
            return _rebuild_incremental(current, list(user_ids), started)
    return _rebuild_full(started)


def latest_full_run() -> ProfileRun | None:
    return (
        ProfileRun.objects.filter(kind=ProfileRun.Kind.FULL, status=ProfileRun.Status.COMPLETED)
        .order_by("-created_at", "-pk")
        .first()
    )


def changed_user_ids() -> list[Any]:
    """Users with events received after their profile was updated, or without a profile."""
    queryset = (
        Event.objects.filter(user__isnull=False, user__is_active=True)
        .filter(
            Q(user__recommendation_profile__isnull=True)
            | Q(received_at__gt=F("user__recommendation_profile__updated_at"))
        )
        .order_by()
        .values_list("user_id", flat=True)
        .distinct()
    )
    return list(queryset)


# --- computing -------------------------------------------------------------------------------------
def _compute(
    user_pks: list[Any],
    usernames: list[str],
    *,
    now: float,
    restrict: bool,
    affinity_columns: Sequence[str] | None,
) -> _Computed:
    catalogue = load_catalogue()
    events = load_profile_events(user_pks, catalogue, restrict=restrict)
    table = compute_features(
        events,
        now=now,
        category_median_price=catalogue.median_price,
        event_weights=recommender_settings.EVENT_WEIGHTS,
        affinity_columns=affinity_columns,
        max_affinity_columns=recommender_settings.PROFILE_AFFINITY_CATEGORIES,
    )
    has_events = ~np.isnan(table.column("recency_days"))
    notes: list[str] = []
    if not catalogue.category_names:
        notes.append("the item model has no categories: affinities and price level are skipped")
    propensity, embeddings, source, version = _model_outputs(user_pks, usernames, now, notes)
    if propensity is None:
        propensity = heuristic_propensity(table)
    table.add_column("propensity", propensity)
    return _Computed(user_pks, usernames, table, has_events, source, version, notes, embeddings, now)


def _model_outputs(
    user_pks: list[Any], usernames: list[str], now: float, notes: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None, str, int | None]:
    """Propensity and embeddings from the active model; (None, None, "heuristic", None) without one.

    A model without a propensity head gives its embeddings and no propensity (the heuristic's).
    """
    try:
        from recommendations.services.registry import get_active_model

        loaded = get_active_model()
    except Exception:  # the registry is optional for profiles: never let it break a rebuild
        logger.exception("the active model could not be looked up for profiles")
        loaded = None
    if loaded is None:
        notes.append(
            "no active model: behaviour embedding skipped; propensity from the heuristic "
            + HEURISTIC_PROPENSITY_FORMULA
        )
        return None, None, "heuristic", None
    from recommendations.data.events import load_histories

    recommender = loaded.recommender
    # the head reads events strictly before its "now"; ``now`` is the data clock, the time of the
    # newest event itself, which must count: the next representable instant includes it
    after = float(np.nextafter(now, np.inf))
    # A model without a trained head answers its training base rate for everyone (0 when there
    # were no labels): no ranking at all. The heuristic at least orders shoppers by carts,
    # orders, views and recency, so it stands in and the profiles say so.
    has_head = bool(getattr(recommender, "has_propensity_", True))
    if not has_head:
        why = ((getattr(recommender, "report_", None) or {}).get("propensity") or {}).get("reason", "")
        notes.append(
            f"the active model v{loaded.version_number} has no propensity head"
            + (f" ({why})" if why else "")
            + ": propensity from the heuristic "
            + HEURISTIC_PROPENSITY_FORMULA
        )
    propensity = np.zeros(len(user_pks))
    embeddings: np.ndarray | None = None
    for start in range(0, len(user_pks), MODEL_BATCH):
        pks = user_pks[start : start + MODEL_BATCH]
        names = usernames[start : start + MODEL_BATCH]
        histories_by_key = load_histories(
            users=pks, limit=max(network_config().history_limit(), PROPENSITY_HISTORY_EVENTS)
        )
        histories = [histories_by_key.get(name, []) for name in names]
        if has_head:
            propensity[start : start + len(pks)] = np.asarray(
                recommender.propensity(histories, after), dtype=np.float64
            )
        batch = np.asarray(recommender.embed_users(histories), dtype=np.float64)
        if embeddings is None:
            embeddings = np.zeros((len(user_pks), batch.shape[1]))
        embeddings[start : start + len(pks)] = batch
    if not has_head:
        return None, embeddings, "heuristic", loaded.version_number
    return propensity, embeddings, "model", loaded.version_number


def _add_embedding_columns(computed: _Computed, pca: dict[str, Any] | None) -> dict[str, Any] | None:
    """Project embeddings on a few principal components (fitted on a full run) as extra columns."""
    if computed.embeddings is None:
        if pca is not None:  # the full run had a model: leave the components missing (median fill)
            for i in range(len(pca["components"])):
                computed.table.add_column(f"{EMBEDDING_PREFIX}{i}", np.full(len(computed.user_pks), np.nan))
        return pca
    embeddings = computed.embeddings
    if pca is None:
        rows = embeddings[computed.has_events] if computed.has_events.any() else embeddings
        mean = rows.mean(axis=0)
        _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
        pca = {"mean": mean.tolist(), "components": vt[:EMBEDDING_COMPONENTS].tolist()}
    projected = (embeddings - np.asarray(pca["mean"])) @ np.asarray(pca["components"]).T
    for i in range(projected.shape[1]):
        computed.table.add_column(f"{EMBEDDING_PREFIX}{i}", projected[:, i])
    return pca


# --- full rebuild ----------------------------------------------------------------------------------
def _rebuild_full(started: float) -> RebuildResult:
    # now_dt (wall clock) stamps the run and the profiles; features count back from the data clock
    now_dt = timezone.now()
    now = data_now(now_dt).timestamp()
    rules = get_tag_rules()
    run = ProfileRun.objects.create(kind=ProfileRun.Kind.FULL, created_at=now_dt)
    try:
        user_pks, usernames = profile_users()
        computed = _compute(user_pks, usernames, now=now, restrict=False, affinity_columns=None)
        pca = _add_embedding_columns(computed, None)
        table, active = computed.table, computed.has_events
        scaler = FeatureScaler().fit(table.values[active] if active.any() else table.values, table.columns)
        scaled = scaler.transform(table.values)

        reduced_idx = [table.columns.index(name) for name in OUTLIER_FEATURES]
        eps_setting = recommender_settings.DBSCAN_EPS
        seed = int(recommender_settings.RANDOM_SEED)
        outlier_model, flagged = detect_outliers(
            scaled[active][:, reduced_idx],
            eps=eps_setting,
            min_samples=int(recommender_settings.DBSCAN_MIN_SAMPLES),
            sample_size=int(recommender_settings.DBSCAN_SAMPLE_SIZE),
            random_state=seed,
        )
        is_outlier = np.zeros(len(user_pks), dtype=bool)
        is_outlier[np.flatnonzero(active)[flagged]] = True

        space, segment_model, fit_rows, labels = _fit_segments(table, active, is_outlier, seed)

        resolved = resolve_thresholds(rules, table.columns, table.values[active])
        tags = evaluate_rules(resolved, table.columns, table.values)

        filled = scaler.fill(table.values)
        segments_info = _segment_summaries(
            segment_model.k, table.columns, filled, scaled, labels, active & ~is_outlier
        )
        rng = np.random.default_rng(seed)
        core = outlier_model.core_points
        core_labels = (
            outlier_model.core_labels if outlier_model.core_labels is not None else np.zeros(len(core))
        )
        if len(core) > MAX_STORED_CORE_POINTS:
            keep = rng.choice(len(core), size=MAX_STORED_CORE_POINTS, replace=False)
            core, core_labels = core[keep], core_labels[keep]
        run.params = {
            "scaler": scaler.to_dict(),
            "scaling_choices": scaler.choices(),
            "affinity_columns": [
                c[len(AFFINITY_PREFIX) :] for c in table.columns if c.startswith(AFFINITY_PREFIX)
            ],
            "embedding_pca": pca,
            "segment_space": space.to_dict(),
            "segment_fit_users": int(fit_rows.sum()),
            "centres": segment_model.centres.tolist(),
            "segment_algorithm": segment_model.algorithm,
            "silhouette_by_k": {str(k): v for k, v in segment_model.silhouette_by_k.items()},
            "k_source": "setting SEGMENT_K"
            if recommender_settings.SEGMENT_K
            else "silhouette over SEGMENT_K_RANGE",
            "outliers": {
                "features": list(OUTLIER_FEATURES),
                "eps": outlier_model.eps,
                "eps_source": outlier_model.eps_source,
                "min_samples": outlier_model.min_samples,
                "core_points": np.round(core, 5).tolist(),
                "core_labels": [int(x) for x in core_labels],
                "small_clusters": list(outlier_model.small_clusters),
            },
            "tag_rules": resolved,
        }
        run.k = segment_model.k
        run.silhouette = segment_model.silhouette_by_k.get(segment_model.k)
        with transaction.atomic():
            segments = [
                Segment(
                    run=run,
                    number=s,
                    name=name,
                    description=description,
                    size=int((labels == s).sum()),
                    centre=centre,
                    created_at=now_dt,
                )
                for s, (name, description, centre) in enumerate(segments_info)
            ]
            Segment.objects.bulk_create(segments)
            segment_rows = {s.number: s for s in Segment.objects.filter(run=run)}
            ProfileTag.objects.all().delete()
            _write_profiles(
                computed,
                labels,
                segment_rows,
                is_outlier,
                scaled,
                reduced_idx,
                scaler,
                tags,
                now_dt,
                full=True,
            )
            Segment.objects.exclude(run=run).delete()
            _finish(run, computed, is_outlier, tags, started)
    except Exception as exc:
        ProfileRun.objects.filter(pk=run.pk).update(
            status=ProfileRun.Status.FAILED, error=repr(exc)[:2000], finished_at=timezone.now()
        )
        raise
    return _result(run, computed, is_outlier, tags, started)


def _fit_segments(
    table: FeatureTable, active: np.ndarray, is_outlier: np.ndarray, seed: int
) -> tuple[SegmentSpace, SegmentModel, np.ndarray, np.ndarray]:
    """Learn segments in the :class:`SegmentSpace` and place every active user; -1 = no segment.

    Centres are learned from the users whose history is long enough to show what kind of
    shopper they are (at least the median number of events), outliers excluded, on a fixed
    sample of at most ``SEGMENT_FIT_SAMPLE`` rows (full K-means with several starts: the
    mini-batch variant landed in poor local minima on this space). Everyone active is then
    placed at the nearest centre. With the short histories included, the silhouette kept
    rising up to the largest k (each single-category user is a corner of its own) and
    split the planted types; measured on a shop generated with ``--seed 7``.
    """
    shares = table.category_shares if table.category_shares is not None else np.zeros((len(active), 0))
    price_level = table.column("price_level")
    space = SegmentSpace(list(table.category_names)).fit(shares[active], price_level[active])
    matrix = space.transform(shares, table.category_names, price_level)
    events = table.column("events")
    candidates = active & ~is_outlier
    if not candidates.any():
        candidates = active
    fit_rows = candidates.copy()
    if candidates.any():
        fit_rows &= events >= max(1.0, float(np.median(events[candidates])))
    rows = np.flatnonzero(fit_rows)
    if len(rows) > SEGMENT_FIT_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=SEGMENT_FIT_SAMPLE, replace=False))
    segment_model = fit_segments(
        matrix[rows],
        k=recommender_settings.SEGMENT_K,
        k_range=recommender_settings.SEGMENT_K_RANGE,
        minibatch_threshold=max(int(recommender_settings.MINIBATCH_THRESHOLD), SEGMENT_FIT_SAMPLE),
        silhouette_sample=int(recommender_settings.SEGMENT_SILHOUETTE_SAMPLE),
        random_state=seed,
    )
    labels = np.full(len(active), -1, dtype=np.int64)
    if segment_model.k:
        labels[active] = segment_model.predict(matrix[active])
    return space, segment_model, fit_rows, labels


def _segment_summaries(
    k: int,
    columns: list[str],
    filled: np.ndarray,
    scaled: np.ndarray,
    labels: np.ndarray,
    members_mask: np.ndarray,
) -> list[tuple[str, str, dict[str, Any]]]:
    """Name, description and per-feature centre of each segment (z = mean scaled value of its members)."""
    if not k:
        return []
    members_mask = members_mask & (labels >= 0)
    if not members_mask.any():
        members_mask = labels >= 0
    population = filled[members_mask]
    overall = population.mean(axis=0)
    means = np.vstack(
        [
            filled[(labels == s) & members_mask].mean(axis=0)
            if ((labels == s) & members_mask).any()
            else overall
            for s in range(k)
        ]
    )
    scaled_overall = scaled[members_mask].mean(axis=0)
    centres = np.vstack(
        [
            scaled[labels == s].mean(axis=0) - scaled_overall
            if (labels == s).any()
            else np.zeros(len(columns))
            for s in range(k)
        ]
    )
    named = describe_segments(centres, columns, means, overall)
    summaries = []
    for s, (name, description) in enumerate(named):
        centre = {
            column: {"mean": _round(means[s, j]), "overall": _round(overall[j]), "z": _round(centres[s, j])}
            for j, column in enumerate(columns)
            if not column.startswith(EMBEDDING_PREFIX)
        }
        summaries.append((name, description, centre))
    return summaries


# --- incremental rebuild ---------------------------------------------------------------------------
def _rebuild_incremental(current: ProfileRun, user_ids: list[Any], started: float) -> RebuildResult:
    now_dt = timezone.now()  # stamps the run and the profiles; features use the data clock
    params = current.params
    run = ProfileRun.objects.create(kind=ProfileRun.Kind.INCREMENTAL, created_at=now_dt)
    try:
        user_pks, usernames = profile_users(user_ids)
        computed = _compute(
            user_pks,
            usernames,
            now=data_now(now_dt).timestamp(),
            restrict=True,
            affinity_columns=params["affinity_columns"],
        )
        _add_embedding_columns(computed, params.get("embedding_pca"))
        scaler = FeatureScaler.from_dict(params["scaler"])
        table = computed.table
        # Same columns, same order as the full run (a model that appeared since adds nothing).
        order = [table.columns.index(c) if c in table.columns else -1 for c in scaler.columns_]
        values = (
            np.column_stack([table.values[:, j] if j >= 0 else np.full(len(user_pks), np.nan) for j in order])
            if len(order)
            else table.values
        )
        table.columns, table.values = list(scaler.columns_), values
        scaled = scaler.transform(values)
        active = computed.has_events
        reduced_idx = [table.columns.index(name) for name in params["outliers"]["features"]]
        outlier_model = OutlierModel(
            eps=params["outliers"]["eps"],
            min_samples=params["outliers"]["min_samples"],
            core_points=np.asarray(params["outliers"]["core_points"], dtype=np.float64).reshape(
                -1, len(reduced_idx)
            ),
            eps_source=params["outliers"]["eps_source"],
            core_labels=np.asarray(params["outliers"]["core_labels"], dtype=np.int64),
            small_clusters=tuple(params["outliers"]["small_clusters"]),
        )
        is_outlier = np.zeros(len(user_pks), dtype=bool)
        is_outlier[active] = outlier_model.is_outlier(scaled[active][:, reduced_idx])
        centres = np.asarray(params["centres"], dtype=np.float64)
        labels = np.full(len(user_pks), -1, dtype=np.int64)
        if len(centres) and active.any():
            if "segment_space" in params:
                space = SegmentSpace.from_dict(params["segment_space"])
                shares = table.category_shares
                if shares is None:
                    shares = np.zeros((len(user_pks), 0))
                matrix = space.transform(shares, table.category_names, table.column("price_level"))
            else:  # a full run from before segment spaces: its centres are in the scaled space
                matrix = scaled
            labels[active] = nearest_centre(matrix[active], centres)
        tags = evaluate_rules(params["tag_rules"], table.columns, values)
        segment_rows = {s.number: s for s in Segment.objects.filter(run=current)}
        with transaction.atomic():
            ProfileTag.objects.filter(profile_id__in=user_pks).delete()
            _write_profiles(
                computed,
                labels,
                segment_rows,
                is_outlier,
                scaled,
                reduced_idx,
                scaler,
                tags,
                now_dt,
                full=False,
            )
            for segment in segment_rows.values():
                segment.size = segment.profiles.count()
            Segment.objects.bulk_update(list(segment_rows.values()), ["size"])
            run.params = {"based_on_run": current.pk}
            _finish(run, computed, is_outlier, tags, started)
    except Exception as exc:
        ProfileRun.objects.filter(pk=run.pk).update(
            status=ProfileRun.Status.FAILED, error=repr(exc)[:2000], finished_at=timezone.now()
        )
        raise
    return _result(run, computed, is_outlier, tags, started)


# --- writing ---------------------------------------------------------------------------------------
def round_significant(values: np.ndarray, digits: int = 5) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (like ``float(f"{v:.5g}")``); NaN/inf -> NaN."""
    values = np.asarray(values, dtype=np.float64)
    result = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    zero = finite & (values == 0)
    result[zero] = 0.0
    nonzero = finite & ~zero
    v = values[nonzero]
    shift = (digits - 1 - np.floor(np.log10(np.abs(v)))).astype(np.int64)
    # Divide/multiply by an exact power of ten so the result is the double nearest the decimal.
    up = shift >= 0
    out = np.empty_like(v)
    out[up] = np.round(v[up] * 10.0 ** shift[up]) / 10.0 ** shift[up]
    out[~up] = np.round(v[~up] / 10.0 ** -shift[~up]) * 10.0 ** -shift[~up]
    result[nonzero] = out
    return result


def _round(value: float) -> float | None:
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    return float(f"{value:.5g}")


def _write_profiles(
    computed: _Computed,
    labels: np.ndarray,
    segment_rows: dict[int, Segment],
    is_outlier: np.ndarray,
    scaled: np.ndarray,
    reduced_idx: list[int],
    scaler: FeatureScaler,
    tags: list[list[dict[str, Any]]],
    now_dt: datetime,
    *,
    full: bool,
) -> None:
    table = computed.table
    reasons: dict[int, str] = {}
    flagged = np.flatnonzero(is_outlier)
    if len(flagged):
        texts = outlier_reasons(
            table.values[flagged][:, reduced_idx],
            scaled[flagged][:, reduced_idx],
            [table.columns[j] for j in reduced_idx],
            scaler.medians_[reduced_idx],
        )
        reasons = {int(i): text[:255] for i, text in zip(flagged, texts, strict=True)}
    stored_columns = [(j, c) for j, c in enumerate(table.columns) if not c.startswith(EMBEDDING_PREFIX)]
    names = [c for _, c in stored_columns]
    # Rounded column-wise (5 significant digits, NaN -> None), then one dict per user.
    rounded = round_significant(table.values[:, [j for j, _ in stored_columns]]).tolist()
    recency = table.column("recency_days")
    propensity = round_significant(table.column("propensity")).tolist()
    clock = computed.clock  # the last activity is the data clock minus the recency
    no_events_note = (
        "no events recorded for this account (anonymous browsing before login is not linked "
        "to it): not placed in a segment"
    )
    rows: list[tuple[Any, ...]] = []
    tag_rows: list[tuple[Any, str, float]] = []
    for i, pk in enumerate(computed.user_pks):
        features: dict[str, Any] = {
            name: (None if value != value else value) for name, value in zip(names, rounded[i], strict=True)
        }
        features["top_categories"] = [[name, share] for name, share in table.top_categories[i]]
        active = bool(computed.has_events[i])
        notes = list(table.notes[i])
        if not active:
            notes.append(no_events_note)
        notes += computed.notes
        label = int(labels[i])
        segment = segment_rows.get(label) if label >= 0 else None
        user_propensity = propensity[i] if active and propensity[i] == propensity[i] else None
        rows.append(
            (
                pk,
                segment.pk if segment is not None else None,
                tags[i],
                features,
                user_propensity,
                computed.propensity_source,
                bool(is_outlier[i]),
                reasons.get(i, ""),
                datetime.fromtimestamp(clock - recency[i] * 86_400.0, tz=UTC) if active else None,
                now_dt,
                computed.model_version,
                notes,
            )
        )
        tag_rows += [(pk, tag["label"][:120], tag["weight"]) for tag in tags[i]]
    write_profiles(rows, tag_rows, batch_size=int(recommender_settings.PROFILE_BATCH_SIZE))
    if full:
        # Profiles of users who are no longer profiled (deactivated) would keep stale segments.
        UserProfile.objects.exclude(updated_at=now_dt).update(segment=None)


def _finish(
    run: ProfileRun,
    computed: _Computed,
    is_outlier: np.ndarray,
    tags: list[list[dict[str, Any]]],
    started: float,
) -> None:
    counts = ProfileTag.objects.values("label").annotate(n=Count("pk")).order_by("-n", "label")
    tag_counts = {row["label"]: row["n"] for row in counts}
    run.status = ProfileRun.Status.COMPLETED
    run.finished_at = timezone.now()
    run.users = len(computed.user_pks)
    run.model_version = computed.model_version
    run.summary = {
        "users": len(computed.user_pks),
        "users_without_events": int((~computed.has_events).sum()),
        "outliers": int(is_outlier.sum()),
        "tag_counts": tag_counts,
        "propensity_source": computed.propensity_source,
        "notes": computed.notes,
        "seconds": round(time.monotonic() - started, 3),
    }
    run.save()


def _result(
    run: ProfileRun,
    computed: _Computed,
    is_outlier: np.ndarray,
    tags: list[list[dict[str, Any]]],
    started: float,
) -> RebuildResult:
    return RebuildResult(
        run_id=run.pk,
        kind=run.kind,
        users=len(computed.user_pks),
        segments=Segment.objects.filter(
            run_id=run.pk if run.kind == ProfileRun.Kind.FULL else run.params.get("based_on_run")
        ).count(),
        outliers=int(is_outlier.sum()),
        tagged=sum(1 for row in tags if row),
        seconds=round(time.monotonic() - started, 3),
        propensity_source=computed.propensity_source,
        notes=list(computed.notes),
    )
