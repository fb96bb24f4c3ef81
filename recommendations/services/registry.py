"""The model registry's services: storing artefacts, activating versions and loading the active one.

Artefacts live in Django's default storage, one folder per version
(``<ARTIFACT_PREFIX>/v00012-<token>/``) holding the files written by
``BehaviorRecommender.save``. A version records the sha256 of every file and a digest of
that manifest; nothing is ever unpickled: the core loads weights with
``torch.load(weights_only=True)`` and only after every checksum matched.

Each process keeps the active model in memory, keyed by version id. Which version is
active is re-read from the database at most every ``ACTIVE_MODEL_CHECK_SECONDS``, so a
promotion or rollback reaches every web and worker process within seconds. A missing or
corrupt artefact makes ``get_active_model()`` return None (callers fall back to
popularity): the error is logged once per version and written on the version's
``status_reason``; it never raises into a web request.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.core.artifacts import ArtifactError
from recommendations.models import ModelVersion

if TYPE_CHECKING:
    from recommendations.core.recommender import BehaviorRecommender

logger = logging.getLogger(__name__)

__all__ = [
    "ArtifactError",
    "LoadedModel",
    "RegistryError",
    "StoredArtifact",
    "activate_version",
    "clear_model_cache",
    "delete_artifact",
    "get_active_model",
    "load_version",
    "rollback",
    "store_artifact",
    "verify_artifact",
]


class RegistryError(Exception):
    """A registry operation was refused (e.g. activating a version whose artefact is corrupt)."""


@dataclass
class LoadedModel:
    """The active version, loaded in this process."""

    version_id: int
    version_number: int
    recommender: BehaviorRecommender


@dataclass
class StoredArtifact:
    """Where ``store_artifact`` put a version's files, and their checksums."""

    path: str
    files: dict[str, str]
    sha256: str


# --- checksums ----------------------------------------------------------------------------------


def _sha256_of(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def manifest_digest(files: dict[str, str]) -> str:
    """One digest over every ``file name -> sha256`` pair (sorted), stored as ``ModelVersion.sha256``."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()


def _check_name(name: str) -> None:
    # File names come from the database: never let one escape the version's folder.
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
        raise ArtifactError(f"invalid artefact file name {name!r}")


# --- storing ------------------------------------------------------------------------------------


def store_artifact(directory: str | Path, *, number: int) -> StoredArtifact:
    """Copy the files of a saved model from a local folder into the default storage.

    The folder name is new for every call, so a half-copied folder is never mistaken for
    a finished one; on any error the files already copied are deleted and the error
    propagates. The caller creates the ``ModelVersion`` only after this returned.
    """
    directory = Path(directory)
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    if not names:
        raise ArtifactError(f"{directory} holds no artefact files")
    folder = f"{recommender_settings.ARTIFACT_PREFIX.rstrip('/')}/v{number:05d}-{uuid.uuid4().hex[:12]}"
    files: dict[str, str] = {}
    stored: list[str] = []
    try:
        for name in names:
            _check_name(name)
            with (directory / name).open("rb") as handle:
                files[name] = _sha256_of(handle)
                handle.seek(0)
                wanted = f"{folder}/{name}"
                saved = default_storage.save(wanted, File(handle, name=name))
                stored.append(saved)
                if saved != wanted:
                    raise ArtifactError(f"storage renamed {wanted!r} to {saved!r}")
    except BaseException:
        for name in stored:
            _delete_quietly(name)
        raise
    return StoredArtifact(path=folder, files=files, sha256=manifest_digest(files))


def delete_artifact(path: str, files: dict[str, str] | None) -> None:
    """Remove a version's files from the storage (missing files are ignored)."""
    for name in files or {}:
        _delete_quietly(f"{path}/{name}")


def _delete_quietly(name: str) -> None:
    try:
        default_storage.delete(name)
    except Exception:  # a leftover file is harmless; failing the caller's cleanup is not
        logger.warning("could not delete artefact file %s", name, exc_info=True)


# --- loading ------------------------------------------------------------------------------------


def _cache_root() -> Path:
    configured = recommender_settings.MODEL_CACHE_DIR
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "recommender-models"


def _verify_folder(folder: Path, files: dict[str, str]) -> None:
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"artefact file {name} is missing")
        with path.open("rb") as handle:
            actual = _sha256_of(handle)
        if actual != expected:
            raise ArtifactError(f"artefact file {name} fails its checksum (sha256 {actual[:12]}…)")


