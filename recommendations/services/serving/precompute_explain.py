"""Explanations of a refresh's batches, computed on whole arrays (the anchors of ``model.anchors``).

Each recommended cell gets the packed reason (``explain.Reason.pack``) as JSON text: the arrays
hold strings, which the table stores as they are and the cache gets decoded once per refresh.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from recommendations.core.batch import recent_distinct
from recommendations.services.serving import explain, model
from recommendations.services.serving.names import item_names

#: recent distinct items of a history that may explain a recommendation (as ``model.anchors``)
ANCHOR_EVENTS = 10
#: the packed reason of an item no recent item explains
TRENDING_JSON = json.dumps(explain.TRENDING.pack())


def anchor_slots(
    vectors: np.ndarray | None, history_columns: np.ndarray, recommended_columns: np.ndarray
) -> np.ndarray:
    """For each recommended column, the recent history slot whose item is most like it.

    Parameters
    ----------
    vectors : ndarray of shape (n_items, dim), float32, rows L2-normalised; None when unavailable
    history_columns : ndarray of shape (users, slots), int64
        Model column of each user's recent distinct items, newest first; -1 for an item the model
        does not know, -2 past the user's last slot.
    recommended_columns : ndarray of shape (users, k), int64

    Returns
    -------
    ndarray of shape (users, k), int64
        The most similar known slot (the first of equal similarities); slot 0 (the newest recent
        item) for every item without vectors, or for a user none of whose recent items is known.
    """
    users, k = recommended_columns.shape
    if vectors is None or not k or not users:
        return np.zeros((users, k), dtype=np.int64)
    known: np.ndarray = np.asarray(history_columns >= 0)
    safe = torch.from_numpy(np.where(known, history_columns, 0))
    table = torch.from_numpy(vectors)
    with torch.inference_mode():
        # (users, k, slots): the slot axis last and contiguous for the argmax
        sims = torch.bmm(table[torch.from_numpy(recommended_columns)], table[safe].transpose(1, 2))
        sims.masked_fill_(torch.from_numpy(~known)[:, None, :], float("-inf"))
        best = sims.argmax(dim=2).numpy()
    # a user without a known recent item: the newest recent item explains everything
    any_known: np.ndarray = np.asarray(known.any(axis=1))
    return np.where(any_known[:, None], best, 0)


class Explainer:
    """Explanations of a refresh's batches; item names and reason texts are looked up once per refresh."""

    def __init__(self, loaded: Any) -> None:
        index = model._embedding_index(loaded)
        # the explanation vectors must follow the model's columns (they do: both come from item_ids_)
        usable = index is not None and len(index[0]) == len(loaded.recommender.item_ids_)
        self.vectors = index[1] if index is not None and usable else None
        self.names: dict[str, str] = {}
        self.texts: dict[tuple[str, str], str] = {}
        self.again: dict[str, str] = {}

    def reasons(self, batch: Any, items: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """A packed reason (JSON) per recommended cell from its anchor (``explain.from_anchor``).

        Cells no recent item explains are trending.

        ``items`` are the events' model columns + 1 (0 = unknown item), ``columns`` the lists.
        An item that is itself among the user's recent items is its own anchor ("you viewed
        this before"), as in ``model.anchors``.
        """
        rows, k = columns.shape
        out = np.full((rows, k), TRENDING_JSON, dtype=object)
        if not k or not len(batch.owners):
            return out
        # one code per distinct key: the model index, or a negative code per key the model lacks
        key_codes = items.copy()
        unknown = np.flatnonzero(items == 0)
        if len(unknown):
            codes: dict[str, int] = {}
            key_codes[unknown] = [
                -1 - codes.setdefault(key, len(codes)) for key in batch.items[unknown].tolist()
            ]
        positions, counts = recent_distinct(batch.owners, key_codes, rows, ANCHOR_EVENTS)
        filled = positions >= 0
        slot_columns = np.where(filled, items[np.where(filled, positions, 0)] - 1, -2)
        slots = anchor_slots(self.vectors, slot_columns, columns)
        # (rows, k, slots): the recommended item is the item of that recent slot
        own_slot = (slot_columns[:, None, :] == columns[:, :, None]) & (slot_columns >= 0)[:, None, :]
        own = own_slot.any(axis=2)
        slots = np.where(own, own_slot.argmax(axis=2), slots)
        active = filled & (counts > 0)[:, None]
        texts = {}
        for is_own in (False, True):
            # only the slots some item points at need a text (and, for "because", their item a name)
            # (one spare column takes the cells of the other kind)
            pointed = np.zeros((rows, positions.shape[1] + 1), dtype=bool)
            np.put_along_axis(pointed, np.where(own == is_own, slots, positions.shape[1]), True, axis=1)
            used = pointed[:, :-1] & active
            events = positions[used]
            keys, types = batch.items[events].tolist(), batch.event_types[events].tolist()
            if not is_own:
                wanted = set(keys) - self.names.keys()
                if wanted:
                    found = item_names(wanted)
                    self.names.update({key: found.get(key, key) for key in wanted})
            slot_texts = np.full(positions.shape, TRENDING_JSON, dtype=object)
            slot_texts[used] = [
                self._again(event_type) if is_own else self._text(key, event_type)
                for key, event_type in zip(keys, types, strict=True)
            ]
            texts[is_own] = np.take_along_axis(slot_texts, slots, axis=1)
        chosen = np.where(own, texts[True], texts[False])
        return np.where((counts > 0)[:, None], chosen, out)

    def _text(self, key: str, event_type: str) -> str:
        text = self.texts.get((key, event_type))
        if text is None:
            reason = explain.because(event_type, self.names[key])
            text = self.texts[key, event_type] = json.dumps(reason.pack())
        return text

    def _again(self, event_type: str) -> str:
        text = self.again.get(event_type)
        if text is None:
            text = self.again[event_type] = json.dumps(explain.again(event_type).pack())
        return text
