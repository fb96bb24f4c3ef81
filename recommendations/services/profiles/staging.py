"""A chunk's computed features, staged between the two passes of a fanned-out full rebuild.

The first pass of a chunk computes its users' features, propensity and embeddings
(:class:`~recommendations.services.profiles.compute.Computed`); they are kept, as one binary
value on the chunk's row, until the rebuild has learned its scaling, outliers and segments from
every chunk and the chunk's second pass writes the profiles. The value is an ``.npz`` archive
(arrays kept bit for bit, so the second pass places users on exactly the numbers the fit saw)
with the non-array parts as one JSON string; it is read back without pickle.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model

from recommendations.core.profiles.features import (
    FeatureTable,
    choose_affinity_columns,
    select_affinity_columns,
)
from recommendations.services.profiles.compute import Computed


def pack(computed: Computed) -> bytes:
    """``computed`` as bytes (``unpack`` gives it back, every float unchanged)."""
    table = computed.table
    meta = {
        "user_keys": [str(pk) for pk in computed.user_pks],
        "usernames": computed.usernames,
        "columns": table.columns,
        "top_categories": table.top_categories,
        "row_notes": table.notes,
        "category_names": table.category_names,
        "propensity_source": computed.propensity_source,
        "model_version": computed.model_version,
        "notes": computed.notes,
        "clock": computed.clock,
    }
    arrays: dict[str, np.ndarray] = {
        "meta": np.asarray(json.dumps(meta)),
        "values": table.values,
        "has_events": computed.has_events,
    }
    n = len(computed.user_pks)
    arrays["category_shares"] = (
        table.category_shares if table.category_shares is not None else np.zeros((n, 0))
    )
    if table.category_activity is not None:
        arrays["category_activity"] = table.category_activity
    if computed.embeddings is not None:
        arrays["embeddings"] = computed.embeddings
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types the keywords as bool
    return buffer.getvalue()


def unpack(data: bytes | memoryview | None) -> Computed:
    """The :class:`Computed` that :func:`pack` turned into ``data``."""
    if data is None:  # never expected: a chunk is written or fitted on only once staged
        raise ValueError("the chunk has no staged features")
    with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays["meta"]))
    to_python = get_user_model()._meta.pk.to_python
    table = FeatureTable(
        columns=list(meta["columns"]),
        values=arrays["values"],
        top_categories=[[(name, share) for name, share in row] for row in meta["top_categories"]],
        notes=meta["row_notes"],
        category_shares=arrays["category_shares"],
        category_names=list(meta["category_names"]),
        category_activity=arrays.get("category_activity"),
    )
    return Computed(
        user_pks=[to_python(key) for key in meta["user_keys"]],
        usernames=list(meta["usernames"]),
        table=table,
        has_events=arrays["has_events"].astype(bool),
        propensity_source=meta["propensity_source"],
        model_version=meta["model_version"],
        notes=meta["notes"],
        embeddings=arrays.get("embeddings"),
        clock=float(meta["clock"]),
    )


def affinity_columns_of(parts: Sequence[Computed], limit: int) -> list[str]:
    """The affinity columns of the whole rebuild: the ``limit`` most active categories of all parts.

    Each part counted the weighted activity of its own users per category; summed in part order
    they rank the categories exactly as one table of every user would.
    """
    names = parts[0].table.category_names if parts else []
    activity = np.zeros(len(names))
    for part in parts:
        if part.table.category_activity is not None and len(part.table.category_activity) == len(names):
            activity += part.table.category_activity
    return choose_affinity_columns(activity, names, limit)


def concatenate(parts: Sequence[Computed], affinity: Sequence[str]) -> Computed:
    """One :class:`Computed` of every user of ``parts`` (in order), with the affinity columns ``affinity``.

    The parts keep their own columns (``select_affinity_columns`` is applied to each).
    """
    first = parts[0]
    for part in parts:
        if part.table.category_names != first.table.category_names:
            # the catalogue's categories changed between two chunks: their shares do not line up
            raise ValueError("the item categories changed during the rebuild; the next rebuild will do")
        select_affinity_columns(part.table, affinity)
    embeddings = [p.embeddings for p in parts if p.embeddings is not None]
    notes: list[dict[str, Any]] = []
    for part in parts:
        notes += [n for n in part.notes if n not in notes]
    table = FeatureTable(
        columns=list(first.table.columns),
        values=np.vstack([p.table.values for p in parts]),
        top_categories=[row for p in parts for row in p.table.top_categories],
        notes=[row for p in parts for row in p.table.notes],
        category_shares=np.vstack([_shares(p) for p in parts]),
        category_names=list(first.table.category_names),
    )
    return Computed(
        user_pks=[pk for p in parts for pk in p.user_pks],
        usernames=[name for p in parts for name in p.usernames],
        table=table,
        has_events=np.concatenate([p.has_events for p in parts]),
        propensity_source=first.propensity_source,
        model_version=first.model_version,
        notes=notes,
        embeddings=np.vstack(embeddings) if len(embeddings) == len(parts) else None,
        clock=first.clock,
    )


def _shares(part: Computed) -> np.ndarray:
    shares = part.table.category_shares
    if shares is None or shares.shape[1] != len(part.table.category_names):
        return np.zeros((len(part.user_pks), len(part.table.category_names)))
    return shares
