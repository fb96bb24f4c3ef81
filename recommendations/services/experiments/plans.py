"""The experiments that are running, as plain values kept per process.

Serving asks for a placement's experiment on every list: the rows are read from the database
at most every ``EXPERIMENT_CHECK_SECONDS`` (and at once in the process that saved a change), so
a list on a placement without an experiment costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from recommendations.conf import recommender_settings

logger = logging.getLogger(__name__)

__all__ = ["ArmPlan", "ExperimentPlan", "forget_plans", "running_plan"]


@dataclass(frozen=True)
class ArmPlan:
    """One arm as serving needs it."""

    id: int
    name: str
    strategy: str
    version_id: int | None
    share: int
    stopped: bool


@dataclass(frozen=True)
class ExperimentPlan:
    """One experiment as serving needs it; ``arms`` in their order (the first is the baseline)."""

    id: int
    placement: str
    salt: str
    audience: str
    starts_at: datetime
    ends_at: datetime | None
    arms: tuple[ArmPlan, ...]

    def is_running(self, now: datetime) -> bool:
        """True between the start and the end."""
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def arm(self, arm_id: int) -> ArmPlan | None:
        """The arm with this id, or None."""
        return next((arm for arm in self.arms if arm.id == arm_id), None)


class _Plans:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked_at = -math.inf
        self.by_placement: dict[str, list[ExperimentPlan]] = {}


_plans = _Plans()


def forget_plans() -> None:
    """Read the experiments again at the next list (after a change; tests)."""
    with _plans.lock:
        _plans.checked_at = -math.inf


def load_plans(now: datetime | None = None) -> dict[str, list[ExperimentPlan]]:
    """Every experiment not ended yet (running or scheduled), by placement, from the database."""
    from recommendations.models import Experiment

    now = now or timezone.now()
    plans: dict[str, list[ExperimentPlan]] = {}
    for experiment in (
        Experiment.objects.filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .prefetch_related("arms")
        .order_by("starts_at", "pk")
    ):
        arms = tuple(
            ArmPlan(
                arm.pk, arm.name, arm.strategy, arm.model_version_id, arm.share, arm.stopped_at is not None
            )
            for arm in sorted(experiment.arms.all(), key=lambda arm: arm.pk)
        )
        plan = ExperimentPlan(
            experiment.pk,
            experiment.placement,
            experiment.salt,
            experiment.audience,
            experiment.starts_at,
            experiment.ends_at,
            arms,
        )
        plans.setdefault(plan.placement, []).append(plan)
    return plans


def running_plan(placement: str, now: datetime | None = None) -> ExperimentPlan | None:
    """The experiment running on ``placement`` now, or None; never raises (errors are logged)."""
    try:
        with _plans.lock:
            if time.monotonic() - _plans.checked_at >= recommender_settings.EXPERIMENT_CHECK_SECONDS:
                # stamped first: while the database fails, it is asked again only every few
                # seconds and the plans read last stay in force
                _plans.checked_at = time.monotonic()
                _plans.by_placement = load_plans()
            candidates = _plans.by_placement.get(placement)
    except Exception:  # experiments must never fail a list: serve it as if none ran
        logger.exception("the running experiments could not be read")
        return None
    if not candidates:
        return None
    now = now or timezone.now()
    return next((plan for plan in candidates if plan.is_running(now)), None)
