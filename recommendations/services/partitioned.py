"""The recommender's tables that PostgreSQL partitions by time (migration 0007): impressions.

Registered with ``behavior.services.partitions`` so that ``behavior.maintain_partitions``
keeps their partitions ahead and moves rows out of their DEFAULT partition; their retention
(``services.retention``) drops whole partitions.
"""

from __future__ import annotations

from behavior.services import partitions
from recommendations.models import Impression

__all__ = ["IMPRESSIONS"]

IMPRESSIONS = partitions.register(Impression, "created_at", "impressions")
