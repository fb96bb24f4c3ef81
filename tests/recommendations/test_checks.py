"""System checks: a host's mistakes are named by ``manage.py check``, not found by a 500 later."""

from __future__ import annotations

import pytest
from celery import Celery
from django.core.checks import Error, Warning, run_checks
from rest_framework.settings import api_settings

from recommendations import checks

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}


def _ids(messages) -> list[str]:
    return sorted(message.id for message in messages)


# --- partitions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("PARTITION_INTERVAL", "year", "PARTITION_INTERVAL must be one of month, week, day, not 'year'."),
        ("PARTITIONS_AHEAD", 0, "PARTITIONS_AHEAD must be a whole number from 1 to 1000, not 0."),
        ("EVENT_ID_WINDOW_DAYS", "2", "EVENT_ID_WINDOW_DAYS must be a whole number from 1 to 1000, not '2'."),
    ],
)
def test_a_bad_partition_setting_is_an_error(settings, key, value, expected):
    # given
    settings.RECOMMENDER = {**settings.RECOMMENDER, key: value}
    # when
    errors = [m for m in checks.check_settings() if m.id == "recommendations.E009"]
    # then
    assert [m.msg for m in errors] == [expected]


@pytest.mark.parametrize("interval", ["month", "week", "day"])
def test_every_partition_interval_passes(settings, interval):
    # given
    settings.RECOMMENDER = {**settings.RECOMMENDER, "PARTITION_INTERVAL": interval, "PARTITIONS_AHEAD": 6}
    # when / then
    assert [m for m in checks.check_settings() if m.id == "recommendations.E009"] == []


# --- artefact compression ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["fp16", None, 8])
def test_an_unknown_compression_is_an_error(settings, value):
    # given
    settings.RECOMMENDER = {**settings.RECOMMENDER, "MODEL_COMPRESSION": value}
    # when
    errors = [m for m in checks.check_settings() if m.id == "recommendations.E012"]
    # then
    assert [m.msg for m in errors] == [f"MODEL_COMPRESSION must be one of 'none', 'int8', not {value!r}."]


@pytest.mark.parametrize("value", ["none", "int8"])
def test_every_compression_passes(settings, value):
    settings.RECOMMENDER = {**settings.RECOMMENDER, "MODEL_COMPRESSION": value}
    assert [m for m in checks.check_settings() if m.id == "recommendations.E012"] == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("EXPLORATION_SHARE", 1.5, "EXPLORATION_SHARE must be a number from 0 to 1, not 1.5."),
        ("EXPLORATION_SHARE", "0.1", "EXPLORATION_SHARE must be a number from 0 to 1, not '0.1'."),
        ("EXPLORATION_SLOTS", 1, "EXPLORATION_SLOTS must be a whole number from 2 to 100, not 1."),
    ],
)
def test_exploration_settings_out_of_range_are_errors(settings, key, value, expected):
    settings.RECOMMENDER = {**settings.RECOMMENDER, key: value}
    errors = [m for m in checks.check_settings() if m.id == "recommendations.E011"]
    assert [m.msg for m in errors] == [expected]


def test_a_small_exploration_share_passes(settings):
    settings.RECOMMENDER = {**settings.RECOMMENDER, "EXPLORATION_SHARE": 0.05, "EXPLORATION_SLOTS": 5}
    assert [m for m in checks.check_settings() if m.id == "recommendations.E011"] == []


# --- the training launcher -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("launcher", "expected"),
    [
        (
            "no-such-launcher --nproc-per-node 2",
            "TRAINING_LAUNCHER runs 'no-such-launcher', which is not an executable on PATH.",
        ),
        ("torchrun 'unclosed", 'TRAINING_LAUNCHER must be a command line, not "torchrun \'unclosed".'),
        (["torchrun"], "TRAINING_LAUNCHER must be a command line, not ['torchrun']."),
    ],
)
def test_a_launcher_that_cannot_run_is_an_error(settings, launcher, expected):
    # given
    settings.RECOMMENDER = {**settings.RECOMMENDER, "TRAINING_LAUNCHER": launcher}
    # when
    errors = checks.check_training_launcher()
    # then
    assert [(e.id, e.msg) for e in errors] == [("recommendations.E013", expected)]


@pytest.mark.parametrize("launcher", ["", "sh -c true"])
def test_no_launcher_or_an_executable_on_path_passes(settings, launcher):
    # given
    settings.RECOMMENDER = {**settings.RECOMMENDER, "TRAINING_LAUNCHER": launcher}
    # when / then
    assert checks.check_training_launcher() == []


# --- the item model ------------------------------------------------------------------------------
def test_a_missing_item_model_is_an_error_with_a_hint(settings):
    # given
    del settings.RECOMMENDER_ITEM_MODEL

    # when
    errors = [e for e in checks.check_settings() if e.id == "recommendations.E002"]

    # then
    assert len(errors) == 1
    assert "RECOMMENDER_ITEM_MODEL must be set" in errors[0].msg
    assert "before the first migrate" in errors[0].hint


def test_a_wrong_item_model_is_an_error(settings):
    # given
    settings.RECOMMENDER_ITEM_MODEL = "catalogue.Nope"

    # when
    errors = checks.check_settings()

    # then
    assert _ids(errors) == ["recommendations.E002"]
    assert "'catalogue.Nope' that has not been installed" in errors[0].msg


