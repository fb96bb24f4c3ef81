"""Settings of the test suite: the demo project with fast hashing and eager tasks.

``DATABASE_URL`` still decides the database (SQLite locally, Postgres in CI) and
``CACHE_URL`` the cache, so CI exercises the production path. Unit tests run Celery
tasks eagerly; the integration tests start real worker and beat processes with the
demo settings and the real broker.
"""

import os
import secrets
import tempfile
from pathlib import Path

# The demo settings refuse to start without a strong key when DEBUG is off (as in tests). Set in
# the environment, so the processes the integration tests start share the same key.
os.environ.setdefault("SECRET_KEY", "tests-" + secrets.token_urlsafe(48))

from shop.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
MEDIA_ROOT = Path(os.environ.get("TEST_MEDIA_ROOT") or tempfile.mkdtemp(prefix="recommender-media-"))
# No throttling noise inside unit tests; the throttle tests override these.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {
        "events": "100000/min",
        "recommendations": "100000/min",
        "profiles": "100000/min",
        "privacy": "100000/min",
        "login": "100000/min",
        "anon": "100000/min",
        "user": "100000/min",
    },
}
