"""``recommender_settings``: the recommender's keys of ``settings.RECOMMENDER``.

Every key has a default and a one-line comment. Code reads
``recommender_settings.KEY``; never ``getattr(settings, ...)`` at a call site.
The event-pipeline keys (``behavior.conf.BEHAVIOR_DEFAULTS``) are part of the same dict.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.signals import setting_changed

from behavior.conf import BEHAVIOR_DEFAULTS, SETTINGS_NAME, AppSettings
from recommendations.core.config import SETTING_ALIASES, NetworkConfig

_SETTING_KEYS = {field: key for key, field in SETTING_ALIASES.items()}

# settings.RECOMMENDER key -> NetworkConfig field default (the one place those defaults are written)
NETWORK_DEFAULTS: dict[str, Any] = {
    _SETTING_KEYS.get(f.name, f.name.upper()): (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    )
    for f in dataclasses.fields(NetworkConfig)
}

RECOMMENDER_DEFAULTS: dict[str, Any] = {
    # --- policy -------------------------------------------------------------------------------
    # Import string of the adapter class a shop subclasses for business rules and item display.
    "ADAPTER": "recommendations.adapter.DefaultRecommenderAdapter",
    # --- data and preprocessing ---------------------------------------------------------------
    # Only events of the last N days are used for training (None = all). Every data window (this
    # one, profiles, active users, popularity, trending) counts back from the data clock
    # (recommendations.data.clock): the newest stored event, so an imported older history works.
    "TRAINING_WINDOW_DAYS": 365,
    # Seconds past the wall clock that a stored event may lie and still set the data clock; later
    # (future-dated) events are ignored by it, so one wrong client clock cannot move every window.
    "DATA_CLOCK_SKEW_SECONDS": 300,
    # Fewer cleaned events than this: the run ends with status "not enough data".
    "MIN_TRAINING_EVENTS": 200,
    # --- the behaviour network ------------------------------------------------------------------
    # Every field of recommendations.core.config.NetworkConfig, as an UPPER_CASE key with the same
    # default (THREADS is TRAIN_THREADS), documented there: written once. A key left at None
    # (MIN_ITEM_USERS, MIN_USER_EVENTS, DROPOUT, BATCH_SIZE, MAX_SEQUENCE_LENGTH) and MODE "auto" are
    # chosen by each retrain on validation data; a value set here overrides that search.
    **NETWORK_DEFAULTS,
    # --- registry and promotion ---------------------------------------------------------------
    # A new version may be this much (relative) worse than the active one and still be promoted.
    "PROMOTION_TOLERANCE": 0.02,
    # Metric the promotion guard compares.
    "PROMOTION_METRIC": "NDCG@10",
    # Folder inside Django's default storage holding model artefacts.
    "ARTIFACT_PREFIX": "recommender/models",
    # How new model artefacts are stored: "none" (float32) or "int8" (int8 linear weights, float16
    # tables: about half the size; recommendations.core.compression). Versions saved either
    # way load under both values.
    "MODEL_COMPRESSION": "none",
    # Celery queue for training tasks.
    "TRAIN_QUEUE": "training",
    # Soft / hard time limits of the retrain task, in seconds.
    "TRAIN_SOFT_TIME_LIMIT": 3 * 3600,
    "TRAIN_TIME_LIMIT": 3 * 3600 + 300,
    # --- serving ------------------------------------------------------------------------------
    # Length of precomputed lists.
    "TOP_N": 50,
    # Default and maximum `limit` of list endpoints and tags.
    "DEFAULT_LIMIT": 10,
    "MAX_LIMIT": 100,
    # Seconds a served list stays in the cache.
    "CACHE_TIMEOUT": 900,
    # Most items of one category in a list (None = no cap).
    "DIVERSITY_CAP": None,
    # Share of personal lists (serve_list) shown with their first EXPLORATION_SLOTS positions shuffled
    # at random, each shown item's probability logged with the impression for off-policy replay
    # (docs/experiments.md, "Off-policy replay"); 0 = never explore, nothing logged.
    "EXPLORATION_SHARE": 0.0,
    "EXPLORATION_SLOTS": 10,
    # Events of the current visitor considered by the real-time path.
    "SESSION_EVENTS": 50,
    # Half-life of trending scores, in days.
    "TRENDING_HALF_LIFE_DAYS": 7.0,
    # Days of events counted by popularity.
    "POPULARITY_WINDOW_DAYS": 30,
    # Users active within this many days get a precomputed list.
    "ACTIVE_USER_DAYS": 90,
    # --- profiles -----------------------------------------------------------------------------
    # Fixed number of segments (None = chosen by silhouette over SEGMENT_K_RANGE).
    "SEGMENT_K": None,
    # Inclusive range of k tried by the silhouette search.
    "SEGMENT_K_RANGE": (3, 10),
    # Above this many users, MiniBatchKMeans replaces KMeans.
    "MINIBATCH_THRESHOLD": 20_000,
    # DBSCAN eps (None = from the k-distance curve) and min_samples.
    "DBSCAN_EPS": None,
    "DBSCAN_MIN_SAMPLES": 10,
    # Users processed per batch during a rebuild.
    "PROFILE_BATCH_SIZE": 5000,
    # Users per chunk of recommendations.rebuild_profiles: each chunk of consecutive user keys is a
    # Celery task of its own (recommendations.rebuild_profiles_chunk, on any listening worker);
    # fewer users than this are rebuilt by one task, as one process. Rounded up to a multiple of
    # PROFILE_MODEL_BATCH.
    "PROFILE_CHUNK_USERS": 5000,
    # Consecutive users whose histories the network scores together in a rebuild (propensity,
    # embeddings). A chunk holds whole groups, so each shopper is scored with the same others in
    # one process as in chunks, and gets the same numbers (float32 kernels round by batch).
    "PROFILE_MODEL_BATCH": 500,
    # Rule-based tags as data; None means recommendations.services.profiles.tags.DEFAULT_TAG_RULES.
    "TAG_RULES": None,
    # A rebuild without full=True is incremental when at most this share of profiles changed.
    "PROFILE_INCREMENTAL_MAX_SHARE": 0.2,
    # Category affinity columns (the most active categories) used by segments and tags.
    "PROFILE_AFFINITY_CATEGORIES": 8,
    # Users sampled for the silhouette score and for DBSCAN (both grow faster than linearly).
    "SEGMENT_SILHOUETTE_SAMPLE": 4000,
    "DBSCAN_SAMPLE_SIZE": 10_000,
    # --- serving: real-time path, impressions and item relations ------------------------------
    # Impressions queued in Redis (shared by the web workers) before one bulk INSERT; other cache
    # backends write a request's impressions when it finishes.
    "IMPRESSION_BATCH_SIZE": 200,
    # A web worker also writes the Redis queue when it has not done so for this many seconds.
    "IMPRESSION_FLUSH_SECONDS": 5.0,
    # Seconds the API may reuse a list assembled from a fresh precomputed list (stock changes
    # show up after at most this long; a new event or a new precomputed list shows at once).
    "LIST_CACHE_SECONDS": 30,
    # The API's fast path (recommendations.fastpath.middleware.FastRecommendationsMiddleware in
    # MIDDLEWARE): a logged-in shopper's plain list request answered without the middleware stack.
    # Opt-in: it must be both installed and enabled.
    "FAST_PATH_ENABLED": False,
    # Related items kept per item and kind by recommendations.refresh_item_relations.
    "RELATED_ITEMS": 20,
    # A cart or purchase this many days after a purchase of an item counts as bought with it
    # (its complements: the cart's "Complete your purchase", "Frequently bought together").
    "COMPLEMENT_DAYS": 14.0,
    # Users per chunk of recommendations.refresh_recommendations: each chunk of consecutive user
    # keys is a Celery task of its own (on any listening worker); fewer active users than this
    # are refreshed by one task, as one process.
    "REFRESH_CHUNK_USERS": 5000,
    # Users scored per batch by recommendations.refresh_recommendations.
    "PRECOMPUTE_BATCH_SIZE": 512,
    # Batches recommendations.refresh_recommendations scores at once, one thread each (1 = score in
    # the calling thread). Two keep both cores of a small machine busy; more than the CPU count
    # only adds switching.
    "PRECOMPUTE_THREADS": 2,
    # Seconds an HTTP client or proxy may cache popular / similar item lists.
    "PUBLIC_MAX_AGE": 300,
    # --- training service and model registry --------------------------------------------------
    # Fewer distinct shoppers with enough events for a holdout than this: "not enough data".
    "MIN_TRAINING_USERS": 10,
    # A running training whose heartbeat is older than this many minutes is marked abandoned.
    "TRAINING_STALE_MINUTES": 30,
    # Seconds between heartbeats of a running training (and renewals of its lease).
    "TRAINING_HEARTBEAT_SECONDS": 60,
    # Transient connection errors: the retrain task retries this many times (exponential backoff).
    "TRAIN_MAX_RETRIES": 3,
    # Rows fetched per round trip when streaming events out of the database.
    "DATA_CHUNK_SIZE": 20_000,
    # Command prefix that runs the network's fit as a job of its own, e.g. "torchrun --nproc-per-node 2"
    # (DistributedDataParallel over several processes or machines, docs/distributed-training.md); the
    # retrain service appends "-m recommendations.core.training_job ...". Empty: fit in the task's process.
    "TRAINING_LAUNCHER": "",
    # Seconds a web process trusts its idea of which version is active before asking the database.
    "ACTIVE_MODEL_CHECK_SECONDS": 5,
    # Local folder for artefacts copied from a remote storage (None = a folder in the temp dir).
    "MODEL_CACHE_DIR": None,
    # Niceness (0-19) of processes running training, profile rebuilds and precomputation, so that
    # web requests on the same cores keep their latency (None = leave the priority alone).
    "BACKGROUND_NICENESS": 19,
    # --- online experiments (recommendations.services.experiments, docs/experiments.md) -------
    # Seconds a web process trusts its list of running experiments before asking the database.
    "EXPERIMENT_CHECK_SECONDS": 10,
    # Level of the always-valid intervals and p-values of experiment results (mSPRT).
    "EXPERIMENT_ALPHA": 0.05,
    # The mSPRT's mixing scale, in per-shopper standard deviations: the intervals are tightest
    # near 8 / EXPERIMENT_MIXTURE_EFFECT**2 shoppers per arm (3,200 for 0.05).
    "EXPERIMENT_MIXTURE_EFFECT": 0.05,
    # Guardrail: an arm is stopped when the upper end of its always-valid (1 - alpha) interval of
    # conversion minus the baseline arm's is below -MARGIN x the baseline's conversion (0: any
    # significant loss), once both arms have EXPERIMENT_GUARDRAIL_MIN_SHOPPERS shoppers.
    "EXPERIMENT_GUARDRAIL_ALPHA": 0.05,
    "EXPERIMENT_GUARDRAIL_MARGIN": 0.0,
    "EXPERIMENT_GUARDRAIL_MIN_SHOPPERS": 100,
    # --- merchandising (recommendations.services.merchandising, docs/merchandising.md) -------
    # Seconds a web process trusts its merchandising rules before asking the database (a
    # process that saves a rule reads them again at once).
    "MERCHANDISING_CHECK_SECONDS": 10,
    # --- privacy ------------------------------------------------------------------------------
    # Key of the hashes naming erased shoppers (None = derived from SECRET_KEY; rotating it orphans them).
    "ERASURE_HASH_KEY": None,
    # Served lists (impressions: who saw which list) older than this many days are deleted by the
    # daily retention task, behavior.prune_events (None = keep forever). A year keeps the placement
    # figures comparable across seasons; click-through alerts look at the last weeks only.
    "IMPRESSION_RETENTION_DAYS": 365,
    # "Not interested" marks older than this many days are deleted by the same task (None = keep
    # forever): as long as events by default, a mark being part of the shopper's behaviour.
    "NOT_INTERESTED_RETENTION_DAYS": 730,
    # --- metrics and alerts (recommendations.ops) ---------------------------------------------
    # Serve Prometheus metrics at the project's /metrics URL (404 while off).
    "METRICS_ENABLED": False,
    # When set, /metrics needs "Authorization: Bearer <token>" (else restrict it at the proxy).
    "METRICS_TOKEN": None,
    # Alert when no model version was promoted for this many days (None = never).
    "ALERT_NO_PROMOTION_DAYS": 7,
    # Alert when a placement's click-through over the last ALERT_CTR_WINDOW_HOURS is below
    # (1 - ALERT_CTR_DROP) times its rate over the ALERT_CTR_BASELINE_DAYS before, both periods
    # with at least ALERT_CTR_MIN_IMPRESSIONS impressions.
    "ALERT_CTR_DROP": 0.5,
    "ALERT_CTR_WINDOW_HOURS": 24,
    "ALERT_CTR_BASELINE_DAYS": 7,
    "ALERT_CTR_MIN_IMPRESSIONS": 500,
    # The same alert (kind and subject) is sent at most once per this many hours.
    "ALERT_REPEAT_HOURS": 24,
}

recommender_settings = AppSettings({**BEHAVIOR_DEFAULTS, **RECOMMENDER_DEFAULTS})

# Every key a project may put in settings.RECOMMENDER.
KNOWN_KEYS = frozenset(recommender_settings.defaults)


def network_config() -> NetworkConfig:
    """The behaviour network's choices from ``settings.RECOMMENDER`` (``None`` = chosen on validation)."""
    return NetworkConfig.from_settings({key: getattr(recommender_settings, key) for key in KNOWN_KEYS})


def _reload(*, setting: str, **_: Any) -> None:
    if setting in {SETTINGS_NAME, "RECOMMENDER_ITEM_MODEL"}:
        recommender_settings.reload()


setting_changed.connect(_reload)
