"""Display names of items for explanations ("because you viewed X"), kept per process.

Both the real-time path and the precompute name the same few thousand recently viewed items
again and again, and names rarely change: a name read from the database is kept for
``NAME_SECONDS`` (a renamed item's explanations lag by at most that), one dict per process
shared by web threads and a refresh's threads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from behavior.items import get_item_model, item_key_field
from recommendations.data.events import any_of
from recommendations.services.serving import catalogue

NAME_SECONDS = 300
# names kept at most; the dict is emptied when it grows past this (a catalogue this large
# then reads its names again, which is what happened on every call before)
MAX_NAMES = 50_000

_names: dict[str, tuple[str, float]] = {}


def _names_by_key(keys: set[str]) -> dict[str, str]:
    """``str(item)`` of the items with these keys (as ``items_by_key``), in one query.

    The keys go as one array parameter on PostgreSQL: a refresh asks for thousands at once, and an
    ``IN`` list would cost a placeholder and its substitution per key.
    """
    field = item_key_field()
    queryset = any_of(get_item_model()._default_manager.all(), field, sorted(keys))
    return {str(getattr(item, field)): str(item) for item in queryset}


def item_names(keys: Iterable[str]) -> dict[str, str]:
    """``{key: str(item)}`` of the known items among ``keys``; unknown keys are absent.

    From this process's kept names, then the catalogue snapshot (the available items, in
    memory), then one query for the rest (whose names are then kept).
    """
    keys = set(keys)
    now = time.monotonic()
    names = {key: entry[0] for key in keys if (entry := _names.get(key)) is not None and entry[1] > now}
    missing = keys - names.keys()
    if missing:
        names.update((key, str(item)) for key, item in catalogue.held_items(missing).items())
        missing = keys - names.keys()
    if missing:
        found = _names_by_key(missing)
        if len(_names) + len(found) > MAX_NAMES:
            _names.clear()
        expires = now + NAME_SECONDS
        for key, name in found.items():
            _names[key] = (name, expires)
        names.update(found)
    return names


def clear() -> None:
    """Forget the kept names (tests; a shop that renamed items in bulk may call it too)."""
    _names.clear()
