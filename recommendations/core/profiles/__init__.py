"""User profiles from behaviour: features, scaling, segments, outliers and rule-based tags.

Pure NumPy / scikit-learn; nothing here imports Django. ``recommendations.services.profiles``
reads the database and feeds these functions plain arrays.
"""

from recommendations.core.profiles.features import FeatureTable, ProfileEvents, compute_features
from recommendations.core.profiles.outliers import OutlierModel, detect_outliers
from recommendations.core.profiles.preprocessing import FeatureScaler
from recommendations.core.profiles.segments import SegmentModel, describe_segments, fit_segments
from recommendations.core.profiles.tags import RuleError, evaluate_rules, resolve_thresholds, validate_rule

__all__ = [
    "FeatureScaler",
    "FeatureTable",
    "OutlierModel",
    "ProfileEvents",
    "RuleError",
    "SegmentModel",
    "compute_features",
    "describe_segments",
    "detect_outliers",
    "evaluate_rules",
    "fit_segments",
    "resolve_thresholds",
    "validate_rule",
]
