"""Save and load model artefacts without pickle.

An artefact is a folder with ``weights.pt`` (a flat ``dict[str, Tensor]`` written by ``torch.save``,
read back with ``torch.load(weights_only=True)``) and ``metadata.json`` (hyperparameters, id maps,
report, library versions and the sha256 of ``weights.pt``). Both are written to temporary names,
fsynced and renamed atomically, the metadata last.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

WEIGHTS = "weights.pt"
METADATA = "metadata.json"
FORMAT_VERSION = 1


class ArtifactError(Exception):
    """A model artefact is missing, corrupt, tampered with or not loadable safely."""


class ArtifactFormatError(ArtifactError):
    """An artefact written by a newer release, in a format this code does not read."""


def check_format(meta: dict[str, Any], where: str | Path) -> int:
    """The artefact's ``format_version`` (1 when absent: the first releases wrote none).

    Raises
    ------
    ArtifactFormatError
        A format newer than :data:`FORMAT_VERSION` (a newer release wrote it), or not a number.
    """
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ArtifactFormatError(f"{where}: format_version {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise ArtifactFormatError(
            f"{where}: format {version} was written by a newer release "
            f"(this one reads up to {FORMAT_VERSION})"
        )
    return version


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries an artefact depends on."""
    import sklearn

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_artifact(
    directory: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> dict[str, Any]:
    """Write ``tensors`` and ``metadata`` into ``directory`` atomically.

    Parameters
    ----------
    directory : path
        Created when missing.
    tensors : dict of str to Tensor
        Flat mapping (nested dicts of tensors are fine for ``weights_only`` too, but keep it flat).
    metadata : dict
        JSON-able; ``format_version``, ``libraries``, ``weights_file`` and ``weights_sha256`` are added.

    Returns
    -------
    dict
        The metadata as written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic_write(directory / WEIGHTS, lambda fh: torch.save(clean, fh))
    meta = {
        **metadata,
        "format_version": FORMAT_VERSION,
        "libraries": library_versions(),
        "weights_file": WEIGHTS,
        "weights_sha256": sha256_of(directory / WEIGHTS),
    }
    payload = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False).encode()
    _atomic_write(directory / METADATA, lambda fh: fh.write(payload))
    _fsync_dir(directory)
    return meta


def load_artifact(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read an artefact written by :func:`save_artifact`.

    Raises
    ------
    ArtifactError
        Missing files, unreadable metadata, sha256 mismatch, or a weights file that is not a plain
        tensor dict (``torch.load(weights_only=True)`` refuses pickled objects without running them);
        :class:`ArtifactFormatError` for a format newer than this code's.
    """
    directory = Path(directory)
    meta_path, weights_path = directory / METADATA, directory / WEIGHTS
    if not meta_path.is_file() or not weights_path.is_file():
        raise ArtifactError(f"artefact in {directory} is incomplete: {METADATA} and {WEIGHTS} are required")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{meta_path}: unreadable metadata ({exc})") from exc
    if not isinstance(meta, dict) or "weights_sha256" not in meta:
        raise ArtifactError(f"{meta_path}: metadata lacks weights_sha256")
    check_format(meta, meta_path)
    digest = sha256_of(weights_path)
    if digest != meta["weights_sha256"]:
        raise ArtifactError(f"{weights_path}: sha256 {digest} does not match the metadata")
    try:
        tensors = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError...: all mean "not a safe tensor dict"
        raise ArtifactError(f"{weights_path}: refused ({type(exc).__name__}: {exc})") from exc
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise ArtifactError(f"{weights_path}: expected a dict of tensors")
    return tensors, meta
