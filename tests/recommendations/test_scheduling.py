import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from recommendations.runtime.schedule import DEFAULT_SCHEDULE, install_schedule


@pytest.mark.django_db
def test_install_schedule_creates_every_default_job_once():
    # when the schedule is installed twice
    first = install_schedule()
    second = install_schedule()
    # then each job exists once with its permanent task name
    assert set(first.values()) == {"created"}
    assert set(second.values()) == {"updated"}
    tasks = dict(PeriodicTask.objects.values_list("name", "task"))
    assert tasks == {job.name: job.task for job in DEFAULT_SCHEDULE}


@pytest.mark.django_db
def test_install_schedule_restores_a_changed_task_but_keeps_staff_enabled_flag(capsys):
    # given staff disabled a job and someone broke its task name
    install_schedule()
    job = PeriodicTask.objects.get(name="recommender: retrain nightly")
    PeriodicTask.objects.filter(pk=job.pk).update(enabled=False, task="wrong")
    # when the command runs again
    call_command("install_schedule")
    # then the task name is restored, the staff's choice to disable it is kept
    job.refresh_from_db()
    assert job.task == "recommendations.retrain_model"
    assert job.enabled is False
    assert job.crontab.minute == "30" and job.crontab.hour == "2"
    assert job.queue == "training"
    assert "updated" in capsys.readouterr().out


@pytest.mark.django_db
def test_schedule_guard_is_half_an_interval_a_minute_for_crontabs_and_none_otherwise():
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    from recommendations.runtime.schedule import CRONTAB_GUARD_SECONDS, schedule_guard_seconds

    # given one interval task (every 15 minutes) and one crontab task
    every = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(name="every 15", task="recommendations.retrain_model", interval=every)
    nightly = CrontabSchedule.objects.create(minute="30", hour="2")
    PeriodicTask.objects.create(name="nightly", task="recommendations.retrain_model", crontab=nightly)

    # then a second delivery within half the interval (or a minute) is the same period's
    assert schedule_guard_seconds("every 15") == 450.0
    assert schedule_guard_seconds("nightly") == CRONTAB_GUARD_SECONDS == 60.0
    # and a run that beat did not send, or whose task was deleted, has no guard
    assert schedule_guard_seconds(None) is None
    assert schedule_guard_seconds("") is None
    assert schedule_guard_seconds("deleted") is None
