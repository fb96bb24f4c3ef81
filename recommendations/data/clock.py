"""The data clock: the instant every data window counts back from.

Training, profiles (recency, tenure, churn, the propensity "now"), the active users of the
precompute, popularity and trending all look at "the last N days". Counted back from the wall
clock, an imported history (a public log of 2017, a shop's export of last year) falls outside
every window: training finds no events, every shopper looks lapsed, every list is empty. They
count back from the data instead: :func:`data_now` is the time of the newest stored (human)
event.

One event stamped in the future (a wrong client clock, a hand-written row) must not move every
window with it, so events later than the wall clock plus ``DATA_CLOCK_SKEW_SECONDS`` are not
looked at: the clock is the newest event at or before that bound. Ignoring them, rather than
capping the clock at the bound, keeps an imported history usable even beside such an event.
With no event at all the clock is the wall clock.

What is genuinely about the present stays on the wall clock, not here: heartbeats, leases and
stale-run detection, ``computed_at``/``created_at``/``updated_at`` markers, impressions, cache
freshness, and the retention of personal data (``behavior.prune_events``: an old event is
deleted by its real age, whatever else the shop has stored).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Max
from django.utils import timezone

from behavior.models import Event
from recommendations.conf import recommender_settings

__all__ = ["clock_bound", "data_now", "newest_event_time"]

# Widths of the time ranges tried, newest first, before the whole table is read. On Postgres the
# events' only time index is a BRIN index (behavior migration 0002), which answers a range but not
# MAX() directly: on a live shop the first range holds the newest event and costs a few block
# ranges, not a scan of the table; an imported older history costs one scan per call, no more than
# the windows it feeds read anyway.
_PROBE_DAYS = (1, 30, 365)


def clock_bound(wall: datetime | None = None) -> datetime:
    """The latest event time the data clock believes: the wall clock plus the allowed skew."""
    wall = wall or timezone.now()
    # the setting is checked at start-up (recommendations.E005): 0 to 10**8 seconds
    return wall + timedelta(seconds=float(recommender_settings.DATA_CLOCK_SKEW_SECONDS))


def newest_event_time(until: datetime) -> datetime | None:
    """The time of the newest human event at or before ``until``; None when there is none."""
    events = Event.objects.filter(is_bot=False, occurred_at__lte=until).order_by()
    for days in (*_PROBE_DAYS, None):
        ranged = events if days is None else events.filter(occurred_at__gt=until - timedelta(days=days))
        newest = ranged.aggregate(newest=Max("occurred_at"))["newest"]
        if newest is not None:
            return newest
    return None


def data_now(wall: datetime | None = None) -> datetime:
    """The data clock: the newest stored event's time, ignoring events past :func:`clock_bound`.

    ``wall`` is the wall clock to use (default ``timezone.now()``; tests pass a fixed one). With
    no event at all the data clock is the wall clock.
    """
    wall = wall or timezone.now()
    newest = newest_event_time(clock_bound(wall))
    return newest if newest is not None else wall
