"""The merchandising rules in force, as plain values kept per process.

Every served list asks for its placement's rules: the rows are read from the database at most
every ``MERCHANDISING_CHECK_SECONDS`` and at once in the process that saved or deleted a rule
(``post_save`` / ``post_delete``, after the commit), so a list costs no query for them. Each
rule keeps its window; which rules are in force is decided per list from the held rows, so a
rule starts and ends on time without a new read.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from recommendations.conf import recommender_settings
from recommendations.core.merchandising import Rule, RuleIndex, index_rules

logger = logging.getLogger(__name__)

__all__ = ["HeldRule", "PlacementRules", "connect", "forget_rules", "placement_rules", "rules_in_force"]


@dataclass(frozen=True)
class HeldRule:
    """A rule as this process holds it: the core's rule, its placement ("" = all) and window."""

    rule: Rule
    placement: str
    starts_at: datetime
    ends_at: datetime | None

    def in_force(self, placement: str, now: datetime) -> bool:
        """True on ``placement`` (or all) between the start and the end."""
        return (
            (not self.placement or self.placement == placement)
            and self.starts_at <= now
            and (self.ends_at is None or now < self.ends_at)
        )


@dataclass(frozen=True)
class PlacementRules:
    """A placement's rules in force between ``since`` and ``until`` (wall-clock seconds):
    indexed for lists (``index``, None when no rule is in force)."""

    index: RuleIndex | None
    since: float
    until: float


class _Held:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked_at = -math.inf
        self.rules: tuple[HeldRule, ...] = ()
        # placement -> its rules in force, until the next start or end (replaced at each read)
        self.placements: dict[str, PlacementRules] = {}


_held = _Held()


def forget_rules() -> None:
    """Read the rules again at the next list (after a change; tests)."""
    with _held.lock:
        _held.checked_at = -math.inf


def load_rules(now: datetime | None = None) -> tuple[HeldRule, ...]:
    """Every active rule not ended yet (in force or scheduled), from the database."""
    from recommendations.models import MerchandisingRule

    now = now or timezone.now()
    rows = MerchandisingRule.objects.filter(active=True).filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
    held = []
    for row in rows.order_by("pk"):
        rule = Rule(
            id=row.pk,
            action=row.action,
            item_key=row.item_key,
            category=row.category_key,
            position=row.position,
            strength=row.strength,
        )
        held.append(HeldRule(rule, row.placement, row.starts_at, row.ends_at))
    return tuple(held)


def _current() -> tuple[tuple[HeldRule, ...], dict[str, PlacementRules]]:
    """The held rules (read again when stale) and their per-placement views; never raises."""
    try:
        with _held.lock:
            if time.monotonic() - _held.checked_at >= recommender_settings.MERCHANDISING_CHECK_SECONDS:
                # stamped first: while the database fails it is asked again only every few
                # seconds, and the rules read last stay in force
                _held.checked_at = time.monotonic()
                _held.rules = load_rules()
                _held.placements = {}
            return _held.rules, _held.placements
    except Exception:  # merchandising must never fail a list: serve it as the model made it
        logger.exception("the merchandising rules could not be read")
        return (), {}


def held_rules() -> tuple[HeldRule, ...]:
    """The rules this process holds, read again when stale; never raises (errors are logged)."""
    return _current()[0]


def placement_rules(placement: str, now: datetime | None = None) -> PlacementRules:
    """``placement``'s rules in force at ``now`` (default: now), indexed once per set and window.

    Costs a dictionary lookup per list until one of the placement's rules starts or ends, or the
    rules are read again.
    """
    held, placements = _current()
    moment = now.timestamp() if now is not None else time.time()
    view = placements.get(placement)
    if view is not None and view.since <= moment < view.until:
        return view
    mine = [entry for entry in held if not entry.placement or entry.placement == placement]
    boundaries = [b.timestamp() for entry in mine for b in (entry.starts_at, entry.ends_at) if b is not None]
    in_force = tuple(entry.rule for entry in mine if entry.in_force(placement, now or timezone.now()))
    view = PlacementRules(
        index=index_rules(in_force) if in_force else None,
        since=max((b for b in boundaries if b <= moment), default=-math.inf),
        until=min((b for b in boundaries if b > moment), default=math.inf),
    )
    placements[placement] = view  # the dict of the rules it was built from: a newer read replaced it
    return view


def rules_in_force(placement: str, now: datetime | None = None) -> tuple[Rule, ...]:
    """The rules that apply to a list of ``placement`` now (placement's own and all-placement ones)."""
    index = placement_rules(placement, now).index
    return index.rules if index is not None else ()


def next_change(placement: str) -> float | None:
    """Wall-clock time of the next start or end of a rule of ``placement`` (None: none ahead).

    A list reused or replayed must not outlive it (``serving.reuse``).
    """
    until = placement_rules(placement).until
    return until if until != math.inf else None


def _on_rule_changed(**_: Any) -> None:
    transaction.on_commit(forget_rules)


def connect() -> None:
    """Forget the held rules in this process whenever one is saved or deleted (after the commit)."""
    from django.db.models.signals import post_delete, post_save

    from recommendations.models import MerchandisingRule

    post_save.connect(
        _on_rule_changed, sender=MerchandisingRule, dispatch_uid="recommendations.merchandising.saved"
    )
    post_delete.connect(
        _on_rule_changed, sender=MerchandisingRule, dispatch_uid="recommendations.merchandising.deleted"
    )
