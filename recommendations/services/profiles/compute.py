"""Computing profiles: behaviour features, and the active model's propensity and embeddings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommendations.conf import network_config, recommender_settings
from recommendations.core.profiles.features import (
    EMBEDDING_PREFIX,
    HEURISTIC_PROPENSITY_FORMULA,
    FeatureTable,
    compute_features,
    heuristic_propensity,
    note,
)
from recommendations.services.profiles.features import Catalogue, load_catalogue, load_profile_events

logger = logging.getLogger(__name__)

EMBEDDING_COMPONENTS = 4
# Latest events per shopper read for the model's propensity and embedding (the embedding keeps
# the last MAX_SEQUENCE_LENGTH itself). The propensity head's counting features (events, items,
# active days, per-type counts) saw each shopper's whole training window when it was fitted;
# only the last MAX_SEQUENCE_LENGTH events would undercount every longer history, a train/serve
# skew (on a week of Taobao, where the median shopper has 55 events: ROC-AUC 0.5735 with 50
# events, 0.578 with all). The bound keeps a batch's histories in memory.
PROPENSITY_HISTORY_EVENTS = 1000


@dataclass
class Computed:
    """The features, propensity and embeddings of a batch of users, before scaling."""

    user_pks: list[Any]
    usernames: list[str]
    table: FeatureTable
    has_events: np.ndarray
    propensity_source: str
    model_version: int | None
    notes: list[dict[str, Any]]  # codes for every user of the batch (see core.profiles.features.note)
    embeddings: np.ndarray | None = None
    # the data clock (unix seconds) the features count back from: recency_days is relative to it
    clock: float = 0.0


def compute(
    user_pks: list[Any],
    usernames: list[str],
    *,
    now: float,
    restrict: bool,
    affinity_columns: Sequence[str] | None,
    every_affinity: bool = False,
    catalogue: Catalogue | None = None,
) -> Computed:
    """Features of ``user_pks`` at the data clock ``now``, with the model's propensity and embeddings.

    ``affinity_columns`` None picks the ``PROFILE_AFFINITY_CATEGORIES`` most active categories of
    these users, or, with ``every_affinity``, keeps a column for every active category (a chunk of
    a fanned-out rebuild: the rebuild chooses among them once every chunk is computed).
    ``catalogue`` is read when not given.
    """
    catalogue = catalogue if catalogue is not None else load_catalogue()
    events = load_profile_events(user_pks, catalogue, restrict=restrict)
    table = compute_features(
        events,
        now=now,
        category_median_price=catalogue.median_price,
        event_weights=recommender_settings.EVENT_WEIGHTS,
        affinity_columns=affinity_columns,
        max_affinity_columns=len(catalogue.category_names)
        if every_affinity
        else recommender_settings.PROFILE_AFFINITY_CATEGORIES,
    )
    has_events = ~np.isnan(table.column("recency_days"))
    notes: list[dict[str, Any]] = []
    if not catalogue.category_names:
        notes.append(note("no_categories"))
    propensity, embeddings, source, version = _model_outputs(user_pks, usernames, now, notes)
    if propensity is None:
        propensity = heuristic_propensity(table)
    table.add_column("propensity", propensity)
    return Computed(user_pks, usernames, table, has_events, source, version, notes, embeddings, now)


def _model_outputs(
    user_pks: list[Any], usernames: list[str], now: float, notes: list[dict[str, Any]]
) -> tuple[np.ndarray | None, np.ndarray | None, str, int | None]:
    """Propensity and embeddings from the active model; (None, None, "heuristic", None) without one.

    A model without a propensity head gives its embeddings and no propensity (the heuristic's).
    """
    try:
        from recommendations.services.registry import get_active_model

        loaded = get_active_model()
    except Exception:  # the registry is optional for profiles: never let it break a rebuild
        logger.exception("the active model could not be looked up for profiles")
        loaded = None
    if loaded is None:
        notes.append(note("no_active_model", formula=HEURISTIC_PROPENSITY_FORMULA))
        return None, None, "heuristic", None
    from recommendations.data.histories import load_histories

    recommender = loaded.recommender
    # the head reads events strictly before its "now"; ``now`` is the data clock, the time of the
    # newest event itself, which must count: the next representable instant includes it
    after = float(np.nextafter(now, np.inf))
    # A model without a trained head answers its training base rate for everyone (0 when there
    # were no labels): no ranking at all. The heuristic at least orders shoppers by carts,
    # orders, views and recency, so it stands in and the profiles say so.
    has_head = bool(getattr(recommender, "has_propensity_", True))
    if not has_head:
        why = ((getattr(recommender, "report_", None) or {}).get("propensity") or {}).get("reason", "")
        # ``why`` comes from the training report as written (data of the model, not interface text)
        notes.append(
            note(
                "no_propensity_head",
                version=loaded.version_number,
                why=str(why),
                formula=HEURISTIC_PROPENSITY_FORMULA,
            )
        )
    propensity = np.zeros(len(user_pks))
    embeddings: np.ndarray | None = None
    # Fixed groups of consecutive users, scored together: the network's float32 kernels round by
    # the batch a history is scored in, so a chunk of whole groups (see profiles.fanout.plan) gives
    # every shopper the numbers one pass over everyone gives, bit for bit.
    group = int(recommender_settings.PROFILE_MODEL_BATCH)
    for start in range(0, len(user_pks), group):
        pks = user_pks[start : start + group]
        names = usernames[start : start + group]
        histories_by_key = load_histories(
            users=pks, limit=max(network_config().history_limit(), PROPENSITY_HISTORY_EVENTS)
        )
        histories = [histories_by_key.get(name, []) for name in names]
        if has_head:
            propensity[start : start + len(pks)] = np.asarray(
                recommender.propensity(histories, after), dtype=np.float64
            )
        batch = np.asarray(recommender.embed_users(histories), dtype=np.float64)
        if embeddings is None:
            embeddings = np.zeros((len(user_pks), batch.shape[1]))
        embeddings[start : start + len(pks)] = batch
    if not has_head:
        return None, embeddings, "heuristic", loaded.version_number
    return propensity, embeddings, "model", loaded.version_number


def add_embedding_columns(computed: Computed, pca: dict[str, Any] | None) -> dict[str, Any] | None:
    """Project embeddings on a few principal components (fitted on a full run) as extra columns."""
    if computed.embeddings is None:
        if pca is not None:  # the full run had a model: leave the components missing (median fill)
            for i in range(len(pca["components"])):
                computed.table.add_column(f"{EMBEDDING_PREFIX}{i}", np.full(len(computed.user_pks), np.nan))
        return pca
    embeddings = computed.embeddings
    if pca is None:
        rows = embeddings[computed.has_events] if computed.has_events.any() else embeddings
        mean = rows.mean(axis=0)
        _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
        pca = {"mean": mean.tolist(), "components": vt[:EMBEDDING_COMPONENTS].tolist()}
    projected = (embeddings - np.asarray(pca["mean"])) @ np.asarray(pca["components"]).T
    for i in range(projected.shape[1]):
        computed.table.add_column(f"{EMBEDDING_PREFIX}{i}", projected[:, i])
    return pca
