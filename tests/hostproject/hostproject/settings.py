"""Settings of a host shop: what ``django-admin startproject`` (Django 5.2) writes, then the
block the README's "Embedding" section tells a shop to add, and nothing else.

The README shows the marked blocks of this file verbatim (``tests/test_hostproject.py`` checks
that they are equal), and the host-project test installs the built wheel and runs this project.
"""

from pathlib import Path

# Build paths inside the project like this: BASE_DIR / 'subdir'.
BASE_DIR = Path(__file__).resolve().parent.parent


# Quick-start development settings - unsuitable for production

# SECURITY WARNING: keep the secret key used in production secret!
SECRET_KEY = "django-insecure-host-project-of-the-plugin-test-not-a-secret-0123456789"

# SECURITY WARNING: don't run with debug turned on in production!
DEBUG = True

ALLOWED_HOSTS = []


# Application definition

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "catalogue",  # the shop's own app with its item model
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hostproject.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "hostproject.wsgi.application"


# Database

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}


# Password validation

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]


# Internationalization

LANGUAGE_CODE = "en-us"

TIME_ZONE = "UTC"

USE_I18N = True

USE_TZ = True


# Static files (CSS, JavaScript, Images)

STATIC_URL = "static/"

# Default primary key field type

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# readme: begin settings
# --- django-behavior-recommender -------------------------------------------------------------
import os

INSTALLED_APPS += ["rest_framework", "django_celery_beat", "behavior", "recommendations"]
# After AuthenticationMiddleware: gives every browser a first-party visitor id.
MIDDLEWARE += ["behavior.middleware.VisitorMiddleware"]

# The item model, set before the first migrate (like AUTH_USER_MODEL), and its public key.
RECOMMENDER_ITEM_MODEL = "catalogue.Product"
RECOMMENDER = {
    "ITEM_KEY_FIELD": "sku",
    # Optional business rules: a subclass of recommendations.adapter.DefaultRecommenderAdapter.
    # "ADAPTER": "catalogue.recommender.ShopAdapter",
}

# A cache every web and worker process shares: lists refreshed by a worker, freshness markers,
# throttles and locks live there (a per-process cache fails `check` with DEBUG off).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1"),
    }
}

# Celery runs training, profile rebuilds and list refreshes (hostproject/celery.py).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# A task whose worker dies is delivered again (the plugin's tasks are idempotent).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longer than the longest task (training: RECOMMENDER["TRAIN_TIME_LIMIT"], 3 h 5 min).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
# A broker outage must not hold up a web request that queues a task (the admin's "retrain").
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
# readme: end settings
