"""The full profile rebuild's fit: scaling, outliers, segments and tag thresholds learned on everyone.

The fit runs once per full rebuild, on the features of every user (computed chunk by chunk, see
``services.profiles.fanout``), and stores what it learned on the run: every chunk then places its
users with those numbers (:func:`place_full`). Segment labels and outlier flags are the fit's own
(it needs them for everyone to describe the segments); they are handed to the chunks as they are,
because the outlier model kept on the run for incremental rebuilds is a rounded sample of the core
points and would not flag exactly the same users.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from recommendations.conf import recommender_settings
from recommendations.core.profiles.features import AFFINITY_PREFIX, EMBEDDING_PREFIX, FeatureTable
from recommendations.core.profiles.outliers import OUTLIER_FEATURES, detect_outliers
from recommendations.core.profiles.preprocessing import FeatureScaler
from recommendations.core.profiles.segments import SegmentModel, SegmentSpace, describe_segments, fit_segments
from recommendations.core.profiles.tags import evaluate_rules, resolve_thresholds
from recommendations.models import ProfileRun, Segment
from recommendations.services.profiles.compute import Computed, add_embedding_columns
from recommendations.services.profiles.outcome import Placement, round_figure
from recommendations.services.profiles.tags import get_tag_rules

# Outlier core points kept on the run for incremental rebuilds (a random subset is enough).
MAX_STORED_CORE_POINTS = 3000
# Users K-means learns the segment centres from (a fixed random sample of the eligible ones).
SEGMENT_FIT_SAMPLE = 20_000


@dataclass
class FullFit:
    """What the fit decided for every user it saw (in the order of the fitted ``Computed``)."""

    labels: np.ndarray  # (n,) int64 segment number, -1 = none
    is_outlier: np.ndarray  # (n,) bool


def fit_full(run: ProfileRun, computed: Computed, now_dt: datetime) -> FullFit:
    """Learn scaler, outliers, segments and tag thresholds on ``computed``; store them on ``run``.

    ``computed`` holds every user of the rebuild with its final affinity columns; the embedding
    components are added here. Writes the run's params, k and silhouette and its ``Segment`` rows.
    """
    rules = get_tag_rules()
    pca = add_embedding_columns(computed, None)
    table, active = computed.table, computed.has_events
    scaler = FeatureScaler().fit(table.values[active] if active.any() else table.values, table.columns)
    scaled = scaler.transform(table.values)

    reduced_idx = [table.columns.index(name) for name in OUTLIER_FEATURES]
    seed = int(recommender_settings.RANDOM_SEED)
    outlier_model, flagged = detect_outliers(
        scaled[active][:, reduced_idx],
        eps=recommender_settings.DBSCAN_EPS,
        min_samples=int(recommender_settings.DBSCAN_MIN_SAMPLES),
        sample_size=int(recommender_settings.DBSCAN_SAMPLE_SIZE),
        random_state=seed,
    )
    is_outlier = np.zeros(len(computed.user_pks), dtype=bool)
    is_outlier[np.flatnonzero(active)[flagged]] = True

    space, segment_model, fit_rows, labels = _fit_segments(table, active, is_outlier, seed)
    resolved = resolve_thresholds(rules, table.columns, table.values[active])

    filled = scaler.fill(table.values)
    segments_info = _segment_summaries(
        segment_model.k, table.columns, filled, scaled, labels, active & ~is_outlier
    )
    rng = np.random.default_rng(seed)
    core = outlier_model.core_points
    core_labels = outlier_model.core_labels if outlier_model.core_labels is not None else np.zeros(len(core))
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
    run.save(update_fields=["params", "k", "silhouette"])
    Segment.objects.filter(run=run).delete()  # a fit run again (a redelivered final step) starts over
    Segment.objects.bulk_create(
        Segment(
            run=run, number=s, traits=traits, size=int((labels == s).sum()), centre=centre, created_at=now_dt
        )
        for s, (traits, centre) in enumerate(segments_info)
    )
    return FullFit(labels=labels, is_outlier=is_outlier)


def place_full(
    computed: Computed, params: dict[str, Any], labels: np.ndarray, is_outlier: np.ndarray
) -> Placement:
    """Place the users of one chunk with what the fit learned (``params``) and decided (labels, flags).

    ``computed`` has the run's affinity columns; scaling and tags are per user, so the chunk
    computes them exactly as the fit would have.
    """
    add_embedding_columns(computed, params.get("embedding_pca"))
    scaler = FeatureScaler.from_dict(params["scaler"])
    table = computed.table
    if table.columns != scaler.columns_:  # never expected: the chunk and the fit built different tables
        raise ValueError(f"chunk columns {table.columns} differ from the fitted {scaler.columns_}")
    scaled = scaler.transform(table.values)
    reduced_idx = [table.columns.index(name) for name in params["outliers"]["features"]]
    tags = evaluate_rules(params["tag_rules"], table.columns, table.values)
    return Placement(labels, is_outlier, scaled, reduced_idx, scaler, tags)


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
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Traits (codes, see ``describe_segments``) and per-feature centre of each segment
    (z = mean scaled value of its members)."""
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
    described = describe_segments(centres, columns, means, overall)
    summaries = []
    for s, traits in enumerate(described):
        centre = {
            column: {
                "mean": round_figure(means[s, j]),
                "overall": round_figure(overall[j]),
                "z": round_figure(centres[s, j]),
            }
            for j, column in enumerate(columns)
            if not column.startswith(EMBEDDING_PREFIX)
        }
        summaries.append((traits, centre))
    return summaries
