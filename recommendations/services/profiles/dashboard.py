"""Figures of the admin dashboard: a handful of aggregate queries, no per-row work."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext, pgettext

from behavior.models import Event, EventType
from recommendations.models import Impression, ModelVersion, Segment
from recommendations.services.profiles.explanations import segment_title

DASHBOARD_DAYS = 30


def events_per_day(days: int = DASHBOARD_DAYS) -> tuple[list[str], dict[str, list[float]]]:
    """``(dates, {event type's name in the active language: counts per date})`` for the last ``days`` days."""
    # The wall clock, not the data clock: the chart shows what the shop is doing these calendar
    # days (an imported history shows in the models and profiles trained on it, not here).
    today = timezone.localdate()
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    start = timezone.now() - timedelta(days=days)
    rows = (
        Event.objects.filter(occurred_at__gte=start)
        .order_by()
        .annotate(day=TruncDate("occurred_at"))
        .values("day", "event_type")
        .annotate(n=Count("pk"))
    )
    index = {day: i for i, day in enumerate(dates)}
    series: dict[str, list[float]] = {}
    for row in rows:
        if row["day"] in index:
            series.setdefault(row["event_type"], [0.0] * days)[index[row["day"]]] = float(row["n"])
    names = {t.value: str(t.label) for t in EventType}
    return [d.isoformat() for d in dates], {names[t]: series[t] for t in names if t in series}


def placement_performance(days: int = DASHBOARD_DAYS) -> list[dict[str, Any]]:
    """Impressions, clicks, purchases, CTR and conversion per (placement, model version)."""
    start = timezone.now() - timedelta(days=days)  # live traffic: the wall clock
    impressions = {
        (row["placement"], row["model_version"]): row["n"]
        for row in Impression.objects.filter(created_at__gte=start)
        .order_by()
        .values("placement", "model_version")
        .annotate(n=Count("pk"))
    }
    version = Impression.objects.filter(recommendation_id=OuterRef("recommendation_id")).values(
        "model_version"
    )[:1]
    outcomes = (
        Event.objects.filter(recommendation_id__isnull=False, occurred_at__gte=start)
        .order_by()
        .annotate(model_version=Subquery(version))
        .values("placement", "model_version")
        .annotate(
            clicks=Count("pk", filter=Q(event_type="click")),
            purchases=Count("pk", filter=Q(event_type="purchase")),
        )
    )
    by_key = {(row["placement"], row["model_version"]): row for row in outcomes}
    rows = []
    for key in sorted(set(impressions) | set(by_key), key=lambda k: (k[0] or "", k[1] or 0)):
        shown = impressions.get(key, 0)
        outcome = by_key.get(key)
        clicks = outcome["clicks"] if outcome else 0
        purchases = outcome["purchases"] if outcome else 0
        rows.append(
            {
                "placement": key[0] or pgettext("placement", "default"),
                "model_version": key[1],
                "impressions": shown,
                "clicks": clicks,
                "purchases": purchases,
                "ctr": clicks / shown if shown else None,
                "conversion": purchases / shown if shown else None,
            }
        )
    return rows


def segment_sizes() -> dict[str, float]:
    """``{"<number>: <name in the active language>": members}`` of the current segments."""
    segments = Segment.objects.order_by("number").values_list("number", "traits", "name", "size")
    return {segment_title(number, traits, name): float(size) for number, traits, name, size in segments}


def model_metrics() -> tuple[list[str], dict[str, list[float]], dict[str, list[float]]]:
    """``(version labels, {rate metric: percents}, {count metric: values})`` of every model version.

    Rates (every value between 0 and 1, e.g. NDCG@10) and counts (e.g. the users evaluated) are
    apart: on one axis the counts flatten the rates into a line at zero.
    """
    versions = list(ModelVersion.objects.order_by("number").values_list("number", "metrics"))
    values: dict[str, list[float]] = {}
    for index, (_, metrics) in enumerate(versions):
        for name, value in (metrics or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                values.setdefault(name, [0.0] * len(versions))[index] = float(value)
    labels = [f"v{number}" for number, _ in versions]
    rates = {
        name: [round(100 * v, 2) for v in series]
        for name, series in sorted(values.items())
        if all(0.0 <= v <= 1.0 for v in series)
    }
    counts = {name: series for name, series in sorted(values.items()) if name not in rates}
    return labels, rates, counts


def placement_label(placement: str, model_version: int | None) -> str:
    """A chart's label of one (placement, model version) row, in words."""
    if model_version is None:
        return gettext("%(placement)s, no model (fallback lists)") % {"placement": placement}
    return gettext("%(placement)s, model v%(version)s") % {"placement": placement, "version": model_version}
