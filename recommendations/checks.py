"""System checks of the plugin's settings: clear messages at start-up instead of exceptions later.

Ids: ``recommendations.E001``-``E010`` the ``RECOMMENDER`` dict and the item model (``E009``
the partitions of events and impressions, ``E011`` exploration for off-policy replay), ``E012``
the artefacts' compression, ``E013`` the training launcher,
``E007`` the adapters, ``E008`` throttle rates, ``E020``/``W020`` a cache that is not shared
across processes, ``W030``-``W032`` the Celery settings the tasks rely on. The README's
"Embedding" section lists what a host must set to pass them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from recommendations.conf import KNOWN_KEYS
from recommendations.core.compression import SCHEMES as COMPRESSION_SCHEMES

EMBEDDING_GUIDE = 'See the README\'s section "Embedding the two apps in another Django shop".'


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Unknown keys in ``RECOMMENDER`` and a missing item model are errors at start-up."""
    errors: list[Error] = []
    user = getattr(settings, "RECOMMENDER", {}) or {}
    if not isinstance(user, dict):
        return [Error("settings.RECOMMENDER must be a dict.", id="recommendations.E001")]
    for key in sorted(set(user) - KNOWN_KEYS):
        errors.append(
            Error(
                f"Unknown RECOMMENDER setting {key!r}.",
                hint="See recommendations/conf.py for the supported keys.",
                id="recommendations.E001",
            )
        )
    niceness = user.get("BACKGROUND_NICENESS", 0)
    if niceness is not None and (
        isinstance(niceness, bool) or not isinstance(niceness, int) or not 0 <= niceness <= 19
    ):
        errors.append(
            Error(
                f"BACKGROUND_NICENESS must be None or an integer from 0 to 19, not {niceness!r}.",
                id="recommendations.E004",
            )
        )
    skew = user.get("DATA_CLOCK_SKEW_SECONDS", 0)
    if isinstance(skew, bool) or not isinstance(skew, int | float) or not 0 <= skew < 10**8:
        errors.append(
            Error(
                f"DATA_CLOCK_SKEW_SECONDS must be a number of seconds from 0 to 10**8, not {skew!r}.",
                id="recommendations.E005",
            )
        )
    errors += _partition_errors(user)
    compression = user.get("MODEL_COMPRESSION", "none")
    if compression not in COMPRESSION_SCHEMES:
        errors.append(
            Error(
                f"MODEL_COMPRESSION must be one of {', '.join(map(repr, COMPRESSION_SCHEMES))}, "
                f"not {compression!r}.",
                hint='docs/configuration.md, "Model artefacts", says what each one stores.',
                id="recommendations.E012",
            )
        )
    errors += _exploration_errors(user)
    from recommendations.conf import network_config

    try:
        network_config()
    except (TypeError, ValueError) as exc:
        errors.append(
            Error(
                f"Invalid behaviour-network setting in RECOMMENDER: {exc}",
                hint="See recommendations.core.config.NetworkConfig for each key's meaning and range.",
                id="recommendations.E006",
            )
        )
    from behavior.items import get_item_model, item_key_field

    try:
        model = get_item_model()
    except ImproperlyConfigured as exc:
        errors.append(
            Error(
                str(exc),
                hint="Name your catalogue's item model, e.g. RECOMMENDER_ITEM_MODEL = 'catalogue.Product', "
                "before the first migrate (like AUTH_USER_MODEL). " + EMBEDDING_GUIDE,
                id="recommendations.E002",
            )
        )
        return errors
    field_name = item_key_field()
    try:
        field = model._meta.get_field(field_name)
    except Exception:  # FieldDoesNotExist
        errors.append(
            Error(
                f"ITEM_KEY_FIELD {field_name!r} is not a field of {model._meta.label}.",
                id="recommendations.E003",
            )
        )
    else:
        if not (getattr(field, "primary_key", False) or getattr(field, "unique", False)):
            errors.append(
                Error(
                    f"ITEM_KEY_FIELD {field_name!r} of {model._meta.label} must be unique.",
                    id="recommendations.E003",
                )
            )
    return errors


# --- partitions and the window of event ids (recommendations.E009) --------------------------------


