"""A served list's experiment arm: who is in which arm, and what that arm changes in the list.

Every list service asks :func:`exposure_for` with its placement and shopper. Outside any
experiment (or outside its audience) the list is built as always. Inside one, the arm's
strategy decides the candidate stages:

- ``model``: the usual chain with the arm's pinned version instead of the active one. A stored
  precomputed list is used only when that version computed it (so an arm pinned to the active
  version shares the stored lists, and after a promotion its lists are scored in real time from
  the pinned version, loaded once per process: ``registry.get_version_model``);
- ``covisitation``: the stored relations and popularity, no network;
- ``popularity``: popular items only.

The list carries its experiment, arm and assignment into its impression. A pinned version that
is gone or refused is logged and the shopper gets the list the active version makes, still
counted in their arm (intention to treat): the admin shows the missing version.
"""

from __future__ import annotations

import logging
from typing import Any

from recommendations.services.experiments.assignment import Exposure, expose
from recommendations.services.experiments.plans import running_plan
from recommendations.services.serving import model
from recommendations.services.serving.types import RecommendationResult

logger = logging.getLogger(__name__)

__all__ = ["COVISITATION", "MODEL", "POPULARITY", "exposure_for", "pinned_model", "tag"]

MODEL = "model"
POPULARITY = "popularity"
COVISITATION = "covisitation"


def shown(request: Any, record: bool | None) -> bool:
    """Whether the list is shown to a shopper (and so recorded): the rule of ``assembly.finish``."""
    return record if record is not None else request is not None


def exposure_for(placement: str, *, user_id: Any, visitor_id: str, shown: bool = True) -> Exposure | None:
    """The shopper's arm in the experiment running on ``placement`` (stored at this first
    exposure), or None; never raises: an error serves the usual list.

    A list nobody is shown (an export, a publicly cached answer: ``shown`` False) is no exposure:
    it is built as outside experiments and assigns nobody.
    """
    if not shown:
        return None
    plan = running_plan(placement)
    if plan is None:
        return None
    try:
        return expose(plan, user_id=user_id, visitor_id=visitor_id)
    except Exception:
        logger.exception("experiment %s: the shopper's arm could not be read", plan.id)
        return None


def strategy_of(exposure: Exposure | None) -> str | None:
    """The arm's strategy, or None outside experiments."""
    return exposure.arm.strategy if exposure is not None else None


def pinned_model(exposure: Exposure | None) -> Any:
    """The ``LoadedModel`` of a model arm's pinned version; None outside model arms or when the
    version is gone or refused (logged once per process: the caller serves the active one)."""
    if exposure is None or exposure.arm.strategy != MODEL:
        return None
    version_id = exposure.arm.version_id
    loaded = None
    if version_id is not None:
        from recommendations.services.registry import get_version_model

        loaded = get_version_model(version_id)
    if loaded is None:
        model.log_once(
            f"pinned:{exposure.arm.id}:{version_id}",
            "Experiment %s, arm %r: its model version is missing or refused; serving the active one",
            exposure.experiment_id,
            exposure.arm.name,
        )
    return loaded


def tag(result: RecommendationResult, exposure: Exposure | None) -> RecommendationResult:
    """Record the experiment, arm and assignment on the list (its impression carries them)."""
    if exposure is not None:
        result.experiment_id = exposure.experiment_id
        result.arm_id = exposure.arm.id
        result.assignment_id = exposure.assignment_id
    return result