# --- adapters ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("ADAPTER", "myshop.recs.MyAdapter", "cannot be imported"),
        ("ADAPTER", "shop.models.Product", "must be a subclass of recommendations.adapter"),
        ("TRACKING_ADAPTER", "myshop.tracking.Policy", "cannot be imported"),
        ("TRACKING_ADAPTER", "recommendations.adapter.DefaultRecommenderAdapter", "behavior.adapter"),
    ],
)
def test_an_adapter_that_does_not_import_or_fit_is_an_error(settings, key, value, expected):
    # given the README's example line copied literally (or a class of the wrong kind)
    settings.RECOMMENDER = {**settings.RECOMMENDER, key: value}

    # when
    errors = checks.check_adapters()

    # then
    assert _ids(errors) == ["recommendations.E007"]
    assert expected in errors[0].msg


def test_the_demo_adapter_passes(settings):
    # given the demo's own adapter (a subclass of the default)
    assert settings.RECOMMENDER["ADAPTER"] == "shop.recommender_adapter.ShopRecommenderAdapter"

    # then
    assert checks.check_adapters() == []


# --- throttle rates ------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", ["fast", "10/fortnight", "ten/min", 7])
def test_a_rate_drf_cannot_parse_is_an_error(settings, rate):
    # given
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"events": rate}}

    # when
    errors = checks.check_throttle_rates()

    # then
    assert _ids(errors) == ["recommendations.E008"]
    assert "'events'" in errors[0].msg


def test_missing_or_valid_or_switched_off_rates_pass(settings):
    # given: recommendations unnamed (the plugin's default applies), events off
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"events": None}}
    assert api_settings.DEFAULT_THROTTLE_RATES == {"events": None}
    assert checks.check_throttle_rates() == []

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"events": "100/s"}}
    assert checks.check_throttle_rates() == []


# --- a shared cache ------------------------------------------------------------------------------
def test_a_per_process_cache_in_production_is_an_error(settings):
    # given
    settings.DEBUG = False
    settings.CACHES = LOCMEM

    # when
    messages = run_checks(tags=["caches"])
    deploy = run_checks(tags=["caches"], include_deployment_checks=True)

    # then: a warning that stops no command, and an error under check --deploy
    assert [(m.id, type(m)) for m in messages] == [("recommendations.W020", Warning)]
    errors = [m for m in deploy if m.id == "recommendations.E020"]
    assert len(errors) == 1 and isinstance(errors[0], Error)
    assert "LocMemCache" in errors[0].msg and "RedisCache" in errors[0].hint


def test_the_dummy_cache_is_not_shared_either(settings):
    # given
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

    # then
    assert _ids(checks.check_shared_cache()) == ["recommendations.W020"]
    assert _ids(checks.check_shared_cache_for_deploy()) == ["recommendations.E020"]


def test_a_redis_cache_passes(settings):
    # given
    settings.DEBUG = False
    settings.CACHES = REDIS

    # then
    assert checks.check_shared_cache() == checks.check_shared_cache_for_deploy() == []


# --- Celery --------------------------------------------------------------------------------------
@pytest.fixture
def celery_app(monkeypatch):
    """A host's Celery app, current for the test (the suite's own runs tasks eagerly).

    Celery prefers the ``CELERY_BROKER_URL`` environment variable to any configured broker.
    """
    from celery import current_app

    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    previous = current_app._get_current_object()
    app = Celery("host", set_as_current=False)
    app.conf.broker_url = "redis://127.0.0.1:6379/0"
    app.set_current()
    yield app
    previous.set_current()


def test_the_readme_celery_settings_pass(celery_app):
    # given the settings the README tells a host to add
    celery_app.conf.task_acks_late = True
    celery_app.conf.broker_transport_options = {"visibility_timeout": 4 * 3600}

    # then
    assert checks.check_celery() == []


def test_early_acknowledgement_is_a_warning_naming_the_tasks(celery_app):
    # given Celery's default (acknowledge on receipt); the visibility timeout is fine
    celery_app.conf.broker_transport_options = {"visibility_timeout": 4 * 3600}

    # when
    warnings = checks.check_celery()

    # then: the tasks that set no acks_late of their own are named, the others are not
    assert _ids(warnings) == ["recommendations.W030"]
    assert "recommendations.refresh_recommendations" in warnings[0].msg
    assert "behavior.prune_events" in warnings[0].msg
    assert "recommendations.retrain_model" not in warnings[0].msg


def test_a_visibility_timeout_shorter_than_training_is_a_warning(celery_app, settings):
    # given Redis' default visibility timeout (an hour) and the default training time limit
    celery_app.conf.task_acks_late = True

    # when
    warnings = checks.check_celery()

    # then
    assert _ids(warnings) == ["recommendations.W031"]
    assert "(3600 s)" in warnings[0].msg and "recommendations.retrain_model" in warnings[0].msg
    assert "11100 s" in warnings[0].msg
    assert "'visibility_timeout': 14700" in warnings[0].hint


def test_an_amqp_broker_has_no_visibility_timeout(celery_app):
    # given
    celery_app.conf.broker_url = "amqp://guest@127.0.0.1//"
    celery_app.conf.task_acks_late = True

    # then
    assert checks.check_celery() == []


def test_celery_settings_that_no_app_reads_are_a_warning(settings, monkeypatch):
    # given a broker URL in the settings, no Celery app reading them (Celery's fallback app,
    # which takes its broker from the environment only)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from celery import current_app

    previous = current_app._get_current_object()
    Celery("unconfigured", set_as_current=True)
    try:
        warnings = checks.check_celery()
    finally:
        previous.set_current()

    # then
    assert _ids(warnings) == ["recommendations.W032"]


def test_eager_celery_is_not_checked(settings):
    # given the suite's own Celery app: a broker may be set, tasks run eagerly
    settings.CELERY_TASK_ALWAYS_EAGER = True

    # then
    assert checks.check_celery() == []