def _partition_errors(user: dict) -> list[Error]:
    """``PARTITION_INTERVAL`` one of month/week/day; ``PARTITIONS_AHEAD`` and the id window counts."""
    from behavior.services.partitions import INTERVALS

    errors = []
    interval = user.get("PARTITION_INTERVAL", "month")
    if interval not in INTERVALS:
        errors.append(
            Error(
                f"PARTITION_INTERVAL must be one of {', '.join(INTERVALS)}, not {interval!r}.",
                id="recommendations.E009",
            )
        )
    for key, low in (("PARTITIONS_AHEAD", 1), ("EVENT_ID_WINDOW_DAYS", 1)):
        value = user.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1000:
            errors.append(
                Error(
                    f"{key} must be a whole number from {low} to 1000, not {value!r}.",
                    id="recommendations.E009",
                )
            )
    return errors


def _exploration_errors(user: dict) -> list[Error]:
    """``EXPLORATION_SHARE`` a number in [0, 1]; ``EXPLORATION_SLOTS`` a whole number from 2 to 100."""
    errors = []
    share = user.get("EXPLORATION_SHARE", 0.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        errors.append(
            Error(
                f"EXPLORATION_SHARE must be a number from 0 to 1, not {share!r}.",
                id="recommendations.E011",
            )
        )
    slots = user.get("EXPLORATION_SLOTS", 10)
    if isinstance(slots, bool) or not isinstance(slots, int) or not 2 <= slots <= 100:
        errors.append(
            Error(
                f"EXPLORATION_SLOTS must be a whole number from 2 to 100, not {slots!r}.",
                id="recommendations.E011",
            )
        )
    return errors


# --- the training launcher (recommendations.E013) ------------------------------------------------
@register(Tags.compatibility)
def check_training_launcher(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``TRAINING_LAUNCHER`` is empty or a command whose program is an executable on ``PATH``."""
    import shlex
    import shutil

    from recommendations.conf import recommender_settings

    launcher = recommender_settings.TRAINING_LAUNCHER
    hint = 'For example "torchrun --nproc-per-node 2"; empty runs the fit in the retrain task.'
    if launcher in ("", None):
        return []
    try:
        words = shlex.split(launcher) if isinstance(launcher, str) else []
    except ValueError:  # an unclosed quote
        words = []
    if not words:
        return [
            Error(
                f"TRAINING_LAUNCHER must be a command line, not {launcher!r}.",
                hint=hint,
                id="recommendations.E013",
            )
        ]
    if shutil.which(words[0]) is None:
        return [
            Error(
                f"TRAINING_LAUNCHER runs {words[0]!r}, which is not an executable on PATH.",
                hint=hint + " Install torch (it brings torchrun) or give the program's full path.",
                id="recommendations.E013",
            )
        ]
    return []


# --- profiles: tag rules (recommendations.E010) --------------------------------------------------
@register(Tags.compatibility)
def check_tag_rules(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every rule of ``RECOMMENDER["TAG_RULES"]`` must be valid; each bad rule is named."""
    from recommendations.conf import recommender_settings
    from recommendations.services.profiles.tags import rule_errors

    rules = recommender_settings.TAG_RULES
    if rules is None:
        return []
    return [
        Error(
            f"Invalid tag rule {name}: {'; '.join(problems)}.",
            hint="A rule is {label, feature, operator (> >= < <= == !=), threshold or percentile, "
            "weight, description[, and]}; see recommendations/services/profiles/tags.py.",
            id="recommendations.E010",
        )
        for name, problems in rule_errors(rules)
    ]


# --- adapters (recommendations.E007) -------------------------------------------------------------
_ADAPTERS = {
    "ADAPTER": "recommendations.adapter.DefaultRecommenderAdapter",
    "TRACKING_ADAPTER": "behavior.adapter.DefaultTrackingAdapter",
}


def _adapter_error(key: str, value: Any, default_path: str) -> Error | None:
    """Why ``RECOMMENDER[key]`` is not a usable adapter class, or None when it is."""
    from django.utils.module_loading import import_string

    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            return Error(
                f"RECOMMENDER[{key!r}] = {value!r} cannot be imported: {exc}",
                hint=f"Give the dotted path of a subclass of {default_path}, or leave the key out "
                "to use the default.",
                id="recommendations.E007",
            )
    if isinstance(value, type) and issubclass(value, import_string(default_path)):
        return None
    return Error(
        f"RECOMMENDER[{key!r}] must be a subclass of {default_path}, not {value!r}.",
        id="recommendations.E007",
    )


@register(Tags.compatibility)
def check_adapters(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``ADAPTER`` and ``TRACKING_ADAPTER`` must import and subclass the plugin's defaults.

    They are imported lazily on the first request: without this check a wrong path passed
    ``manage.py check`` and then failed every request that served a list or stored an event.
    """
    user = getattr(settings, "RECOMMENDER", {}) or {}
    if not isinstance(user, dict):
        return []  # E001 already says so
    named = {key: path for key, path in _ADAPTERS.items() if user.get(key) is not None}
    found = (_adapter_error(key, user[key], path) for key, path in named.items())
    return [error for error in found if error is not None]


# --- throttle rates (recommendations.E008) -------------------------------------------------------
@register(Tags.compatibility)
def check_throttle_rates(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """A rate the host sets for one of the plugin's throttle scopes must be one DRF can parse.

    A scope the host leaves out uses the plugin's default (``RECOMMENDER["THROTTLE_RATES"]``).
    """
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    from behavior.conf import behavior_settings

    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    errors: list[Error] = []
    defaults = behavior_settings.THROTTLE_RATES or {}
    for scope in defaults:
        rate = rates.get(scope)
        if rate is None:
            continue
        try:
            # parse_rate reads nothing of the instance; __init__ would look the rate up itself.
            parser = object.__new__(SimpleRateThrottle)
            number, duration = parser.parse_rate(rate) if isinstance(rate, str) else (None, None)
            valid = number is not None and number >= 0 and duration is not None
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            valid = False
        if not valid:
            errors.append(
                Error(
                    f"REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'][{scope!r}] = {rate!r} is not a rate.",
                    hint=f"Write requests per period, e.g. {defaults[scope]!r} "
                    "(period s, m, h or d), None for no limit, or leave the scope out for the "
                    "plugin's default.",
                    id="recommendations.E008",
                )
            )
    return errors


# --- a cache shared by every process (recommendations.E020 / W020) ------------------------------
# Backends whose data lives in one process (or nowhere): a list refreshed by a worker, a
# freshness marker raised by one web process or a lease taken by one scheduler are invisible to
# the others, so they would serve stale lists and could run one job twice at once.
PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _process_local_cache() -> str | None:
    """The default cache's backend path when it is not shared across processes, else None."""
    from django.core.cache import caches
    from django.core.cache.backends.dummy import DummyCache
    from django.core.cache.backends.locmem import LocMemCache

    try:
        backend = caches["default"]
    except Exception:  # a broken CACHES setting: Django's own checks report it
        return None
    if isinstance(backend, LocMemCache | DummyCache):
        return f"{type(backend).__module__}.{type(backend).__qualname__}"
    return None


_CACHE_HINT = (
    "Use a cache every web and worker process shares, e.g. CACHES = {'default': {'BACKEND': "
    "'django.core.cache.backends.redis.RedisCache', 'LOCATION': 'redis://127.0.0.1:6379/1'}}. "
    "A deployment that really runs one process only may silence this check."
)


@register(Tags.caches)
def check_shared_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A per-process default cache: a warning (W020) in every check, an error (E020) under --deploy.

    A warning, not an error, outside ``--deploy``: one process on a per-process cache works (a
    local checkout, a script, an evaluation that runs the commands one after another), and an
    error would stop every management command there. A deployment runs ``check --deploy`` (the
    Docker entrypoint does, and refuses to start on an error), where several processes share the
    work and the same cache is an error.
    """
    backend = _process_local_cache()
    if backend is None:
        return []
    return [
        Warning(
            f"The default cache ({backend}) is not shared across processes: with several web or "
            "worker processes they serve stale recommendation lists and locks do not hold "
            "(recommendations.E020 under check --deploy).",
            hint=_CACHE_HINT,
            id="recommendations.W020",
        )
    ]


@register(Tags.caches, deploy=True)
def check_shared_cache_for_deploy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``check --deploy``: a default cache that is not shared across processes is an error (E020)."""
    backend = _process_local_cache()
    if backend is None:
        return []
    return [
        Error(
            f"The default cache ({backend}) is not shared across processes: after a refresh, "
            "web processes serve stale recommendation lists, and locks do not hold across workers.",
            hint=_CACHE_HINT,
            id="recommendations.E020",
        )
    ]


# --- Celery (recommendations.W030-W032) ----------------------------------------------------------
# The plugin's periodic and background tasks; the checks read their limits from Celery itself.
PLUGIN_TASKS = (
    "recommendations.retrain_model",
    "recommendations.rebuild_profiles",
    "recommendations.rebuild_profiles_chunk",
    "recommendations.refresh_recommendations",
    "recommendations.refresh_lists_chunk",
    "recommendations.refresh_item_relations",
    "behavior.prune_events",
)
# Brokers whose unacknowledged messages are redelivered after a visibility timeout.
VISIBILITY_TIMEOUT_SCHEMES = ("redis://", "rediss://", "redis+socket://", "sentinel://", "sqs://")
# Celery's own default visibility timeout of those transports, in seconds.
DEFAULT_VISIBILITY_TIMEOUT = 3600


def _celery_app() -> Any | None:
    """The current Celery app when a broker is configured and tasks are not run eagerly, else None."""
    from celery import current_app

    app = current_app._get_current_object()
    if not app.conf.broker_url or app.conf.task_always_eager:
        return None
    return app


def _longest_task_seconds(app: Any) -> tuple[str, float] | None:
    """The plugin task that may run longest (hard limit, else soft limit) and that limit."""
    conf = app.conf
    longest: tuple[str, float] | None = None
    for name in PLUGIN_TASKS:
        task = app.tasks.get(name)
        if task is None:
            continue
        limit = task.time_limit or conf.task_time_limit or task.soft_time_limit or conf.task_soft_time_limit
        if limit and (longest is None or limit > longest[1]):
            longest = (name, float(limit))
    return longest


@register(Tags.compatibility)
def check_celery(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The Celery settings the plugin's tasks rely on, when Celery is configured with a broker.

    - W030: late acknowledgement, so a task whose worker dies is delivered again (the tasks
      are idempotent and hold locks, so a second delivery is harmless);
    - W031: on Redis (and SQS) a message not acknowledged within the visibility timeout is
      delivered to a second worker, so the timeout must be longer than the longest task;
    - W032: ``CELERY_*`` settings that no Celery app reads.
    """
    app = _celery_app()
    if app is None:
        broker = getattr(settings, "CELERY_BROKER_URL", None)
        if broker and not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
            return [
                Warning(
                    "CELERY_BROKER_URL is set but the current Celery app does not use it, so the "
                    "recommender's tasks would be sent nowhere.",
                    hint="Create the project's Celery app with "
                    "app.config_from_object('django.conf:settings', namespace='CELERY') and import it "
                    "in the project package's __init__.py. " + EMBEDDING_GUIDE,
                    id="recommendations.W032",
                )
            ]
        return []
    # the task modules register the plugin's tasks with every app (Celery's autodiscovery may
    # not have run yet in this process)
    import behavior.tasks  # noqa: F401
    import recommendations.tasks  # noqa: F401

    messages: list[CheckMessage] = []
    early = [name for name in PLUGIN_TASKS if name in app.tasks and not app.tasks[name].acks_late]
    if early:
        messages.append(
            Warning(
                f"Celery acknowledges {', '.join(early)} when it starts: a worker that dies during the "
                "task loses it until its next scheduled run.",
                hint="Set CELERY_TASK_ACKS_LATE = True (and CELERY_TASK_REJECT_ON_WORKER_LOST = True).",
                id="recommendations.W030",
            )
        )
    broker = str(app.conf.broker_url)
    longest = _longest_task_seconds(app)
    if broker.startswith(VISIBILITY_TIMEOUT_SCHEMES) and longest is not None:
        options = app.conf.broker_transport_options or {}
        timeout = options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
        name, seconds = longest
        suggested = {"visibility_timeout": int(seconds) + 3600}
        if not isinstance(timeout, int | float) or timeout <= seconds:
            messages.append(
                Warning(
                    f"The broker's visibility timeout ({timeout!r} s) is not longer than {name}'s "
                    f"time limit ({seconds:.0f} s): a long run is delivered to a second worker "
                    "while the first still works on it.",
                    hint=f"Set CELERY_BROKER_TRANSPORT_OPTIONS = {suggested!r} (seconds), "
                    "or lower RECOMMENDER['TRAIN_TIME_LIMIT'].",
                    id="recommendations.W031",
                )
            )
    return messages
