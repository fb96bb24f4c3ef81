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
from recommendations.core.merchandising import BOOST, EXCLUDE, PIN, Entry, Rule, arrange, excluded_by
from recommendations.services.merchandising.rules import rules_in_force
from recommendations.services.serving import catalogue, explain
from recommendations.services.serving.types import Candidate

__all__ = ["MERCHANDISING_SOURCE", "ListRules", "rules_for"]

# the source of an item on a list only because a rule pinned it
MERCHANDISING_SOURCE = "merchandising"


@dataclass
class ListRules:
    """The rules in force for one list being served, and the ids of those that applied to it."""

    rules: tuple[Rule, ...]
    applied: set[int] = field(default_factory=set)

    @property
    def extra(self) -> int:
        """Candidates to read past the list's end: the strongest boost can lift one that far."""
        return max((rule.strength for rule in self.rules if rule.action == BOOST), default=0)

    @property
    def excludes(self) -> bool:
        """Whether any exclusion is in force."""
        return any(rule.action == EXCLUDE for rule in self.rules)

    def reject(
        self, adapter: DefaultRecommenderAdapter, inner: Callable[[Candidate, Any], bool] | None
    ) -> Any:
        """``assemble``'s reject rule: the exclusions (recorded when they drop one), then ``inner``."""
        if not self.excludes:
            return inner

        def rejected(candidate: Candidate, item: Any) -> bool:
            dropped = excluded_by(self.rules, candidate.key, adapter.get_item_category(item))
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
        by_key = {candidate.key: (candidate, item) for candidate, item in chosen}
        pinned_keys = [
            rule.item_key for rule in self.rules if rule.action == PIN and rule.item_key not in excluded
        ]
        pinnable: dict[str, str | None] = {}
        if pinned_keys:
            pinned_items = _items(
                adapter, [key for key in pinned_keys if key not in by_key], known, prefetched
            )
            for key in pinned_keys:
                if key in by_key:
                    pinnable[key] = adapter.get_item_category(by_key[key][1])
                elif key in pinned_items:
                    item = pinned_items[key]
                    by_key[key] = (Candidate(key, 0.0, explain.FEATURED, MERCHANDISING_SOURCE), item)
                    pinnable[key] = adapter.get_item_category(item)
        entries = [Entry(candidate.key, adapter.get_item_category(item)) for candidate, item in chosen]
        arrangement = arrange(entries, self.rules, limit=limit, pinnable=pinnable)
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
    rules = rules_in_force(placement)
    return ListRules(rules) if rules else None
