"""Settings of the demo shop, driven by the environment.

Environment variables (all optional):

- ``DATABASE_URL``: any dj-database-url URL; default: SQLite file ``db.sqlite3`` beside manage.py.
- ``CELERY_BROKER_URL``: e.g. ``redis://127.0.0.1:6379/0``; empty means tasks run eagerly in-process.
- ``CACHE_URL`` or ``REDIS_URL``: a ``redis://`` URL for the cache; default: local memory.
- ``DEBUG``: ``1``/``true`` for the local demo only (``make demo`` sets it); default off.
- ``SECRET_KEY``: required when ``DEBUG`` is off, and refused when weak (fewer than 50
  characters or 5 distinct ones, or Django's ``django-insecure-`` prefix: the criteria of
  ``check --deploy``). With ``DEBUG`` on and no key, the demo makes a random one and keeps
  it in ``.demo-secret-key`` beside manage.py (never a fixed or derivable value).
- ``ALLOWED_HOSTS``: comma separated; default ``127.0.0.1,localhost``.
- ``MEDIA_ROOT``, ``STATIC_ROOT``: folders of stored model files and collected static files;
  default ``media/`` and ``staticfiles/`` beside manage.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean from the environment ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def weak_secret_key(key: str) -> bool:
    """Whether ``key`` fails Django's own test of a secret key (``check --deploy``, security.W009)."""
    return len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-")


