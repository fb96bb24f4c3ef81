"""The default Celery beat schedule, installed into django-celery-beat's tables.

Staff change the schedule in the admin ("Periodic tasks"). ``install_schedule`` runs at every
deploy (the Docker entrypoint's web role) and only creates the default jobs that are missing:
a job that exists (by its name, or any periodic task of the same Celery task, in case staff
renamed it) is kept as it is, with its interval or crontab, queue, arguments and enabled flag.
``--reset`` (``reset=True``) puts the default jobs back as shipped. Task names are permanent.
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
        name="behavior: create partitions daily",
        task="behavior.maintain_partitions",
        description="PostgreSQL: create event and impression partitions ahead and move rows out of "
        "the default partitions at 03:15.",
        crontab=("15", "3"),
    ),
    ScheduledJob(
        name="recommender: check experiments hourly",
        task="recommendations.check_experiments",
        description="Stop experiment arms whose conversion is significantly worse; keep ended results.",
        crontab=("55", "*"),
    ),
    ScheduledJob(
        name="recommender: score shadow jobs every minute",
        task="recommendations.score_shadow_batch",
        description="Score the live requests sampled for shadow runs that are still queued.",
        every_minutes=1,
    ),
    ScheduledJob(
        name="behavior: prune old events daily",
        task="behavior.prune_events",
        description="Delete events, impressions and not-interested marks past their retention at 03:45.",
        crontab=("45", "3"),
    ),
)


def _schedule_fields(job: ScheduledJob) -> dict[str, object]:
    """The crontab or interval row of ``job`` (shared rows, created when missing)."""
    if job.crontab is not None:
        minute, hour = job.crontab
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone="UTC",
        )
        return {"crontab": crontab, "interval": None}
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=job.every_minutes, period=IntervalSchedule.MINUTES
    )
    return {"crontab": None, "interval": interval}


# Fields of a periodic task that are bookkeeping, not configuration: ``--reset`` leaves them.
_BOOKKEEPING_FIELDS = frozenset({"id", "name", "last_run_at", "total_run_count", "date_changed"})


def _shipped_fields(job: ScheduledJob) -> dict[str, object]:
    """Every configurable field of ``job``'s periodic task as shipped (what ``--reset`` writes).

    Fields the job does not name take the model's defaults (no arguments, headers, priority,
    expiry, start time or solar/clocked schedule; enabled), so a reset undoes every admin edit.
    """
    fields: dict[str, object] = {
        field.name: field.get_default()
        for field in PeriodicTask._meta.concrete_fields
        if field.name not in _BOOKKEEPING_FIELDS
    }
    fields.update(task=job.task, description=job.description, queue=job.queue, **_schedule_fields(job))
    return fields


@transaction.atomic
def install_schedule(
    jobs: tuple[ScheduledJob, ...] = DEFAULT_SCHEDULE, *, reset: bool = False
) -> dict[str, str]:
    """Create the default periodic tasks that are missing; keep the others as staff left them.

    Returns ``{job name: outcome}``: ``"created"``, ``"kept"`` (a task of that name exists),
    ``"kept as <name>"`` (a periodic task of another name runs the same Celery task) or, with
    ``reset``, ``"reset"`` (the job's task of that name was written back as shipped; other
    periodic tasks of the same Celery task are left alone).
    """
    outcome: dict[str, str] = {}
    for job in jobs:
        existing = PeriodicTask.objects.filter(name=job.name).first()
        if reset:
            if existing is None:
                PeriodicTask.objects.create(name=job.name, **_shipped_fields(job))
                outcome[job.name] = "created"
            else:
                for field, value in _shipped_fields(job).items():
                    setattr(existing, field, value)
                existing.save()
                outcome[job.name] = "reset"
            continue
        if existing is not None:
            outcome[job.name] = "kept"
            continue
        renamed = PeriodicTask.objects.filter(task=job.task).order_by("pk").first()
        if renamed is not None:
            outcome[job.name] = f"kept as {renamed.name}"
            continue
        PeriodicTask.objects.create(name=job.name, **_shipped_fields(job))
        outcome[job.name] = "created"
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
