"""The model registry: which version is active (activation, rollback) and its loaded recommender.

A version's files are stored, verified and loaded by :mod:`recommendations.services.artifact_store`.
Each process keeps the active model in memory, keyed by version id. Which version is
active is re-read from the database at most every ``ACTIVE_MODEL_CHECK_SECONDS``, so a
promotion or rollback reaches every web and worker process within seconds. An active
artefact that does not load (corrupt, missing, or written by a newer release) is logged and
counted once per process, written on the version's ``status_reason``, and replaced in this
process by the newest earlier-promoted version that loads, else None (callers fall back to
popularity); one retrain is queued to replace it (:mod:`~recommendations.services.model_fallback`).
It never raises into a web request, a worker or a process start.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.core.artifacts import ArtifactError
from recommendations.models import ModelVersion
from recommendations.services import model_fallback
from recommendations.services.artifact_store import load_version, verify_artifact

if TYPE_CHECKING:
    from recommendations.core.recommender import BehaviorRecommender

logger = logging.getLogger(__name__)

__all__ = [
    "LoadedModel",
    "RegistryError",
    "activate_version",
    "clear_model_cache",
    "get_active_model",
    "get_version_model",
    "rollback",
]


class RegistryError(Exception):
    """A registry operation was refused (e.g. activating a version whose artefact is corrupt)."""


@dataclass
class LoadedModel:
    """The active version, loaded in this process."""

    version_id: int
    version_number: int
    recommender: BehaviorRecommender


# --- the per-process cache of the active model --------------------------------------------------


class _ModelCache:
    """Which version is active (re-checked every few seconds) and its loaded recommender."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        self.checked_at = -math.inf
        self.active_id: int | None = None
        self.loaded: LoadedModel | None = None
        # the active version ``loaded`` answers for (another one's when the active did not load)
        self.served_for: int | None = None
        self.failed: set[int] = set()


_cache = _ModelCache()

# Versions pinned by experiment arms kept loaded per process besides the active one: a few
# experiments at once, each comparing one or two versions with the active one.
PINNED_MODELS_KEPT = 3


