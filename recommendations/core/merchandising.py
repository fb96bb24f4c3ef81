"""Merchandising rules applied to a ranked list: pure Python, no Django.

Staff pin, boost, bury or exclude items and categories; serving hands this module the ranked
candidates the model (and the fallbacks) produced, with each one's category, and gets back the
order to show. The rule, written once here and documented in ``docs/merchandising.md``:

1. **Exclude**: an entry whose item or category an exclusion names is dropped, and an
   excluded item is never pinned either.
2. **Boost / bury**: an entry at 0-based rank ``r`` gets the effective rank
   ``r - sum(boost strengths) + sum(bury strengths)`` of the rules that name it (its item or its
   category); entries are ordered by effective rank; at one effective rank a boosted entry comes
   before the entries it passed and a buried one after them, other ties in ranked order. So a
   boost of strength ``s`` moves an item up ``s`` places, a bury down ``s`` places, when nothing
   else around it moves.
3. **Pin**: each pin puts its item at its 1-based position, rules in (position, id) order; two
   pins on one position: the lower id takes it, the other the next free position. A pinned item
   already on the list is moved (never shown twice); a pinned item that is not pinnable
   (out of stock, inactive, already bought or shown: the caller decides) is skipped. Positions
   past the end of a shorter list put the item last.
4. The list is cut to ``limit``.

A rule *applied* to a list when it dropped an entry, named an entry that was shown or would have
been shown without it (boosts and buries), or placed its pinned item; those ids are returned with
the order (serving records them with the list's impression).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["BOOST", "BURY", "EXCLUDE", "PIN", "Arrangement", "Entry", "Rule", "arrange"]

PIN = "pin"
BOOST = "boost"
BURY = "bury"
EXCLUDE = "exclude"


@dataclass(frozen=True)
class Rule:
    """One rule in force: its id, action, target (an item key or a category key) and parameters.

    ``position`` is 1-based (pins); ``strength`` a number of places (boosts and buries).
    """

    id: int
    action: str
    item_key: str = ""
    category: str = ""
    position: int | None = None
    strength: int = 1

    def matches(self, key: str, category: str | None) -> bool:
        """True when the rule names this item or its category."""
        if self.item_key:
            return key == self.item_key
        return bool(self.category) and category == self.category


@dataclass(frozen=True)
class Entry:
    """A ranked candidate: its item key and category key (None without one)."""

    key: str
    category: str | None = None


@dataclass
class Arrangement:
    """The order to show: keys (pins included) and the ids of the rules that applied."""

    keys: list[str] = field(default_factory=list)
    applied: set[int] = field(default_factory=set)


def excluded_by(rules: Sequence[Rule], key: str, category: str | None) -> list[int]:
    """Ids of the exclusion rules that name this item or its category."""
    return [rule.id for rule in rules if rule.action == EXCLUDE and rule.matches(key, category)]


def arrange(
    entries: Sequence[Entry],
    rules: Sequence[Rule],
    *,
    limit: int,
    pinnable: Mapping[str, str | None] | None = None,
) -> Arrangement:
    """Apply ``rules`` to the ranked ``entries`` (best first) and cut to ``limit``.

    ``pinnable``: ``{item key: category key}`` of the pinned items that may be shown to this
    shopper here (in stock, active, not already bought or on the page); a pin of any other item
    does nothing. See the module's docstring for the order of the steps.
    """
    arrangement = Arrangement()
    kept: list[tuple[int, Entry]] = []
    for rank, entry in enumerate(entries):
        dropped = excluded_by(rules, entry.key, entry.category)
        if dropped:
            arrangement.applied.update(dropped)
            continue
        kept.append((rank, entry))
    kept = _moved(kept, rules, arrangement.applied, limit)
    slots: dict[int, str] = {}
    pinned: set[str] = set()
    pins = sorted(
        (rule for rule in rules if rule.action == PIN and rule.item_key),
        key=lambda r: (r.position or 1, r.id),
    )
    for rule in pins:
        key = rule.item_key
        if key in pinned or pinnable is None or key not in pinnable:
            continue
        if excluded_by(rules, key, pinnable[key]):
            continue
        slot = max(0, (rule.position or 1) - 1)
        while slot in slots:
            slot += 1
        if slot >= limit:
            continue
        slots[slot] = key
        pinned.add(key)
        arrangement.applied.add(rule.id)
    rest = iter(entry.key for _rank, entry in kept if entry.key not in pinned)
    ordered: list[str] = []
    for slot in range(limit):
        if slot in slots:
            ordered.append(slots[slot])
            continue
        following = next(rest, None)
        if following is None:
            # a shorter list: the pins further down follow in their order
            ordered.extend(slots[s] for s in sorted(slots) if s > slot)
            break
        ordered.append(following)
    arrangement.keys = ordered
    return arrangement


def _moved(
    kept: list[tuple[int, Entry]], rules: Sequence[Rule], applied: set[int], limit: int
) -> list[tuple[int, Entry]]:
    """The entries reordered by their boosts and buries (stable: ties keep their ranked order).

    A mover applied when it named an entry shown before or after the move (within ``limit``).
    """
    movers = [rule for rule in rules if rule.action in (BOOST, BURY)]
    if not movers:
        return kept
    keyed = []
    for index, (rank, entry) in enumerate(kept):
        shift = 0
        named = []
        for rule in movers:
            if rule.matches(entry.key, entry.category):
                shift += rule.strength if rule.action == BURY else -rule.strength
                named.append(rule.id)
        keyed.append((index + shift, shift, index, rank, entry, named))
    # at one effective rank a boosted entry goes before, a buried one after, the entries it
    # passed: it moves exactly its strength when nothing else moves
    keyed.sort(key=lambda row: (row[0], row[1], row[2]))
    for final, (_effective, _shift, index, _rank, _entry, named) in enumerate(keyed):
        if named and (index < limit or final < limit):
            applied.update(named)
    return [(rank, entry) for _effective, _shift, _index, rank, entry, _named in keyed]
