"""The incremental profile rebuild: changed users placed with what the last full run learned."""

from __future__ import annotations

from typing import Any

import numpy as np

from recommendations.core.profiles.outliers import OutlierModel
from recommendations.core.profiles.preprocessing import FeatureScaler
from recommendations.core.profiles.segments import SegmentSpace, nearest_centre
from recommendations.core.profiles.tags import evaluate_rules
from recommendations.services.profiles.compute import Computed, add_embedding_columns
from recommendations.services.profiles.outcome import Placement


def place_incremental(computed: Computed, params: dict[str, Any]) -> Placement:
    """Scale, flag, segment and tag the users of ``computed`` with the full run's ``params``.

    ``computed`` was computed with the full run's affinity columns. Every step is per user, so
    a chunk of users is placed exactly as it would be among all the changed users.
    """
    add_embedding_columns(computed, params.get("embedding_pca"))
    scaler = FeatureScaler.from_dict(params["scaler"])
    table = computed.table
    n = len(computed.user_pks)
    # Same columns, same order as the full run (a model that appeared since adds nothing).
    order = [table.columns.index(c) if c in table.columns else -1 for c in scaler.columns_]
    values = (
        np.column_stack([table.values[:, j] if j >= 0 else np.full(n, np.nan) for j in order])
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
    is_outlier = np.zeros(n, dtype=bool)
    is_outlier[active] = outlier_model.is_outlier(scaled[active][:, reduced_idx])
    centres = np.asarray(params["centres"], dtype=np.float64)
    labels = np.full(n, -1, dtype=np.int64)
    if len(centres) and active.any():
        if "segment_space" in params:
            space = SegmentSpace.from_dict(params["segment_space"])
            shares = table.category_shares if table.category_shares is not None else np.zeros((n, 0))
            matrix = space.transform(shares, table.category_names, table.column("price_level"))
        else:  # a full run from before segment spaces: its centres are in the scaled space
            matrix = scaled
        labels[active] = nearest_centre(matrix[active], centres)
    tags = evaluate_rules(params["tag_rules"], table.columns, values)
    return Placement(labels, is_outlier, scaled, reduced_idx, scaler, tags)
