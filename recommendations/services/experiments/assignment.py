"""Which arm a shopper is in: a salted hash, stored at first exposure, the user's after login.

A shopper is a user id when signed in, else the browser's visitor id (a shopper with neither,
e.g. tracking refused, is in no experiment). The arm is ``sha256(salt:subject)`` in buckets of
0.01 % laid out by the arms' shares, so every process computes the same arm; it is stored the
first time the shopper is shown the placement, and from then on read back: the stored row wins
over the hash (the visitor's arm carried over to the user at login, an arm whose share changed).
Stored rows are kept in this process for a minute (they never change but for erasure).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from recommendations.services.experiments.plans import ArmPlan, ExperimentPlan

__all__ = ["Exposure", "arm_for", "bucket", "carry_over_to_user", "expose"]

BUCKETS = 10_000
# Stored assignments kept per process: seconds, and at most this many (then emptied).
KEEP_SECONDS = 60.0
KEEP_MAX = 20_000

_kept: dict[tuple[int, str], tuple[int, int, float]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Exposure:
    """A shopper shown an experiment's placement: the experiment, their arm and their assignment row."""

    experiment_id: int
    arm: ArmPlan
    assignment_id: int


def subject_of(user_id: Any, visitor_id: str) -> str | None:
    """The hashed identity of a shopper ("u:<id>" or "v:<visitor id>"), None for nobody."""
    if user_id is not None:
        return f"u:{user_id}"
    return f"v:{visitor_id}" if visitor_id else None


def bucket(salt: str, subject: str) -> int:
    """The shopper's bucket in ``[0, BUCKETS)``: the same in every process, for every request."""
    digest = hashlib.sha256(f"{salt}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def arm_for(plan: ExperimentPlan, subject: str) -> ArmPlan:
    """The arm whose share covers the shopper's bucket (the arms in order, shares in percent)."""
    point = bucket(plan.salt, subject)
    edge = 0
    for arm in plan.arms:
        edge += arm.share * BUCKETS // 100
        if point < edge:
            return arm
    return plan.arms[-1]  # shares summing to less than 100 (refused on saving) land on the last arm


def in_audience(plan: ExperimentPlan, user_id: Any) -> bool:
    """Whether the experiment's audience includes a signed-in (or anonymous) shopper."""
    if plan.audience == "logged_in":
        return user_id is not None
    if plan.audience == "anonymous":
        return user_id is None
    return True


def _stored(plan: ExperimentPlan, user_id: Any, visitor_id: str) -> tuple[int, int] | None:
    """``(assignment id, arm id)`` of the shopper's stored row, or None."""
    from recommendations.models import ExperimentAssignment

    rows = ExperimentAssignment.objects.filter(experiment_id=plan.id)
    rows = rows.filter(user_id=user_id) if user_id is not None else rows.filter(visitor_id=visitor_id)
    return rows.values_list("pk", "arm_id").first()


def _erased(user_id: Any, visitor_id: str) -> bool:
    """True for a shopper who asked to be forgotten: they are never assigned again."""
    from recommendations.models.privacy import ErasedSubject, subject_hash

    subject = subject_hash("user", user_id) if user_id is not None else subject_hash("visitor", visitor_id)
    return ErasedSubject.objects.filter(subject_hash=subject).exists()


def _store(plan: ExperimentPlan, arm: ArmPlan, user_id: Any, visitor_id: str) -> tuple[int, int] | None:
    """Store the shopper's first exposure (a row written meanwhile by another process wins)."""
    from recommendations.models import ExperimentAssignment

    if _erased(user_id, visitor_id):
        return None
    row = ExperimentAssignment(
        experiment_id=plan.id,
        arm_id=arm.id,
        user_id=user_id,
        visitor_id="" if user_id is not None else visitor_id[:64],
    )
    ExperimentAssignment.objects.bulk_create([row], ignore_conflicts=True)
    return _stored(plan, user_id, visitor_id)


def expose(plan: ExperimentPlan, *, user_id: Any, visitor_id: str) -> Exposure | None:
    """The shopper's arm in ``plan``, stored at this first exposure; None when they are not in it.

    Not in it: outside the audience, nobody (no user, no visitor id), erased, or in an arm the
    guardrail stopped (they get the placement's usual list, and the experiment records nothing).
    """
    subject = subject_of(user_id, visitor_id)
    if subject is None or not in_audience(plan, user_id) or not plan.arms:
        return None
    key = (plan.id, subject)
    now = time.monotonic()
    kept = _kept.get(key)
    if kept is not None and kept[2] > now:
        assignment_id, arm_id = kept[0], kept[1]
    else:
        found = _stored(plan, user_id, visitor_id)
        if found is None:
            found = _store(plan, arm_for(plan, subject), user_id, visitor_id)
        if found is None:
            return None
        assignment_id, arm_id = found
        with _lock:
            if len(_kept) >= KEEP_MAX:
                _kept.clear()
            _kept[key] = (assignment_id, arm_id, now + KEEP_SECONDS)
    arm = plan.arm(arm_id)
    if arm is None or arm.stopped:
        return None
    return Exposure(plan.id, arm, assignment_id)


def carry_over_to_user(visitor_id: str, user_id: Any) -> int:
    """At login: the visitor's assignments become the user's, in every experiment where the user
    has none yet (one shopper, one arm, one unit of analysis); returns how many."""
    from recommendations.models import ExperimentAssignment

    if not visitor_id or user_id is None:
        return 0
    users_experiments = ExperimentAssignment.objects.filter(user_id=user_id).values("experiment_id")
    moved = (
        ExperimentAssignment.objects.filter(Q(visitor_id=visitor_id) & Q(user__isnull=True))
        .exclude(experiment_id__in=users_experiments)
        .update(user_id=user_id)
    )
    # nothing kept in a process names the user in those experiments: only stored rows are kept
    return int(moved)


def carry_over_at_login(sender: Any, *, visitor_id: str, user: Any, **_: Any) -> int:
    """``behavior.signals.visitor_merged`` receiver: :func:`carry_over_to_user`."""
    return carry_over_to_user(visitor_id, getattr(user, "pk", None))


def forget_kept() -> None:
    """Drop the assignments kept in this process (after a login or an erasure; tests)."""
    with _lock:
        _kept.clear()
