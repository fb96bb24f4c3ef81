import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from recommendations.runtime.schedule import DEFAULT_SCHEDULE, install_schedule

RETRAIN = "recommender: retrain nightly"
REFRESH = "recommender: refresh lists every 15 minutes"


@pytest.mark.django_db
def test_install_schedule_creates_every_default_job_once():
    # when the schedule is installed twice
    first = install_schedule()
    second = install_schedule()
    # then each job exists once with its permanent task name, and the second run kept them
    assert set(first.values()) == {"created"}
    assert set(second.values()) == {"kept"}
    tasks = dict(PeriodicTask.objects.values_list("name", "task"))
    assert tasks == {job.name: job.task for job in DEFAULT_SCHEDULE}
    retrain = PeriodicTask.objects.get(name=RETRAIN)
    assert (retrain.crontab.minute, retrain.crontab.hour, retrain.queue) == ("30", "2", "training")
    assert retrain.enabled is True


def _staff_edits() -> None:
    """What staff do in the admin: a new crontab and queue for training, refresh hourly and off."""
    retrain = PeriodicTask.objects.get(name=RETRAIN)
    retrain.crontab = CrontabSchedule.objects.create(minute="0", hour="4", timezone="UTC")
    retrain.queue = "gpu"
    retrain.save()
    refresh = PeriodicTask.objects.get(name=REFRESH)
    refresh.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    refresh.enabled = False
    refresh.kwargs = '{"lists_only": true}'
    refresh.save()


@pytest.mark.django_db
def test_reinstalling_keeps_what_staff_changed_in_the_admin(capsys):
    # given the installed schedule, edited by staff
    install_schedule()
    _staff_edits()

    # when the deploy step runs again (the Docker entrypoint runs it at every start)
    call_command("install_schedule")

    # then every edit is kept and nothing was added
    retrain = PeriodicTask.objects.get(name=RETRAIN)
    assert (retrain.crontab.minute, retrain.crontab.hour, retrain.queue) == ("0", "4", "gpu")
    refresh = PeriodicTask.objects.get(name=REFRESH)
    assert (refresh.interval.every, refresh.interval.period) == (1, IntervalSchedule.HOURS)
    assert refresh.enabled is False
    assert refresh.kwargs == '{"lists_only": true}'
    assert PeriodicTask.objects.count() == len(DEFAULT_SCHEDULE)
    assert capsys.readouterr().out.count("kept") == len(DEFAULT_SCHEDULE)


@pytest.mark.django_db
def test_a_deleted_job_comes_back_and_a_renamed_one_is_not_duplicated():
    # given staff deleted the prune job and renamed the retrain job
    install_schedule()
    PeriodicTask.objects.filter(task="behavior.prune_events").delete()
    PeriodicTask.objects.filter(name=RETRAIN).update(name="training at night")

    # when the schedule is installed again
    outcome = install_schedule()

    # then only the missing job is created; the renamed one is recognised by its task
    assert outcome["behavior: prune old events daily"] == "created"
    assert outcome[RETRAIN] == "kept as training at night"
    assert PeriodicTask.objects.filter(task="recommendations.retrain_model").count() == 1
    assert PeriodicTask.objects.count() == len(DEFAULT_SCHEDULE)


@pytest.mark.django_db
def test_reset_writes_the_defaults_back(capsys):
    # given an edited schedule, one job with a broken task name
    install_schedule()
    _staff_edits()
    PeriodicTask.objects.filter(name=RETRAIN).update(task="wrong")

    # when staff ask for the defaults
    call_command("install_schedule", "--reset")

    # then every default job is as shipped again
    retrain = PeriodicTask.objects.get(name=RETRAIN)
    assert retrain.task == "recommendations.retrain_model"
    assert (retrain.crontab.minute, retrain.crontab.hour, retrain.queue) == ("30", "2", "training")
    refresh = PeriodicTask.objects.get(name=REFRESH)
    assert (refresh.interval.every, refresh.interval.period) == (15, IntervalSchedule.MINUTES)
    assert refresh.crontab is None
    assert refresh.enabled is True
    assert refresh.kwargs == "{}"
    assert capsys.readouterr().out.count("reset") == len(DEFAULT_SCHEDULE)


@pytest.mark.django_db
def test_schedule_guard_is_half_an_interval_a_minute_for_crontabs_and_none_otherwise():
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
