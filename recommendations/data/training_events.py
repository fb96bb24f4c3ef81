"""The training window streamed from the events table into packed, memory-mapped arrays on disk.

:func:`load_event_log` builds the whole window in memory; :func:`stream_training_events` writes the
same events, chunk by chunk from a server-side cursor ordered by shopper then time, into a folder of
:mod:`recommendations.core.packed_events`. The process holds one chunk of rows and the key tables
(one string per shopper and per item), never the events: a training reads them back through the
operating system's page cache, and a job launched in other processes (``torchrun``) maps the same
folder.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.db.models import Case, CharField, F, Value, When

from recommendations.conf import recommender_settings
from recommendations.core.packed_events import PackedEvents, PackedEventsWriter
from recommendations.data.events import column_chunks, item_key_lookup, username_lookup, window_events

__all__ = ["stream_training_events"]


def stream_training_events(
    directory: str | Path,
    *,
    window_days: int | None = None,
    clock: datetime | None = None,
    chunk_size: int | None = None,
) -> PackedEvents:
    """Write the usable events of the training window into ``directory`` and open it.

    Parameters are those of :func:`recommendations.data.events.load_event_log`. The rows are the
    same (every usable event whose shopper has a user or a visitor id), grouped by shopper, oldest
    first (ties of one instant in primary-key order).

    Returns
    -------
    PackedEvents
        Mapped read-only from ``directory``.
    """
    batch = chunk_size or recommender_settings.DATA_CHUNK_SIZE
    # a shopper is a user, else a visitor: order by the user, then (for anonymous rows only) by the
    # visitor, so that each shopper's rows are contiguous and in time order
    anonymous_visitor = Case(
        When(user__isnull=True, then=F("visitor_id")), default=Value(""), output_field=CharField()
    )
    rows = (
        window_events(window_days=window_days, clock=clock)
        .annotate(anonymous_visitor=anonymous_visitor)
        .order_by(F("user_id").asc(nulls_last=True), "anonymous_visitor", "occurred_at", "pk")
        .values_list(username_lookup(), "visitor_id", item_key_lookup(), "event_type", "occurred_at", "value")
        .iterator(chunk_size=batch)
    )
    writer = PackedEventsWriter(directory)
    for chunk in column_chunks(rows, batch):
        writer.add(*chunk)
    return writer.close()
