"""The default Celery beat schedule, installed into django-celery-beat's tables.

Staff change the schedule in the admin ("Periodic tasks"); ``install_schedule`` creates
the defaults and, on a re-run, updates only the rows it owns (matched by name), so it
is safe to run at every deploy. Task names are permanent.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


@dataclass(frozen=True)
class ScheduledJob:
    """One default periodic job: a crontab (minute hour) or an interval in minutes."""

    name: str
    task: str
    description: str
    crontab: tuple[str, str] | None = None  # (minute, hour)
    every_minutes: int | None = None
    queue: str | None = None


DEFAULT_SCHEDULE: tuple[ScheduledJob, ...] = (
    ScheduledJob(
        name="recommender: retrain nightly",
        task="recommendations.retrain_model",
        description="Retrain the behaviour network at 02:30 every night.",
        crontab=("30", "2"),
        queue="training",
    ),
    ScheduledJob(
        name="recommender: rebuild profiles hourly",
        task="recommendations.rebuild_profiles",
        description="Rebuild changed user profiles at minute 10 of every hour.",
        crontab=("10", "*"),
    ),
    ScheduledJob(
        name="recommender: refresh lists every 15 minutes",
        task="recommendations.refresh_recommendations",
        description="Precompute recommendation lists of active users.",
        every_minutes=15,
    ),
    ScheduledJob(
        name="recommender: refresh item relations hourly",
        task="recommendations.refresh_item_relations",
        description="Similar items, bought-together and popularity per category.",
        crontab=("40", "*"),
    ),
    ScheduledJob(
        name="recommender: check alerts hourly",
        task="recommendations.check_alerts",
        description="Alert the admins when no model was promoted for days or a click-through dropped.",
        crontab=("50", "*"),
    ),
    ScheduledJob(
        name="behavior: prune old events daily",
        task="behavior.prune_events",
        description="Delete events, impressions and not-interested marks past their retention at 03:45.",
        crontab=("45", "3"),
    ),
)


@transaction.atomic
def install_schedule(jobs: tuple[ScheduledJob, ...] = DEFAULT_SCHEDULE) -> dict[str, str]:
    """Create or update the default periodic tasks; returns ``{name: "created"|"updated"}``."""
    outcome: dict[str, str] = {}
    for job in jobs:
        schedule_fields: dict[str, object] = {"crontab": None, "interval": None}
        if job.crontab is not None:
            minute, hour = job.crontab
            schedule_fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
                minute=minute,
                hour=hour,
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone="UTC",
            )
        else:
            schedule_fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=job.every_minutes, period=IntervalSchedule.MINUTES
            )
        _, created = PeriodicTask.objects.update_or_create(
            name=job.name,
            defaults={
                "task": job.task,
                "description": job.description,
                "queue": job.queue,
                **schedule_fields,
            },
        )
        outcome[job.name] = "created" if created else "updated"
    return outcome


# A crontab fires at most once a minute: two beats that send the same crontab entry do so
# within seconds of each other, so one minute separates one period's duplicates from the next.
CRONTAB_GUARD_SECONDS = 60.0


def schedule_guard_seconds(periodic_task_name: str | None) -> float | None:
    """Seconds within which a second delivery of this periodic task is the same period's run.

    django-celery-beat names the periodic task in each message it sends (the
    ``periodic_task_name`` header). Half the interval for an interval schedule, a minute for
    any other schedule; None for a task that beat did not send (a manual or admin run) or
    whose periodic task no longer exists.
    """
    if not periodic_task_name:
        return None
    task = (
        PeriodicTask.objects.filter(name=periodic_task_name)
        .select_related("interval")
        .only("interval")
        .first()
    )
    if task is None:
        return None
    if task.interval is not None:
        return task.interval.schedule.run_every.total_seconds() / 2
    return CRONTAB_GUARD_SECONDS