def demo_secret_key(path: Path) -> str:
    """The local demo's key: random, made once and kept in ``path`` (readable by its owner only)."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if weak_secret_key(key):
        from django.core.management.utils import get_random_secret_key

        key = get_random_secret_key()
        path.touch(mode=0o600)
        path.write_text(key)
    return key


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
# Without SECRET_KEY this checkout's commands (migrate, import_events, retrain, an evaluation
# harness that runs them) use a random key made once and kept beside manage.py: never a guessable
# fallback. A deployment sets SECRET_KEY (the Docker entrypoint refuses to start without one), and
# a key that is set but weak is refused while DEBUG is off.
if SECRET_KEY and not DEBUG and weak_secret_key(SECRET_KEY):
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak: use at least 50 characters with at least 5 different ones, e.g. "
        "python -c 'from django.core.management.utils import get_random_secret_key as k; print(k())'"
    )
if not SECRET_KEY:
    SECRET_KEY = demo_secret_key(BASE_DIR / ".demo-secret-key")

ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

# HTTPS hardening for deployments behind a TLS-terminating proxy (all off for the local demo).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO", False) else None
)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    # Tokens of server-to-server clients of POST /api/events/ (see behavior.adapter.is_trusted_client).
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    # request ids in every log line, passed on to the Celery tasks a request queues
    "django_guid",
    "shop",
    "behavior",
    "recommendations",
]

MIDDLEWARE = [
    # First: an id per request for the logs (a proxy's valid Correlation-ID header is kept), and
    # the request's latency for /metrics (not installed while RECOMMENDER["METRICS_ENABLED"] is off).
    "django_guid.middleware.guid_middleware",
    "recommendations.ops.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files under gunicorn (the Docker image) without a CDN.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Answers a logged-in shopper's plain GET /api/recommendations/ without the middleware stack
    # when it can do so exactly (RECOMMENDER["FAST_PATH_ENABLED"]); everything else goes on (it
    # must come before the session middleware).
    "recommendations.fastpath.middleware.FastRecommendationsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The reader's language: the language cookie (set by the header's switch) or Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "behavior.middleware.VisitorMiddleware",
]

ROOT_URLCONF = "shop.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.shop",
            ],
        },
    },
]

WSGI_APPLICATION = "shop.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable database host must answer a request with a 503 in seconds (the API's
    # Retry-After), not hang the worker until gunicorn's timeout kills it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "5"))
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded demo database: wait for the writer instead of failing at once, take the
    # write lock at BEGIN (no upgrade deadlocks), and use WAL with NORMAL sync so a page view's
    # event insert does not wait for an fsync per commit (durable enough for a local demo).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_cache_url = os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL")
if _cache_url:
    CACHES = {
        "default": {
            # Django's Redis cache, minus a client object built per operation (shop/cache.py)
            "BACKEND": "shop.cache.RedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "shop"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Sessions read through the cache (Redis in production) and written through to the database:
# the per-request session lookup of the recommendation API stays off the database. The demo's
# engine is Django's cached_db whose reads fall back to the database while Redis is down.
SESSION_ENGINE = "shop.sessions"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
# The message catalogues shipped by the three apps (locale/<language>/LC_MESSAGES/django.po).
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

LOGIN_URL = "shop:login"
LOGIN_REDIRECT_URL = "shop:home"
LOGOUT_REDIRECT_URL = "shop:home"

# --- Django REST framework and the OpenAPI schema --------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # A database outage answers 503 with Retry-After and JSON on every API view.
    "EXCEPTION_HANDLER": "behavior.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "events": os.environ.get("THROTTLE_EVENTS", "6000/min"),
        "recommendations": os.environ.get("THROTTLE_RECOMMENDATIONS", "6000/min"),
        "profiles": os.environ.get("THROTTLE_PROFILES", "60/min"),
        "privacy": os.environ.get("THROTTLE_PRIVACY", "30/min"),
        # attempts at the shop's login form per client address (shop.views.LoginView)
        "login": os.environ.get("THROTTLE_LOGIN", "10/min"),
        "anon": os.environ.get("THROTTLE_ANON", "3000/min"),
        "user": os.environ.get("THROTTLE_USER", "6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Shop recommender API",
    "DESCRIPTION": "Behaviour events in, recommendations and profiles out.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
# No broker configured: run tasks in-process so the embedded demo needs nothing else.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
# A broker outage must never block a web request: fail fast when publishing.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ROUTES = {"recommendations.retrain_model": {"queue": "training"}}

# --- The recommender plugin ---------------------------------------------------------------------
RECOMMENDER_ITEM_MODEL = "shop.Product"
RECOMMENDER: dict[str, object] = {
    "ITEM_KEY_FIELD": "sku",
    "ADAPTER": "shop.recommender_adapter.ShopRecommenderAdapter",
    # the demo serves its shoppers' list requests through the API's fast path (opt-in)
    "FAST_PATH_ENABLED": env_bool("RECOMMENDER_FAST_PATH", True),
}
# `make demo` caps the epochs so that the embedded demo trains in a few minutes on a laptop.
if os.environ.get("RECOMMENDER_EPOCHS"):
    RECOMMENDER["EPOCHS"] = int(os.environ["RECOMMENDER_EPOCHS"])
# Benchmarks that time a retrain on a machine shared with other work run it at normal priority
# ("none"); by default background jobs yield the CPU to web requests (niceness 19).
if os.environ.get("RECOMMENDER_BACKGROUND_NICENESS"):
    _niceness = os.environ["RECOMMENDER_BACKGROUND_NICENESS"]
    RECOMMENDER["BACKGROUND_NICENESS"] = None if _niceness == "none" else int(_niceness)
# bench/fanout.py compares single-threaded processes: the list refresh then scores in its own thread.
if os.environ.get("RECOMMENDER_PRECOMPUTE_THREADS"):
    RECOMMENDER["PRECOMPUTE_THREADS"] = int(os.environ["RECOMMENDER_PRECOMPUTE_THREADS"])

# --- Operations: readiness at /readyz, metrics at /metrics, alerts, request and task ids ---------
# METRICS_ENABLED=1 serves Prometheus metrics (PROMETHEUS_MULTIPROC_DIR under several workers).
RECOMMENDER["METRICS_ENABLED"] = env_bool("METRICS_ENABLED", False)
RECOMMENDER["METRICS_TOKEN"] = os.environ.get("METRICS_TOKEN") or None
# Who gets the alerts (ADMINS="Ops <ops@example.com>, dev@example.com") and from which address.
ADMINS = [
    (address.split("<")[0].strip() or address.strip(), address.split("<")[-1].rstrip("> ").strip())
    for address in os.environ.get("ADMINS", "").split(",")
    if address.strip()
]
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", "recommender@localhost")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))

from django_guid.integrations import CeleryIntegration  # noqa: E402

DJANGO_GUID = {
    # the id stays in the logs: a response header per request would also make the fast path's
    # replayed answers differ from the full stack's (and it is no client's business)
    "RETURN_HEADER": False,
    "INTEGRATIONS": [CeleryIntegration(use_django_logging=True, log_parent=True)],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"ids": {"()": "recommendations.ops.logging.RequestAndTaskIds"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s [req=%(request_id)s task=%(task_id)s] %(name)s: %(message)s"
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["ids"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django_guid says at INFO that each request got a new id: that id is in every line already
    "loggers": {"django.db.backends": {"level": "WARNING"}, "django_guid": {"level": "WARNING"}},
}
