"""Writing a refresh's lists: one COPY into the table (PostgreSQL) and one cache pipeline per batch."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.data.events import any_of
from recommendations.services.serving.state import precomputed_cache_key


def round_scores(values: np.ndarray, digits: int = 6) -> list[float]:
    """``[round(v, digits) for v in values]``, the same floats, computed on the whole array.

    ``rint(v * 10**digits) / 10**digits`` is the double nearest the rounded decimal, as ``round``
    returns, whenever the integer is right; it can only be wrong where ``v * 10**digits`` lies
    within its float error (far below 1e-6 for these magnitudes) of a half, and those few values
    go through ``round`` itself.
    """
    values = np.asarray(values, dtype=np.float64)
    scale = 10.0**digits
    if not len(values) or not np.isfinite(values).all() or np.abs(values).max() >= 1e6:
        return [round(v, digits) for v in values.tolist()]
    scaled = values * scale
    out = (np.rint(scaled) / scale).tolist()
    for i in np.flatnonzero(np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) < 1e-6).tolist():
        out[i] = round(float(values[i]), digits)
    return out


class Encoder:
    """The batch's lists as Python lists (for the cache) and JSON texts (for the table).

    JSON of an item key is encoded once per refresh (a list is the encoded elements
    joined as ``json.dumps`` joins them); a score is ``round(s, 6)`` as before (:func:`round_scores`),
    whose JSON is its ``repr``, exactly as ``json.dumps`` writes a float.
    """

    def __init__(self, item_ids: list[str]) -> None:
        self.keys = np.empty(len(item_ids), dtype=object)
        self.keys[:] = item_ids
        self.key_json = np.empty(len(item_ids), dtype=object)
        self.key_json[:] = [json.dumps(key) for key in item_ids]
        self.reasons: dict[str, list] = {}

    def lists(self, ranked: tuple[np.ndarray, np.ndarray], reasons: np.ndarray) -> list[tuple]:
        """One ``(keys, scores, reasons, (keys JSON, scores JSON, reasons JSON))`` per row."""
        columns, values = ranked
        finite = np.isfinite(values)
        keys, key_json = self.keys[columns[finite]].tolist(), self.key_json[columns[finite]].tolist()
        scores = round_scores(values[finite])
        # reasons arrive as the JSON of packed reasons (``precompute_explain``): the table takes the
        # text as it is, the cache the decoded lists (one decoding per distinct reason and refresh)
        why_json = reasons[finite].tolist()
        decoded = self.reasons
        why = [decoded.get(text) or decoded.setdefault(text, json.loads(text)) for text in why_json]
        out = []
        end = 0
        for count in finite.sum(axis=1).tolist():
            start, end = end, end + count
            row_scores = scores[start:end]
            out.append(
                (
                    keys[start:end],
                    row_scores,
                    why[start:end],
                    (
                        f"[{', '.join(key_json[start:end])}]",
                        f"[{', '.join(map(repr, row_scores))}]",
                        f"[{', '.join(why_json[start:end])}]",
                    ),
                )
            )
        return out


def store(
    loaded: Any, batch: Any, ranked: tuple[np.ndarray, np.ndarray], reasons: np.ndarray, encoder: Encoder
) -> None:
    """Replace the batch's lists in the table (one COPY on PostgreSQL) and the cache (one pipeline)."""
    from recommendations.models import PrecomputedList

    now = timezone.now()  # a freshness marker (computed_at), on the wall clock
    version = loaded.version_number
    lists = encoder.lists(ranked, reasons)
    with transaction.atomic():
        any_of(PrecomputedList.objects.all(), "user", batch.user_ids).delete()
        if connection.vendor == "postgresql":
            _copy_rows(PrecomputedList, batch.user_ids, [row[3] for row in lists], version, now)
        else:
            PrecomputedList.objects.bulk_create(
                PrecomputedList(
                    user_id=pk,
                    item_keys=keys,
                    scores=scores,
                    reasons=why,
                    model_version=version,
                    computed_at=now,
                )
                for pk, (keys, scores, why, _) in zip(batch.user_ids, lists, strict=True)
            )
    stamp = now.timestamp()
    cache.set_many(
        {
            precomputed_cache_key(pk): {
                "keys": keys,
                "scores": scores,
                "reasons": why,
                "version": version,
                "computed_at": stamp,
            }
            for pk, (keys, scores, why, _) in zip(batch.user_ids, lists, strict=True)
        },
        recommender_settings.CACHE_TIMEOUT,
    )


def _copy_rows(table_model: Any, user_ids: list, texts: list, version: int, now: Any) -> None:
    """``COPY ... FROM STDIN`` of the lists (their JSON texts): no per-row INSERT or JSON adaptation."""
    meta = table_model._meta
    columns = [
        meta.get_field(name).column
        for name in ("user", "item_keys", "scores", "reasons", "model_version", "computed_at")
    ]
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {connection.ops.quote_name(meta.db_table)} ({quoted}) FROM STDIN") as copy,
    ):
        for pk, (keys, scores, why) in zip(user_ids, texts, strict=True):
            copy.write_row((pk, keys, scores, why, version, now))
