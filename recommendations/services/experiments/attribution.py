"""What each arm's shoppers did with the lists it served, day by day (the data behind results).

The unit is the assigned shopper (``ExperimentAssignment``). An event counts for a shopper only
when all of these hold, checked against the impression its recommendation id names:

- the impression exists and belongs to this experiment (a made-up id attributes nothing);
- the event's item is one of the items that list showed;
- the event is the assigned shopper's (their user id, or the visitor id the list was shown to);
- the server received it no earlier than the list was served (less ``CLOCK_SLACK``);
- it is not a bot's.

Counting is done in SQL (shoppers and impressions per arm and day); only the attributed events
(clicks, add-to-carts and purchases carrying a recommendation id of the experiment) are read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from behavior.items import item_key_field
from behavior.models import Event

__all__ = ["OUTCOMES", "ArmActivity", "experiment_days", "gather"]

# Event types an experiment attributes, each counted once per shopper (revenue: every purchase).
OUTCOMES = ("click", "add_to_cart", "purchase")
CLOCK_SLACK = timedelta(seconds=60)
MAX_DAYS = 366


@dataclass
class ArmActivity:
    """One arm's shoppers and outcomes by day index (0 = the experiment's first day)."""

    assigned: list[int]
    impressions: list[int]
    clicks: int = 0
    # assignment id -> day of the shopper's first attributed event of each outcome
    first: dict[str, dict[int, int]] = field(default_factory=lambda: {kind: {} for kind in OUTCOMES})
    # assignment id -> [(day, amount)] of attributed purchases
    revenue: dict[int, list[tuple[int, float]]] = field(default_factory=dict)


def experiment_days(experiment: Any, now: datetime | None = None) -> list[date]:
    """The calendar days (active time zone) from the start to the end, or to today while running."""
    now = now or timezone.now()
    if now < experiment.starts_at:
        return []
    last = min(now, experiment.ends_at) if experiment.ends_at is not None else now
    first_day, last_day = timezone.localdate(experiment.starts_at), timezone.localdate(last)
    count = min((last_day - first_day).days + 1, MAX_DAYS)
    return [first_day + timedelta(days=i) for i in range(count)]


def _counted(queryset: Any, stamp: str) -> Any:
    """Rows of (arm id, day of ``stamp`` in the active time zone, count), counted by the database."""
    by_day = queryset.annotate(day=TruncDate(stamp)).values("arm_id", "day").annotate(n=Count("pk"))
    return by_day.values_list("arm_id", "day", "n").order_by()


def _per_day(rows: Any, days: list[date], arms: list[int]) -> dict[int, list[int]]:
    """``{arm id: counts per day}`` from rows of (arm id, day, count); later days go to the last."""
    index = {day: i for i, day in enumerate(days)}
    counts = {arm: [0] * len(days) for arm in arms}
    for arm, day, n in rows:
        if arm in counts and days:
            counts[arm][index.get(day, len(days) - 1 if day > days[-1] else 0)] += n
    return counts


def gather(experiment: Any, days: list[date]) -> dict[int, ArmActivity]:
    """Every arm's activity over ``days`` (see the module's docstring for what counts)."""
    from recommendations.models import ExperimentAssignment, Impression

    arms = list(experiment.arms.order_by("pk").values_list("pk", flat=True))
    assignments = ExperimentAssignment.objects.filter(experiment=experiment)
    assigned = _per_day(_counted(assignments, "assigned_at"), days, arms)
    impressions = Impression.objects.filter(experiment=experiment, created_at__gte=experiment.starts_at)
    if experiment.ends_at is not None:
        impressions = impressions.filter(created_at__lt=experiment.ends_at)
    shown = _per_day(_counted(impressions, "created_at"), days, arms)
    activity = {arm: ArmActivity(assigned[arm], shown[arm]) for arm in arms}
    if days:
        _attribute(experiment, impressions, days, activity)
    return activity


def _attribute(experiment: Any, impressions: Any, days: list[date], activity: dict[int, ArmActivity]) -> None:
    """Add the attributed events to ``activity`` (two queries: the events, then their lists)."""
    from recommendations.models import ExperimentAssignment

    key_field = f"item__{item_key_field()}"
    events = list(
        Event.objects.filter(
            recommendation_id__in=impressions.values("recommendation_id"),
            event_type__in=OUTCOMES,
            is_bot=False,
        )
        .order_by("received_at", "pk")
        .values_list(
            "recommendation_id", key_field, "event_type", "value", "user_id", "visitor_id", "received_at"
        )
    )
    if not events:
        return
    lists = {
        row[0]: row[1:]
        for row in impressions.filter(recommendation_id__in={event[0] for event in events}).values_list(
            "recommendation_id", "assignment_id", "item_keys", "visitor_id", "created_at"
        )
    }
    shoppers = {
        pk: (arm, user, visitor, assigned_at)
        for pk, arm, user, visitor, assigned_at in ExperimentAssignment.objects.filter(
            pk__in={entry[0] for entry in lists.values() if entry[0] is not None}
        ).values_list("pk", "arm_id", "user_id", "visitor_id", "assigned_at")
    }
    index = {day: i for i, day in enumerate(days)}

    def day_of(moment: datetime) -> int:
        return index.get(timezone.localdate(moment), len(days) - 1)

    for recommendation_id, item, event_type, value, user_id, visitor_id, received_at in events:
        entry = lists.get(recommendation_id)
        if entry is None or entry[0] not in shoppers or item is None:
            continue
        assignment_id, item_keys, shown_to, created_at = entry
        arm, assigned_user, assigned_visitor, assigned_at = shoppers[assignment_id]
        same_shopper = (user_id is not None and user_id == assigned_user) or (
            bool(visitor_id) and visitor_id in {shown_to, assigned_visitor}
        )
        if not same_shopper or str(item) not in {str(k) for k in item_keys or ()}:
            continue
        if received_at < created_at - CLOCK_SLACK or arm not in activity:
            continue
        day = max(day_of(received_at), day_of(assigned_at))
        record = activity[arm]
        record.first[event_type].setdefault(assignment_id, day)
        if event_type == "click":
            record.clicks += 1
        elif event_type == "purchase":
            amount = float(value) if isinstance(value, Decimal | int | float) else 0.0
            record.revenue.setdefault(assignment_id, []).append((day, amount))


def revenue_by_day(revenue: dict[int, list[tuple[int, float]]], days: int) -> list[tuple[float, float]]:
    """``[(sum, sum of squares)]`` per day of each shopper's cumulative revenue up to that day."""
    totals = [(0.0, 0.0)] * days
    cumulative: dict[int, list[float]] = defaultdict(lambda: [0.0] * days)
    for shopper, purchases in revenue.items():
        per_day = cumulative[shopper]
        for day, amount in purchases:
            for later in range(day, days):
                per_day[later] += amount
    for per_day in cumulative.values():
        totals = [(s + v, q + v * v) for (s, q), v in zip(totals, per_day, strict=True)]
    return totals
