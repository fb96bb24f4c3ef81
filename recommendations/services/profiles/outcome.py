"""What a profile rebuild leaves behind: the profile and tag rows, the finished run, the result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from recommendations.conf import recommender_settings
from recommendations.core.profiles.features import EMBEDDING_PREFIX, note
from recommendations.core.profiles.outliers import outlier_reasons
from recommendations.core.profiles.preprocessing import FeatureScaler
from recommendations.models import Segment
from recommendations.services.profiles.compute import Computed
from recommendations.services.profiles.explanations import encode_outlier_reason
from recommendations.services.profiles.writer import write_profiles


@dataclass
class RebuildResult:
    """What one rebuild did (so far, while its chunks still run on the workers)."""

    run_id: int
    kind: str
    users: int
    segments: int
    outliers: int
    tagged: int
    seconds: float
    propensity_source: str
    notes: list[str] = field(default_factory=list)  # in the active language
    status: str = ""
    chunks_total: int = 0
    chunks_done: int = 0
    #: users of the chunks that failed for good: they kept their previous profiles
    failed_users: int = 0
    #: their primary-key ranges, ``"first..last"`` per failed chunk
    kept: list[str] = field(default_factory=list)


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


def round_figure(value: float) -> float | None:
    """One figure of a report rounded as :func:`round_significant` rounds columns; NaN/inf -> None."""
    rounded = float(round_significant(np.asarray([value], dtype=np.float64))[0])
    return None if math.isnan(rounded) else rounded


@dataclass
class Placement:
    """Where a rebuild placed each user of a batch: segment, outlier flag and tags.

    ``scaled`` holds the scaled features and ``reduced_idx`` the columns outliers are judged
    on; with ``scaler`` they explain each outlier.
    """

    labels: np.ndarray
    is_outlier: np.ndarray
    scaled: np.ndarray
    reduced_idx: list[int]
    scaler: FeatureScaler
    tags: list[list[dict[str, Any]]]


def write_computed(
    computed: Computed,
    placement: Placement,
    segment_rows: dict[int, Segment],
    now_dt: datetime,
) -> None:
    """Upsert the profiles and tags of ``computed`` (inside the caller's transaction, which deleted
    their old tag rows); ``now_dt`` stamps them (the run's start: every chunk stamps the same)."""
    labels, is_outlier, scaled = placement.labels, placement.is_outlier, placement.scaled
    reduced_idx, scaler, tags = placement.reduced_idx, placement.scaler, placement.tags
    table = computed.table
    reasons: dict[int, str] = {}
    flagged = np.flatnonzero(is_outlier)
    if len(flagged):
        explained = outlier_reasons(
            table.values[flagged][:, reduced_idx],
            scaled[flagged][:, reduced_idx],
            [table.columns[j] for j in reduced_idx],
            scaler.medians_[reduced_idx],
        )
        reasons = {int(i): encode_outlier_reason(parts) for i, parts in zip(flagged, explained, strict=True)}
    stored_columns = [(j, c) for j, c in enumerate(table.columns) if not c.startswith(EMBEDDING_PREFIX)]
    names = [c for _, c in stored_columns]
    # Rounded column-wise (5 significant digits, NaN -> None), then one dict per user.
    rounded = round_significant(table.values[:, [j for j, _ in stored_columns]]).tolist()
    recency = table.column("recency_days")
    propensity = round_significant(table.column("propensity")).tolist()
    clock = computed.clock  # the last activity is the data clock minus the recency
    no_events_note = note("not_linked")
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
    # the tables' statistics are refreshed once, when the rebuild closes
    write_profiles(rows, tag_rows, batch_size=int(recommender_settings.PROFILE_BATCH_SIZE), analyze=False)
