"""Django-free machine-learning core: event logs, the behaviour network, candidates, metrics, artefacts.

Import from the submodules (``recommendations.core.recommender`` etc.); the names below are re-exported
for convenience. Nothing in this package imports Django.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule, imported on first use: ``recommendations.conf`` reads ``core.config`` at settings
# load, and that must not import torch and NumPy (their thread pools) into every process
_EXPORTS = {
    "ArtifactError": "artifacts",
    "BaseRecommender": "base",
    "NotFittedError": "base",
    "NetworkConfig": "config",
    "EVENT_TYPES": "dataset",
    "EventLog": "dataset",
    "History": "dataset",
    "ProtocolSplit": "evaluation",
    "evaluate": "evaluation",
    "holdout_last_events": "evaluation",
    "protocol_split": "evaluation",
    "BehaviorRecommender": "recommender",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


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
