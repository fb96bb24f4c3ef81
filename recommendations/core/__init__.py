"""Django-free machine-learning core: event logs, the behaviour network, candidates, metrics, artefacts.

Import from the submodules (``recommendations.core.recommender`` etc.); the names below are re-exported
for convenience. Nothing in this package imports Django.
"""

from recommendations.core.artifacts import ArtifactError
from recommendations.core.base import BaseRecommender, NotFittedError
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import EVENT_TYPES, EventLog, History
from recommendations.core.evaluation import ProtocolSplit, evaluate, holdout_last_events, protocol_split
from recommendations.core.recommender import BehaviorRecommender

__all__ = [
    "EVENT_TYPES",
    "ArtifactError",
    "BaseRecommender",
    "BehaviorRecommender",
    "EventLog",
    "History",
    "NetworkConfig",
    "NotFittedError",
    "ProtocolSplit",
    "evaluate",
    "holdout_last_events",
    "protocol_split",
]
