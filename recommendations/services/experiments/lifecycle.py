"""An experiment over time: the guardrail that stops a losing arm, the results kept at the end,
and "promote the winner".

Guardrail
    An arm (not the baseline) is stopped when the upper end of the always-valid ``1 -
    EXPERIMENT_GUARDRAIL_ALPHA`` interval of its conversion minus the baseline's is below
    ``-EXPERIMENT_GUARDRAIL_MARGIN`` times the baseline's conversion, once both arms have
    ``EXPERIMENT_GUARDRAIL_MIN_SHOPPERS`` shoppers. Its shoppers then get the placement's usual
    list and the experiment records nothing more for them. Being always valid, the check may run
    every hour (``recommendations.check_experiments``) without raising its false-stop rate.

Final results
    When an experiment has ended, its results are computed once more and kept on it: the
    results page shows them from then on, and retention may delete its impressions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from recommendations.conf import recommender_settings
from recommendations.services.experiments.attribution import experiment_days, gather
from recommendations.services.experiments.plans import forget_plans
from recommendations.services.experiments.results import compare_daily, compute_results, daily_summaries
from recommendations.services.promotion import PromotionDecision, decide_promotion

logger = logging.getLogger(__name__)

__all__ = [
    "PromotionRefused",
    "apply_guardrail",
    "check_experiments",
    "finalize",
    "guard_verdict",
    "promote_winner",
]


def apply_guardrail(experiment: Any, *, now: datetime | None = None) -> list[str]:
    """Stop the arms whose conversion is significantly worse than the baseline's; their names."""
    now = now or timezone.now()
    alpha = recommender_settings.EXPERIMENT_GUARDRAIL_ALPHA
    margin = recommender_settings.EXPERIMENT_GUARDRAIL_MARGIN
    minimum = recommender_settings.EXPERIMENT_GUARDRAIL_MIN_SHOPPERS
    arms = list(experiment.arms.order_by("pk"))
    days = experiment_days(experiment, now)
    if len(arms) < 2 or not days:
        return []
    activity = gather(experiment, days)
    baseline = daily_summaries(activity[arms[0].pk])["conversion"]
    stopped = []
    for arm in arms[1:]:
        if arm.stopped_at is not None:
            continue
        series = daily_summaries(activity[arm.pk])["conversion"]
        if series[-1].n < minimum or baseline[-1].n < minimum:
            continue
        interval = compare_daily(series, baseline, alpha=alpha)
        floor = -margin * baseline[-1].mean
        if interval is None or not interval.upper < floor:
            continue
        reason = gettext(
            "Guardrail: conversion is significantly worse than the baseline's (difference %(estimate).4f, "
            "always-valid %(level)s interval [%(lower).4f, %(upper).4f], p = %(p).4f; threshold %(floor).4f)."
        ) % {
            "estimate": interval.estimate,
            "level": f"{1 - alpha:.0%}",
            "lower": interval.lower,
            "upper": interval.upper,
            "p": interval.p_value,
            "floor": floor,
        }
        if (
            type(arm)
            .objects.filter(pk=arm.pk, stopped_at__isnull=True)
            .update(stopped_at=now, stopped_reason=reason)
        ):
            logger.warning("experiment %s: arm %r stopped by the guardrail", experiment.pk, arm.name)
            stopped.append(arm.name)
    if stopped:
        transaction.on_commit(forget_plans)
    return stopped


def finalize(experiment: Any, *, now: datetime | None = None) -> bool:
    """Keep the results of an ended experiment on it (once); True when they were kept now."""
    now = now or timezone.now()
    if experiment.final_results is not None or experiment.ends_at is None or experiment.ends_at > now:
        return False
    experiment.final_results = compute_results(experiment, now=now)
    experiment.finalized_at = now
    experiment.save(update_fields=["final_results", "finalized_at"])
    logger.info("experiment %s ended: its results are kept", experiment.pk)
    return True


def check_experiments(*, now: datetime | None = None) -> dict[str, int]:
    """The periodic job: the guardrail on running experiments, final results of ended ones."""
    from recommendations.models import Experiment

    now = now or timezone.now()
    counts = {"checked": 0, "arms_stopped": 0, "finalized": 0}
    running = Experiment.objects.filter(starts_at__lte=now).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=now)
    )
    for experiment in running:
        counts["checked"] += 1
        counts["arms_stopped"] += len(apply_guardrail(experiment, now=now))
    for experiment in Experiment.objects.filter(ends_at__lte=now, final_results__isnull=True):
        counts["finalized"] += int(finalize(experiment, now=now))
    return counts


class PromotionRefused(Exception):
    """The arm has no model version to promote (a strategy arm, or its version is gone)."""


def guard_verdict(version: Any) -> PromotionDecision:
    """What the promotion guard said of ``version`` on its training holdout (staff may overrule it)."""
    return decide_promotion(
        metrics=version.metrics or {},
        baseline_metrics=version.baseline_metrics or {},
        active_metrics=version.active_metrics,
        active_number=version.compared_with.number if version.compared_with_id else None,
    )


@dataclass
class Promotion:
    """What "promote the winner" did: the version now active and the guard's verdict on it."""

    version: Any
    verdict: PromotionDecision


def promote_winner(experiment: Any, arm: Any, *, by: str, now: datetime | None = None) -> Promotion:
    """Activate ``arm``'s pinned version through the registry, end the experiment, keep its results.

    Recorded on the version (``promoted_by``, the reason naming the experiment) and on the
    experiment (``promoted_arm``, ``promoted_by``, ``promoted_at``). The guard's verdict is
    returned for the caller to show; it does not stop the promotion (staff decided).
    """
    from recommendations.services.registry import RegistryError, activate_version

    now = now or timezone.now()
    if arm.experiment_id != experiment.pk or arm.strategy != "model" or arm.model_version is None:
        raise PromotionRefused(gettext("This arm pins no model version: there is nothing to promote."))
    version = arm.model_version
    verdict = guard_verdict(version)
    reason = f"winner of experiment {experiment.pk} ({experiment.name}), arm {arm.name}, promoted by {by}"
    with transaction.atomic():
        try:
            activate_version(version, by=by, reason=reason)
        except RegistryError as exc:
            raise PromotionRefused(str(exc)) from exc
        experiment.promoted_arm = arm
        experiment.promoted_by = by[:150]
        experiment.promoted_at = now
        fields = ["promoted_arm", "promoted_by", "promoted_at"]
        if experiment.ends_at is None or experiment.ends_at > now:
            experiment.ends_at = now
            fields.append("ends_at")
        experiment.save(update_fields=fields)
        transaction.on_commit(forget_plans)
    finalize(experiment, now=now)
    logger.info(
        "experiment %s: arm %r promoted (model v%s) by %s", experiment.pk, arm.name, version.number, by
    )
    return Promotion(version, verdict)
