"""CSV export of profiles: user_id, segment, tags, propensity."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

from django.contrib.auth import get_user_model

from recommendations.models import UserProfile

HEADER = ["user_id", "segment", "tags", "propensity"]


def export_profiles(out: IO[str], *, user_ids: Iterable[Any] | None = None, chunk_size: int = 5000) -> int:
    """Write the profiles as CSV to ``out`` (user_id = username, tags joined by "|"); returns rows."""
    username = f"user__{get_user_model().USERNAME_FIELD}"
    queryset = UserProfile.objects.order_by("pk")
    if user_ids is not None:
        queryset = queryset.filter(pk__in=list(user_ids))
    rows = queryset.values_list(username, "segment__name", "tags", "propensity").iterator(
        chunk_size=chunk_size
    )
    writer = csv.writer(out)
    writer.writerow(HEADER)
    count = 0
    for name, segment, tags, propensity in rows:
        labels = "|".join(tag["label"] for tag in tags or [])
        writer.writerow([name, segment or "", labels, "" if propensity is None else f"{propensity:.4f}"])
        count += 1
    return count
