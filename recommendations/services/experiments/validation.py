"""What staff may save as an experiment: its schedule, its placement and its arms.

The admin form calls these and shows each message next to the field; services creating
experiments in code call the same functions. Each returns the reasons it refuses (empty: fine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext

__all__ = ["ArmInput", "arm_errors", "overlap_error", "overlapping", "schedule_errors"]

# Placements whose list is the same for every shopper (publicly cached): an experiment there
# would have nobody to split.
SHARED_PLACEMENTS = frozenset({"popular"})


@dataclass(frozen=True)
class ArmInput:
    """One arm as entered: name, strategy, pinned version (or None) and share in percent."""

    name: str
    strategy: str
    model_version: Any
    share: int


def schedule_errors(*, placement: str, starts_at: datetime | None, ends_at: datetime | None) -> list[str]:
    """A stop before the start, or a placement no experiment can split."""
    errors = []
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        errors.append(gettext("The end must be after the start."))
    if placement in SHARED_PLACEMENTS:
        errors.append(
            gettext("The %(placement)s block is the same for every shopper: no experiment can split it.")
            % {"placement": placement}
        )
    return errors


def overlapping(
    *, placement: str, starts_at: datetime, ends_at: datetime | None, exclude_pk: Any = None
) -> list[Any]:
    """Other experiments on ``placement`` whose time overlaps ``[starts_at, ends_at)``.

    At most one experiment runs per placement: a shopper's list can follow only one of them.
    """
    from recommendations.models import Experiment

    others = Experiment.objects.filter(placement=placement).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=starts_at)
    )
    if ends_at is not None:
        others = others.filter(starts_at__lt=ends_at)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    return list(others.order_by("starts_at"))


def overlap_error(others: Sequence[Any]) -> str:
    """The message naming the experiments that overlap (``overlapping``)."""
    return gettext("Another experiment runs on this placement at the same time: %(names)s.") % {
        "names": ", ".join(f"“{other.name}”" for other in others)
    }


def arm_errors(arms: Sequence[ArmInput]) -> list[str]:
    """At least two arms with distinct names, shares summing to 100 %, a version for each model arm."""
    errors = []
    if len(arms) < 2:
        errors.append(gettext("An experiment needs at least two arms."))
    total = sum(arm.share or 0 for arm in arms)
    if arms and total != 100:
        errors.append(gettext("The arms' shares sum to %(total)d %%, not 100 %%.") % {"total": total})
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        errors.append(gettext("Two arms have the same name."))
    for arm in arms:
        if arm.strategy == "model" and arm.model_version is None:
            errors.append(
                gettext("Arm “%(name)s” serves the behaviour network: choose the model version it pins.")
                % {"name": arm.name}
            )
        if arm.strategy != "model" and arm.model_version is not None:
            errors.append(
                gettext("Arm “%(name)s” does not serve the network: leave its model version empty.")
                % {"name": arm.name}
            )
    return errors
