"""Settings of the processes started by the integration tests (web, worker, beat, scripts).

The demo project's settings plus a tiny, env-tunable behaviour network so a training takes
seconds, and low data minimums so a small seeded event set trains. Environment:

- ``INTEGRATION_EPOCHS`` (default 2): epochs (raise it to make a training slow on purpose);
- ``INTEGRATION_STALE_SECONDS`` (default 1800): a running training without heartbeat for this
  long is abandoned by the next run; ``INTEGRATION_HEARTBEAT_SECONDS`` (default 1).
"""

import os

from shop.settings import *  # noqa: F403

_epochs = int(os.environ.get("INTEGRATION_EPOCHS", "2"))

RECOMMENDER = {
    **RECOMMENDER,  # noqa: F405
    "EMBEDDING_DIM": 8,
    "NUM_LAYERS": 1,
    "NUM_HEADS": 1,
    "BATCH_SIZE": 32,
    "EPOCHS": _epochs,
    # Slow runs must really run every epoch: no early stop.
    "PATIENCE": _epochs,
    "MAX_SEQUENCE_LENGTH": 10,
    "DEVICE": "cpu",
    "TRAIN_THREADS": 1,
    "MIN_TRAINING_EVENTS": 20,
    "MIN_TRAINING_USERS": 3,
    "MIN_ITEM_USERS": 1,
    "PROMOTION_TOLERANCE": 1.0,
    "TRAINING_STALE_MINUTES": float(os.environ.get("INTEGRATION_STALE_SECONDS", "1800")) / 60,
    "TRAINING_HEARTBEAT_SECONDS": float(os.environ.get("INTEGRATION_HEARTBEAT_SECONDS", "1")),
    "ACTIVE_MODEL_CHECK_SECONDS": 1,
    # The network scores groups of 4 users in a profile rebuild: chunks of 4 hold whole groups.
    "PROFILE_MODEL_BATCH": 4,
}
# Generous throttles: the tests hammer the API on purpose.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {
        "events": "1000000/min",
        "recommendations": "1000000/min",
        "profiles": "1000000/min",
        "privacy": "1000000/min",
        "login": "1000000/min",
        "anon": "1000000/min",
        "user": "1000000/min",
    },
}
