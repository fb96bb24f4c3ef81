import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from recommendations.scheduling import DEFAULT_SCHEDULE, install_schedule


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
