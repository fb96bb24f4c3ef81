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

__all__ = [
    "BOOST",
    "BURY",
    "EXCLUDE",
    "PIN",
    "Arrangement",
    "Entry",
    "Rule",
    "RuleIndex",
    "arrange",
    "index_rules",
]

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


# target -> ((rule id, signed shift in places), ...): a boost moves up (negative), a bury down
Moves = dict[str, tuple[tuple[int, int], ...]]


@dataclass(frozen=True)
class RuleIndex:
    """Rules looked up by their target, built once per set of rules in force (:func:`index_rules`).

    A list asks each candidate's item and category of dictionaries instead of walking every rule.
    ``fingerprint`` names the set (a list reused from a cache must have been made under it).
    """

    rules: tuple[Rule, ...]
    excluded_items: dict[str, tuple[int, ...]]
    excluded_categories: dict[str, tuple[int, ...]]
    item_moves: Moves
    category_moves: Moves
    pins: tuple[Rule, ...]
    fingerprint: str

    @property
    def by_category(self) -> bool:
        """Whether any rule names a category (else candidates' categories are never needed)."""
        return bool(self.excluded_categories or self.category_moves)

    @property
    def moves(self) -> bool:
        """Whether any boost or bury is in force."""
        return bool(self.item_moves or self.category_moves)

    @property
    def largest_boost(self) -> int:
        """The most places a candidate can be lifted (serving reads that far past the cut)."""
        shifts = [
            -shift
            for table in (self.item_moves, self.category_moves)
            for row in table.values()
            for _, shift in row
        ]
        return max([0, *shifts])


def index_rules(rules: Sequence[Rule]) -> RuleIndex:
    """The :class:`RuleIndex` of ``rules`` (pins in (position, id) order)."""
    excluded_items: dict[str, list[int]] = {}
    excluded_categories: dict[str, list[int]] = {}
    item_moves: dict[str, list[tuple[int, int]]] = {}
    category_moves: dict[str, list[tuple[int, int]]] = {}
    for rule in sorted(rules, key=lambda r: r.id):
        if rule.action == EXCLUDE:
            table = excluded_items if rule.item_key else excluded_categories
            table.setdefault(rule.item_key or rule.category, []).append(rule.id)
        elif rule.action in (BOOST, BURY):
            shift = rule.strength if rule.action == BURY else -rule.strength
            moves = item_moves if rule.item_key else category_moves
            moves.setdefault(rule.item_key or rule.category, []).append((rule.id, shift))
    pins = tuple(
        sorted((r for r in rules if r.action == PIN and r.item_key), key=lambda r: (r.position or 1, r.id))
    )
    return RuleIndex(
        rules=tuple(rules),
        excluded_items={k: tuple(v) for k, v in excluded_items.items() if k},
        excluded_categories={k: tuple(v) for k, v in excluded_categories.items() if k},
        item_moves={k: tuple(v) for k, v in item_moves.items() if k},
        category_moves={k: tuple(v) for k, v in category_moves.items() if k},
        pins=pins,
        fingerprint=",".join(str(rule) for rule in sorted(rules, key=lambda r: r.id)),
    )


def excluded_by(index: RuleIndex, key: str, category: str | None) -> tuple[int, ...]:
    """Ids of the exclusion rules that name this item or its category."""
    by_item = index.excluded_items.get(key, ())
    if category is None or not index.excluded_categories:
        return by_item
    return by_item + index.excluded_categories.get(category, ())


def arrange(
    entries: Sequence[Entry],
    rules: Sequence[Rule] | RuleIndex,
    *,
    limit: int,
    pinnable: Mapping[str, str | None] | None = None,
) -> Arrangement:
    """Apply ``rules`` to the ranked ``entries`` (best first) and cut to ``limit``.

    ``pinnable``: ``{item key: category key}`` of the pinned items that may be shown to this
    shopper here (in stock, active, not already bought or on the page); a pin of any other item
    does nothing. See the module's docstring for the order of the steps.
    """
    index = rules if isinstance(rules, RuleIndex) else index_rules(rules)
    arrangement = Arrangement()
    kept: list[tuple[int, Entry]] = []
    for rank, entry in enumerate(entries):
        dropped = excluded_by(index, entry.key, entry.category)
        if dropped:
            arrangement.applied.update(dropped)
            continue
        kept.append((rank, entry))
    if index.moves:
        kept = _moved(kept, index, arrangement.applied, limit)
    slots: dict[int, str] = {}
    pinned: set[str] = set()
    for rule in index.pins:
        key = rule.item_key
        if key in pinned or pinnable is None or key not in pinnable:
            continue
        if excluded_by(index, key, pinnable[key]):
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
    kept: list[tuple[int, Entry]], index: RuleIndex, applied: set[int], limit: int
) -> list[tuple[int, Entry]]:
    """The entries reordered by their boosts and buries (see the module's docstring).

    A mover applied when it named an entry shown before or after the move (within ``limit``).
    """
    keyed = []
    for position, (rank, entry) in enumerate(kept):
        named = index.item_moves.get(entry.key, ())
        if entry.category is not None and index.category_moves:
            named += index.category_moves.get(entry.category, ())
        shift = sum(step for _id, step in named)
        keyed.append((position + shift, shift, position, rank, entry, named))
    # at one effective rank a boosted entry goes before, a buried one after, the entries it
    # passed: it moves exactly its strength when nothing else moves
    keyed.sort(key=lambda row: (row[0], row[1], row[2]))
    for final, (_effective, _shift, position, _rank, _entry, named) in enumerate(keyed):
        if named and (position < limit or final < limit):
            applied.update(rule_id for rule_id, _step in named)
    return [(rank, entry) for _effective, _shift, _position, rank, entry, _named in keyed]
