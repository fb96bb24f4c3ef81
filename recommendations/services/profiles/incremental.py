"""The incremental profile rebuild: recompute the changed users with what the last full run learned."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from recommendations.core.profiles.outliers import OutlierModel
from recommendations.core.profiles.preprocessing import FeatureScaler
from recommendations.core.profiles.segments import SegmentSpace, nearest_centre
from recommendations.core.profiles.tags import evaluate_rules
from recommendations.data.clock import data_now
from recommendations.models import ProfileRun, ProfileTag, Segment
from recommendations.services.profiles.compute import add_embedding_columns, compute
from recommendations.services.profiles.features import profile_users
from recommendations.services.profiles.outcome import (
    Placement,
    RebuildResult,
    failure_recorded,
    finish_run,
    rebuild_result,
    write_computed,
)


def rebuild_incremental(current: ProfileRun, user_ids: list[Any], started: float) -> RebuildResult:
    """Recompute ``user_ids`` and place them with what the full run ``current`` learned."""
    now_dt = timezone.now()  # stamps the run and the profiles; features use the data clock
    params = current.params
    run = ProfileRun.objects.create(kind=ProfileRun.Kind.INCREMENTAL, created_at=now_dt)
    with failure_recorded(run):
        user_pks, usernames = profile_users(user_ids)
        computed = compute(
            user_pks,
            usernames,
            now=data_now(now_dt).timestamp(),
            restrict=True,
            affinity_columns=params["affinity_columns"],
        )
        add_embedding_columns(computed, params.get("embedding_pca"))
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
        placement = Placement(labels, is_outlier, scaled, reduced_idx, scaler, tags)
        segment_rows = {s.number: s for s in Segment.objects.filter(run=current)}
        with transaction.atomic():
            ProfileTag.objects.filter(profile_id__in=user_pks).delete()
            write_computed(computed, placement, segment_rows, now_dt, full=False)
            for segment in segment_rows.values():
                segment.size = segment.profiles.count()
            Segment.objects.bulk_update(list(segment_rows.values()), ["size"])
            run.params = {"based_on_run": current.pk}
            finish_run(run, computed, placement, started)
    return rebuild_result(run, computed, placement, started)
