"""CSV export of profiles: codes for programs, words in the exporter's language for people.

Language: ``segment_number`` and ``tags`` are language-neutral (the segment's number in its run,
the tags' stored keys such as ``high_value`` or ``fan_of:Books``, the values the admin's tag
filter takes), so a program reading the file never depends on who exported it. ``segment``
and ``tag_labels`` are rendered in the active language: the staff member's in the admin's
export action, ``LANGUAGE_CODE`` (English by default) for ``manage.py export_profiles``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from recommendations.models import UserProfile
from recommendations.services.profiles.explanations import segment_name
from recommendations.services.profiles.texts import render_tags


class Writable(Protocol):
    """Where the CSV goes: a text file, a management command's stdout, an HTTP response."""

    def write(self, text: str, /) -> Any: ...


HEADER = ["user_id", "segment_number", "segment", "tags", "tag_labels", "propensity"]


def export_profiles(
    out: Writable,
    *,
    user_ids: Iterable[Any] | None = None,
    queryset: QuerySet[UserProfile] | None = None,
    chunk_size: int = 5000,
) -> int:
    """Write the profiles (all, ``user_ids`` or ``queryset``) as CSV to ``out``; returns the rows.

    ``user_id`` is the username; tags are joined by ``"|"``.
    """
    username = f"user__{get_user_model().USERNAME_FIELD}"
    profiles = (queryset if queryset is not None else UserProfile.objects.all()).select_related(None)
    profiles = profiles.order_by("pk")
    if user_ids is not None:
        profiles = profiles.filter(pk__in=list(user_ids))
    rows = profiles.values_list(
        username, "segment__number", "segment__name", "segment__traits", "tags", "propensity"
    ).iterator(chunk_size=chunk_size)
    writer = csv.writer(out)
    writer.writerow(HEADER)
    count = 0
    for name, number, stored_name, traits, tags, propensity in rows:
        rendered = render_tags(tags)
        writer.writerow(
            [
                name,
                "" if number is None else number,
                "" if number is None else segment_name(traits, stored_name or ""),
                "|".join(tag["key"] for tag in rendered),
                "|".join(tag["label"] for tag in rendered),
                "" if propensity is None else f"{propensity:.4f}",
            ]
        )
        count += 1
    return count
