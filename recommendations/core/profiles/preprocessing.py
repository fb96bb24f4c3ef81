"""Missing-value filling and scaling of profile features, with the choices recorded.

Counts, money and durations are heavy-tailed (a few users with thousands of events), so
they are ``log1p``-transformed and scaled robustly (median / inter-quartile range, which a
handful of bots cannot move). Rates, shares, propensity and embedding components are
bounded, so a plain StandardScaler suits them. Missing values take the column median of
the population the scaler was fitted on. ``to_dict``/``from_dict`` persist every learned
number as JSON so an incremental rebuild scales new users exactly like the full run.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

# Column names (or prefixes) treated as heavy-tailed: log1p + robust scaling.
HEAVY_TAILED = frozenset(
    {
        "recency_days",
        "purchase_recency_days",
        "tenure_days",
        "frequency",
        "monetary",
        "avg_order_value",
        "events",
        "views",
        "carts",
        "purchases",
        "sessions",
        "events_per_session",
        "peak_events_per_minute",
        "active_days",
        "price_level",
    }
)


class FeatureScaler:
    """Median fill, then log1p + RobustScaler (heavy-tailed) or StandardScaler (bounded)."""

    def __init__(self) -> None:
        self.columns_: list[str] = []
        self.medians_: np.ndarray = np.zeros(0)
        self.log_: np.ndarray = np.zeros(0, dtype=bool)
        self.center_: np.ndarray = np.zeros(0)
        self.scale_: np.ndarray = np.zeros(0)

    def fit(self, values: np.ndarray, columns: Sequence[str]) -> FeatureScaler:
        """Learn medians, transforms and scales from ``values`` (n_users, n_columns), NaN = missing."""
        values = np.asarray(values, dtype=np.float64)
        self.columns_ = list(columns)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has median 0 below
            medians = np.nanmedian(values, axis=0) if len(values) else np.zeros(values.shape[1])
        self.medians_ = np.nan_to_num(medians, nan=0.0)
        self.log_ = np.array([name in HEAVY_TAILED for name in self.columns_], dtype=bool)
        transformed = self._transform_raw(self.fill(values))
        center = np.zeros(len(self.columns_))
        scale = np.ones(len(self.columns_))
        for j in range(len(self.columns_)):
            column = transformed[:, j]
            if not len(column):
                continue
            if self.log_[j]:
                q25, q50, q75 = np.percentile(column, [25, 50, 75])
                center[j] = q50
                spread = q75 - q25
                # A column whose middle half is constant (e.g. purchases: mostly 0) falls back to
                # the standard deviation so its rare non-zero values are not blown up.
                scale[j] = spread if spread > 1e-9 else (column.std() or 1.0)
            else:
                center[j] = column.mean()
                scale[j] = column.std() or 1.0
        self.center_, self.scale_ = center, scale
        return self

    def fill(self, values: np.ndarray) -> np.ndarray:
        """Replace NaN by the fitted column medians."""
        values = np.array(values, dtype=np.float64, copy=True)
        missing = np.isnan(values)
        if missing.any():
            values[missing] = np.take(self.medians_, np.nonzero(missing)[1])
        return values

    def _transform_raw(self, filled: np.ndarray) -> np.ndarray:
        result = filled.copy()
        if self.log_.any():
            result[:, self.log_] = np.log1p(np.maximum(result[:, self.log_], 0.0))
        return result

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Fill, transform and scale ``values``; columns must follow ``columns_``."""
        scaled: np.ndarray = (self._transform_raw(self.fill(values)) - self.center_) / self.scale_
        return scaled

    def fit_transform(self, values: np.ndarray, columns: Sequence[str]) -> np.ndarray:
        return self.fit(values, columns).transform(values)

    def choices(self) -> dict[str, str]:
        """Human-readable record of what was done to each column."""
        return {
            name: (
                "median fill, log1p, robust scaling (median/IQR)" if log else "median fill, standard scaling"
            )
            for name, log in zip(self.columns_, self.log_, strict=True)
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns_,
            "medians": [float(x) for x in self.medians_],
            "log1p": [bool(x) for x in self.log_],
            "center": [float(x) for x in self.center_],
            "scale": [float(x) for x in self.scale_],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureScaler:
        scaler = cls()
        scaler.columns_ = list(data["columns"])
        scaler.medians_ = np.asarray(data["medians"], dtype=np.float64)
        scaler.log_ = np.asarray(data["log1p"], dtype=bool)
        scaler.center_ = np.asarray(data["center"], dtype=np.float64)
        scaler.scale_ = np.asarray(data["scale"], dtype=np.float64)
        return scaler
