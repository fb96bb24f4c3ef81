"""Merchandising on a served list: the staff rules of its placement, applied after the model.

Every list service asks :func:`rules_for` with its placement (no query: the rules are held per
process, ``services.merchandising.rules``) and hands the answer to ``assembly.assemble`` and
``assembly.build_result``:

- exclusions leave candidates out while the list is assembled (so the list stays full);
- the assembled candidates (read ``extra`` places past the end, so that a boost can lift an
  item from below the cut) are reordered by boosts and buries, pins are placed, and the list
  is cut (``core.merchandising.arrange``, the rule written once);
- the ids of the rules that applied go into the list's impression.

A pinned item is shown only when the shopper may see it there: recommendable (in stock, active:
the catalogue snapshot) and not left out of this list (already bought, in the cart, on the page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recommendations.adapter import DefaultRecommenderAdapter
from recommendations.core.merchandising import Entry, RuleIndex, arrange, excluded_by
from recommendations.services.merchandising.rules import placement_rules
from recommendations.services.serving import catalogue, explain
from recommendations.services.serving.types import Candidate

__all__ = ["MERCHANDISING_SOURCE", "ListRules", "rules_for"]

# (candidate, its item) -> True when the list must not show it (``assembly.Reject``)
Reject = Callable[[Candidate, Any], bool]

# the source of an item on a list only because a rule pinned it
MERCHANDISING_SOURCE = "merchandising"


@dataclass
class ListRules:
    """The rules in force for one list being served, and the ids of those that applied to it."""

    index: RuleIndex
    applied: set[int] = field(default_factory=set)
    #: candidates' categories read while assembling (the adapter is asked once per item)
    categories: dict[str, str | None] = field(default_factory=dict)

    def category(self, adapter: DefaultRecommenderAdapter, key: str, item: Any) -> str | None:
        """The item's category key, asked of the adapter once per list (None without category rules)."""
        if not self.index.by_category:
            return None
        try:
            return self.categories[key]
        except KeyError:
            category = self.categories[key] = adapter.get_item_category(item)
            return category

    @property
    def extra(self) -> int:
        """Candidates to read past the list's end: the strongest boost can lift one that far."""
        return self.index.largest_boost

    def reject(self, adapter: DefaultRecommenderAdapter, inner: Reject | None) -> Reject | None:
        """``assemble``'s reject rule: the exclusions (recorded when they drop one), then ``inner``."""
        index = self.index
        if not index.excluded_items and not index.excluded_categories:
            return inner

        def rejected(candidate: Candidate, item: Any) -> bool:
            dropped = excluded_by(index, candidate.key, self.category(adapter, candidate.key, item))
            if dropped:
                self.applied.update(dropped)
                return True
            return inner is not None and inner(candidate, item)

        return rejected

    def arranged(
        self,
        chosen: list[tuple[Candidate, Any]],
        *,
        limit: int,
        excluded: set[str],
        adapter: DefaultRecommenderAdapter,
        known: dict[str, Any] | None,
        prefetched: Any,
    ) -> list[tuple[Candidate, Any]]:
        """The assembled candidates with the boosts, buries and pins applied, cut to ``limit``."""
        index = self.index
        by_key = {candidate.key: (candidate, item) for candidate, item in chosen}
        pinned_keys = [rule.item_key for rule in index.pins if rule.item_key not in excluded]
        pinnable: dict[str, str | None] = {}
        if pinned_keys:
            found = _items(adapter, [key for key in pinned_keys if key not in by_key], known, prefetched)
            for key in pinned_keys:
                if key not in by_key and key in found:
                    by_key[key] = (Candidate(key, 0.0, explain.FEATURED, MERCHANDISING_SOURCE), found[key])
                if key in by_key:
                    pinnable[key] = self.category(adapter, key, by_key[key][1])
        entries = [
            Entry(candidate.key, self.category(adapter, candidate.key, item)) for candidate, item in chosen
        ]
        arrangement = arrange(entries, index, limit=limit, pinnable=pinnable)
        self.applied.update(arrangement.applied)
        return [by_key[key] for key in arrangement.keys]

    @property
    def applied_ids(self) -> list[int]:
        """The ids of the rules that applied, sorted (what the impression records)."""
        return sorted(self.applied)


def _items(
    adapter: DefaultRecommenderAdapter, keys: list[str], known: dict[str, Any] | None, prefetched: Any
) -> dict[str, Any]:
    """The recommendable items among ``keys`` (the request's looked-up items first)."""
    if not keys:
        return {}
    if known is None:
        return catalogue.available_items(adapter, keys, prefetched)
    missing = [key for key in keys if key not in known]
    if missing:
        found = catalogue.available_items(adapter, missing, prefetched)
        known.update((key, found.get(key)) for key in missing)
    return {key: known[key] for key in keys if known.get(key) is not None}


def rules_for(placement: str) -> ListRules | None:
    """The rules in force for a list of ``placement`` now, or None when there are none (no query)."""
    index = placement_rules(placement).index
    return ListRules(index) if index is not None else None