def _check_manifest(version: ModelVersion) -> dict[str, str]:
    files = dict(version.artifact_files or {})
    if not files:
        raise ArtifactError(f"model v{version.number} lists no artefact files")
    for name in files:
        _check_name(name)
    if manifest_digest(files) != version.sha256:
        raise ArtifactError(f"model v{version.number}: the file list does not match its sha256")
    return files


def local_artifact_dir(version: ModelVersion) -> Path:
    """A local folder holding the version's verified files (the storage's own, or a cached copy).

    Raises :class:`ArtifactError` when a file is missing or fails its checksum.
    """
    files = _check_manifest(version)
    try:
        folder: Path | None = Path(default_storage.path(version.artifact_path))
    except NotImplementedError:
        folder = None
    if folder is None or not folder.is_dir():
        # Remote storage (S3, GCS…), or one whose "path" is not where its files live
        # (InMemoryStorage): copy into the local cache first.
        folder = _cached_copy(version, files)
    _verify_folder(folder, files)
    return folder


def _cached_copy(version: ModelVersion, files: dict[str, str]) -> Path:
    root = _cache_root()
    folder = root / f"v{version.number:05d}-{version.sha256[:16]}"
    if folder.is_dir():
        try:
            _verify_folder(folder, files)
            return folder
        except ArtifactError:
            shutil.rmtree(folder, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    try:
        for name in files:
            try:
                source = default_storage.open(f"{version.artifact_path}/{name}", "rb")
            except (FileNotFoundError, OSError) as exc:
                raise ArtifactError(f"artefact file {name} is missing: {exc}") from exc
            with source, (partial / name).open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        _verify_folder(partial, files)
        try:
            os.replace(partial, folder)  # atomic: other processes see all files or none
        except OSError:  # another process finished the same copy first
            shutil.rmtree(partial, ignore_errors=True)
        return folder
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def verify_artifact(version: ModelVersion) -> None:
    """Raise :class:`ArtifactError` unless every file of the version is present and intact."""
    local_artifact_dir(version)


def load_version(version: ModelVersion) -> BehaviorRecommender:
    """Load one version's recommender after verifying its checksums (no pickle anywhere).

    Raises :class:`ArtifactError` when the artefact is missing, corrupt or not loadable.
    """
    from recommendations.core.recommender import BehaviorRecommender  # torch: imported on first use

    folder = local_artifact_dir(version)
    try:
        return BehaviorRecommender.load(folder)
    except ArtifactError:
        raise
    except Exception as exc:  # e.g. torch's UnpicklingError for a foreign pickle payload
        raise ArtifactError(
            f"model v{version.number} could not be loaded: {type(exc).__name__}: {exc}"
        ) from exc


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
        self.failed: set[int] = set()


_cache = _ModelCache()


def clear_model_cache() -> None:
    """Forget the loaded model and failed versions of this process (tests, after a deploy)."""
    with _cache.lock:
        _cache.reset()


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
            if _cache.loaded is not None and _cache.loaded.version_id == active_id:
                return _cache.loaded
            if active_id in _cache.failed:
                return None
            return _load_active(active_id)
    except Exception:
        logger.exception("the active recommender model could not be looked up")
        return None


def _load_active(version_id: int) -> LoadedModel | None:
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        _cache.checked_at = -math.inf
        return None
    try:
        recommender = load_version(version)
    except Exception as exc:
        _cache.failed.add(version_id)
        logger.error("model v%s refused: %s", version.number, exc)
        _record_load_error(version, exc)
        return None
    # Drop the previous version before keeping the new one: one network in memory per process.
    _cache.loaded = LoadedModel(version_id=version.pk, version_number=version.number, recommender=recommender)
    return _cache.loaded


def _record_load_error(version: ModelVersion, exc: Exception) -> None:
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M:%S %Z")
    message = f"Artefact refused on load ({stamp}): {exc}"
    reason = f"{message}\n{version.status_reason}".strip() if version.status_reason else message
    try:
        ModelVersion.objects.filter(pk=version.pk).update(status_reason=reason)
    except Exception:
        logger.warning("could not record the load error on model v%s", version.number, exc_info=True)


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
