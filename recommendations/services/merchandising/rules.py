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
from recommendations.core.merchandising import Rule

logger = logging.getLogger(__name__)

__all__ = ["HeldRule", "connect", "forget_rules", "rules_in_force"]


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


class _Held:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked_at = -math.inf
        self.rules: tuple[HeldRule, ...] = ()


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


def held_rules() -> tuple[HeldRule, ...]:
    """The rules this process holds, read again when stale; never raises (errors are logged)."""
    try:
        with _held.lock:
            if time.monotonic() - _held.checked_at >= recommender_settings.MERCHANDISING_CHECK_SECONDS:
                # stamped first: while the database fails it is asked again only every few
                # seconds, and the rules read last stay in force
                _held.checked_at = time.monotonic()
                _held.rules = load_rules()
            return _held.rules
    except Exception:  # merchandising must never fail a list: serve it as the model made it
        logger.exception("the merchandising rules could not be read")
        return ()


def rules_in_force(placement: str, now: datetime | None = None) -> tuple[Rule, ...]:
    """The rules that apply to a list of ``placement`` now (placement's own and all-placement ones)."""
    held = held_rules()
    if not held:
        return ()
    now = now or timezone.now()
    return tuple(entry.rule for entry in held if entry.in_force(placement, now))


def next_change(placement: str, now: datetime | None = None) -> datetime | None:
    """The next start or end of a rule of ``placement`` after ``now`` (None: none ahead).

    A list reused or replayed must not outlive it (``serving.reuse``).
    """
    now = now or timezone.now()
    moments = [
        moment
        for entry in held_rules()
        if not entry.placement or entry.placement == placement
        for moment in (entry.starts_at, entry.ends_at)
        if moment is not None and moment > now
    ]
    return min(moments, default=None)


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
