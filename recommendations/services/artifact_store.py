"""Model artefacts in storage: storing a version's files, verifying and loading them.

Artefacts live in Django's default storage, one folder per version
(``<ARTIFACT_PREFIX>/v00012-<token>/``) holding the files written by
``BehaviorRecommender.save``. A version records the sha256 of every file and a digest of
that manifest; nothing is ever unpickled: the core loads weights with
``torch.load(weights_only=True)`` and only after every checksum matched. Remote storages
are read through a verified local copy (``MODEL_CACHE_DIR``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from django.core.files import File
from django.core.files.storage import default_storage

from recommendations.conf import recommender_settings
from recommendations.core.artifacts import ArtifactError
from recommendations.models import ModelVersion

if TYPE_CHECKING:
    from recommendations.core.recommender import BehaviorRecommender

logger = logging.getLogger(__name__)

__all__ = [
    "StoredArtifact",
    "delete_artifact",
    "load_version",
    "local_artifact_dir",
    "manifest_digest",
    "store_artifact",
    "verify_artifact",
]


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
