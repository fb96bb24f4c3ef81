"""``nn.Module``s that define scoring and loss only (training lives in ``recommendations.core.trainer``)."""

from recommendations.core.models.behavior_network import BehaviorNetwork

__all__ = ["BehaviorNetwork"]