class _PinnedModels:
    """Versions other than the active one, loaded for experiment arms (oldest dropped first)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded: dict[int, LoadedModel] = {}
        self.failed: set[int] = set()


_pinned = _PinnedModels()


def clear_model_cache() -> None:
    """Forget the loaded models and failed versions of this process (tests, after a deploy)."""
    with _cache.lock:
        _cache.reset()
    with _pinned.lock:
        _pinned.loaded.clear()
        _pinned.failed.clear()


def get_version_model(version_id: int) -> LoadedModel | None:
    """One given version's recommender (an experiment arm's), whatever version is active.

    The active version is shared with :func:`get_active_model`; another is loaded once per
    process and kept among the last ``PINNED_MODELS_KEPT``. None for a version that is gone or
    whose artefact is refused (logged once per process); never raises.
    """
    active = get_active_model()
    if active is not None and active.version_id == version_id:
        return active
    try:
        with _pinned.lock:
            loaded = _pinned.loaded.get(version_id)
            if loaded is not None or version_id in _pinned.failed:
                return loaded
            version = ModelVersion.objects.filter(pk=version_id).first()
            if version is None:
                _pinned.failed.add(version_id)
                logger.error("model version %s is pinned by an experiment but does not exist", version_id)
                return None
            recommender = _load_or_record(version, _pinned.failed)
            if recommender is None:
                return None
            while len(_pinned.loaded) >= PINNED_MODELS_KEPT:
                _pinned.loaded.pop(next(iter(_pinned.loaded)))
            loaded = _pinned.loaded[version_id] = LoadedModel(version.pk, version.number, recommender)
            return loaded
    except Exception:
        logger.exception("model version %s could not be looked up", version_id)
        return None


def _recheck_soon() -> None:
    with _cache.lock:
        _cache.checked_at = -math.inf


def get_active_model() -> LoadedModel | None:
    """The active version's recommender, loaded once per process; None when there is none or it is broken.

    Never raises: a database error or a corrupt artefact is logged and answered with None.
    """
    try:
        with _cache.lock:
            now = time.monotonic()
            if now - _cache.checked_at >= recommender_settings.ACTIVE_MODEL_CHECK_SECONDS:
                _cache.active_id = (
                    ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
                    .values_list("pk", flat=True)
                    .first()
                )
                _cache.checked_at = now
            active_id = _cache.active_id
            if active_id is None:
                return None
            if _cache.served_for == active_id:
                return _cache.loaded
            return _load_active(active_id)
    except Exception:
        logger.exception("the active recommender model could not be looked up")
        return None


def _load_active(version_id: int) -> LoadedModel | None:
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        _cache.checked_at = -math.inf
        return None
    # Drop the previous version before loading another: one network in memory per process.
    _cache.loaded, _cache.served_for = None, None
    recommender = _load_or_record(version, _cache.failed)
    if recommender is None:
        model_fallback.request_retrain(version)
        loaded = _load_fallback(version)
    else:
        loaded = LoadedModel(version_id=version.pk, version_number=version.number, recommender=recommender)
    _cache.loaded, _cache.served_for = loaded, version_id
    return loaded


def _load_fallback(broken: ModelVersion) -> LoadedModel | None:
    """The newest earlier-promoted version that loads, standing in for ``broken``; None if none does."""
    for version in model_fallback.fallback_versions(broken, _cache.failed):
        recommender = _load_or_record(version, _cache.failed)
        if recommender is not None:
            logger.warning(
                "model v%s serves while the active v%s does not load", version.number, broken.number
            )
            return LoadedModel(version_id=version.pk, version_number=version.number, recommender=recommender)
    logger.warning("no earlier model version loads: popularity serves while v%s does not", broken.number)
    return None


def _load_or_record(version: ModelVersion, failed: set[int]) -> BehaviorRecommender | None:
    """The version's recommender; None when its artefact is refused (then in ``failed``, logged,
    counted and written on the version: once per process, as ``failed`` is not retried)."""
    try:
        return load_version(version)
    except Exception as exc:
        failed.add(version.pk)
        model_fallback.record_failure(version, exc)
        return None


# --- activation and rollback --------------------------------------------------------------------


def activate_version(version: ModelVersion, *, by: str, reason: str = "") -> ModelVersion:
    """Make ``version`` the active one; the previously active version becomes ``retired``.

    One transaction with the affected rows locked (in primary-key order, so two concurrent
    activations cannot deadlock); the database's partial unique constraint guarantees a
    single active version. Refuses a version whose artefact fails its checksums.
    """
    return _activate(version.pk, by=by, reason=reason or f"activated by {by}", is_rollback=False)


def rollback(*, by: str) -> ModelVersion | None:
    """Re-activate the version the active one replaced; None when there is nothing to roll back to.

    Repeated rollbacks walk further back (a rolled-back-to version keeps its own
    predecessor). The version rolled back from is retired with the reason recorded.
    """
    with transaction.atomic():
        current = ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.ACTIVE).first()
        if current is None:
            return None
        target = current.replaced_version
        if target is None:  # activated by hand with nothing before it: the latest earlier active version
            target = (
                ModelVersion.objects.filter(promoted_at__isnull=False, number__lt=current.number)
                .order_by("-promoted_at", "-number")
                .first()
            )
        if target is None:
            return None
        return _activate(
            target.pk,
            by=by,
            reason=f"re-activated by a rollback from v{current.number} ({by})",
            is_rollback=True,
        )


def _activate(version_id: int, *, by: str, reason: str, is_rollback: bool) -> ModelVersion:
    with transaction.atomic():
        rows = list(
            ModelVersion.objects.select_for_update()
            .filter(Q(pk=version_id) | Q(status=ModelVersion.Status.ACTIVE))
            .order_by("pk")
        )
        target = next((row for row in rows if row.pk == version_id), None)
        if target is None:
            raise RegistryError(f"model version {version_id} does not exist")
        if target.status == ModelVersion.Status.ACTIVE:
            return target
        try:
            verify_artifact(target)
        except ArtifactError as exc:
            raise RegistryError(f"model v{target.number} cannot be activated: {exc}") from exc
        now = timezone.now()
        previous = [row for row in rows if row.pk != version_id]
        for row in previous:  # retire first: the single-active constraint is checked per statement
            row.status = ModelVersion.Status.RETIRED
            row.status_reason = (
                f"rolled back to v{target.number} by {by}"
                if is_rollback
                else f"replaced by v{target.number} ({by})"
            )
            row.save(update_fields=["status", "status_reason"])
        target.status = ModelVersion.Status.ACTIVE
        target.status_reason = reason
        target.promoted_by = by
        target.promoted_at = now
        fields = ["status", "status_reason", "promoted_by", "promoted_at"]
        if not is_rollback:
            target.replaced_version = previous[0] if previous else None
            fields.append("replaced_version")
        target.save(update_fields=fields)
        transaction.on_commit(_recheck_soon)
    logger.info("model v%s is active (%s)", target.number, reason)
    return target
