"""Alerts: mail to the site's ``ADMINS`` and the ``alert_raised`` signal a shop can hook.

Raised when

- a training fails (its run ends ``failed``, or ``abandoned`` when its worker died): at once,
  from the run's save, whoever started it (schedule, admin, command);
- no model version was promoted for ``ALERT_NO_PROMOTION_DAYS`` days (counted from the last
  promotion, else from the first training run): by ``recommendations.check_alerts``, hourly;
- a placement's click-through rate over the last ``ALERT_CTR_WINDOW_HOURS`` fell below
  ``(1 - ALERT_CTR_DROP)`` times its rate over the ``ALERT_CTR_BASELINE_DAYS`` days before,
  both periods having at least ``ALERT_CTR_MIN_IMPRESSIONS`` impressions: by the same task.

The same alert (kind and subject) is sent at most once per ``ALERT_REPEAT_HOURS`` (remembered
in the cache; while the cache is down an alert may repeat, never be swallowed). Receivers
get ``kind``, ``subject``, ``message`` and ``details`` (a dict); a receiver's error is logged.
Wall-clock windows: alerts are about live traffic and live jobs.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.core.mail import mail_admins
from django.db.models import Count, Min, Q
from django.dispatch import Signal
from django.utils import timezone

from recommendations.conf import recommender_settings

logger = logging.getLogger(__name__)

__all__ = ["alert_raised", "check_alerts", "raise_alert"]

# kwargs: kind ("training_failed", "no_promotion", "ctr_drop"), subject, message, details
alert_raised = Signal()


def raise_alert(
    kind: str, key: str, subject: str, message: str, details: dict[str, Any] | None = None
) -> bool:
    """Send one alert (mail and signal) unless the same ``kind``/``key`` went out recently; True if sent."""
    try:
        fresh = cache.add(f"rec:alert:{kind}:{key}", 1, int(recommender_settings.ALERT_REPEAT_HOURS * 3600))
    except Exception:  # the cache is down: better twice than never
        fresh = True
    if not fresh:
        return False
    logger.error("ALERT %s: %s", kind, subject)
    for receiver, response in alert_raised.send_robust(
        sender=None, kind=kind, subject=subject, message=message, details=details or {}
    ):
        if isinstance(response, Exception):
            logger.error("Alert receiver %r failed: %s", receiver, response, exc_info=response)
    mail_admins(f"Recommender: {subject}", message, fail_silently=True)
    return True


def on_training_run_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``post_save`` of ``TrainingRun``: a run that ended failed or abandoned raises an alert."""
    from recommendations.models import TrainingRun

    if instance.status not in (TrainingRun.Status.FAILED, TrainingRun.Status.ABANDONED):
        return
    error = (instance.error or "").strip().splitlines()
    raise_alert(
        "training_failed",
        str(instance.pk),
        f"training run {instance.pk} {instance.status}",
        f"Training run {instance.pk} (triggered by {instance.triggered_by or 'unknown'}) ended "
        f"{instance.status}.\n\n{error[-1] if error else 'No error recorded.'}\n\n"
        "The active model keeps serving; see the admin's Training runs.",
        {"run": instance.pk, "status": instance.status, "error": instance.error},
    )


def check_no_promotion(now: Any = None) -> bool:
    """Alert when no version was promoted for ``ALERT_NO_PROMOTION_DAYS`` days; True if it did."""
    from recommendations.models import ModelVersion, TrainingRun

    days = recommender_settings.ALERT_NO_PROMOTION_DAYS
    if days is None:
        return False
    now = now or timezone.now()
    last = ModelVersion.objects.filter(promoted_at__isnull=False).order_by("-promoted_at").first()
    since = (
        last.promoted_at if last is not None else TrainingRun.objects.aggregate(at=Min("started_at"))["at"]
    )
    if since is None or now - since < timedelta(days=days):
        return False
    what = f"model v{last.number} was promoted" if last is not None else "the first training ran"
    return raise_alert(
        "no_promotion",
        "any",
        f"no model promoted for {(now - since).days} days",
        f"No model version was promoted since {since:%Y-%m-%d %H:%M} UTC, when {what}. Trainings "
        "may be failing, not running (beat, the training worker) or not beating the active model.",
        {"since": since.isoformat(), "days": (now - since).days},
    )


def check_ctr_drops(now: Any = None) -> list[str]:
    """Alert for each placement whose recent click-through fell sharply; returns their names."""
    from behavior.models import Event
    from recommendations.models import Impression

    now = now or timezone.now()
    recent_start = now - timedelta(hours=recommender_settings.ALERT_CTR_WINDOW_HOURS)
    baseline_start = recent_start - timedelta(days=recommender_settings.ALERT_CTR_BASELINE_DAYS)
    least = recommender_settings.ALERT_CTR_MIN_IMPRESSIONS
    drop = recommender_settings.ALERT_CTR_DROP

    def per_placement(model: Any, time_field: str, **filters: Any) -> dict[str, tuple[int, int]]:
        rows = (
            model.objects.filter(
                **{f"{time_field}__gte": baseline_start, f"{time_field}__lt": now}, **filters
            )
            .order_by()
            .values("placement")
            .annotate(
                recent=Count("pk", filter=Q(**{f"{time_field}__gte": recent_start})),
                baseline=Count("pk", filter=Q(**{f"{time_field}__lt": recent_start})),
            )
        )
        return {row["placement"] or "default": (row["recent"], row["baseline"]) for row in rows}

    shown = per_placement(Impression, "created_at")
    clicked = per_placement(Event, "occurred_at", event_type="click", recommendation_id__isnull=False)
    alerted = []
    for placement, (recent_shown, baseline_shown) in sorted(shown.items()):
        if recent_shown < least or baseline_shown < least:
            continue
        recent_clicks, baseline_clicks = clicked.get(placement, (0, 0))
        before, after = baseline_clicks / baseline_shown, recent_clicks / recent_shown
        if before > 0 and after < before * (1 - drop):
            sent = raise_alert(
                "ctr_drop",
                placement,
                f"click-through of {placement!r} fell from {before:.1%} to {after:.1%}",
                f"Placement {placement!r}: {recent_clicks} clicks on {recent_shown} lists in the last "
                f"{recommender_settings.ALERT_CTR_WINDOW_HOURS} h ({after:.2%}) against "
                f"{baseline_clicks} on {baseline_shown} in the "
                f"{recommender_settings.ALERT_CTR_BASELINE_DAYS} days before ({before:.2%}).",
                {"placement": placement, "recent_ctr": after, "baseline_ctr": before},
            )
            if sent:
                alerted.append(placement)
    return alerted


def check_alerts(now: Any = None) -> dict[str, Any]:
    """The periodic checks (``recommendations.check_alerts``): what was raised."""
    return {"no_promotion": check_no_promotion(now), "ctr_drop": check_ctr_drops(now)}


def connect() -> None:
    """Connect the training-run receiver (called by ``RecommendationsConfig.ready``)."""
    from django.db.models.signals import post_save

    from recommendations.models import TrainingRun

    post_save.connect(
        on_training_run_saved, sender=TrainingRun, dispatch_uid="recommendations.alerts.training"
    )
