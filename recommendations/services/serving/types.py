"""Value objects of the serving layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recommendations.services.serving.explain import Reason


@dataclass
class Candidate:
    """A scored item key before business rules: where it came from and why."""

    key: str
    score: float
    reason: Reason
    source: str


@dataclass
class RecommendedItem:
    """One item of a served list (``position`` is 1-based)."""

    key: str
    item: Any
    score: float
    reason: str
    position: int
    source: str
    name: str = ""
    url: str = ""
    price: Any = None
    tracked_url: str = ""
    #: the reason's code (``explain.MESSAGES``); ``reason`` is its text in the reader's language
    reason_code: str = ""


@dataclass
class RecommendationResult:
    """A served list; ``recommendation_id`` ties later clicks and purchases to it."""

    recommendation_id: str
    model_version: int | None
    source: str
    placement: str = "default"
    items: list[RecommendedItem] = field(default_factory=list)
    #: set inside an online experiment (``experiment_arms.tag``): recorded with the impression
    experiment_id: int | None = None
    arm_id: int | None = None
    assignment_id: int | None = None
    #: the merchandising rules that applied to the list (``serving.merchandising``), recorded too
    merchandising_rule_ids: list[int] = field(default_factory=list)
    #: with exploration on (``exploration.explore``): each position's probability of showing its item
    propensities: list[float] | None = None

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def keys(self) -> list[str]:
        return [entry.key for entry in self.items]


@dataclass
class ReusableList:
    """A served list the API's fast path may replay: whose, and what it was built from.

    ``latest`` is the shopper's latest-event marker text; ``basis`` fingerprints the cache
    entries of their precomputed list and "not interested" marks; ``seconds`` bounds how
    long the replay may live; ``language`` is the one its reasons are worded in.
    """

    user_id: Any
    latest: str
    basis: tuple[str, str]
    result: RecommendationResult
    seconds: int
    language: str = ""


@dataclass
class ServedList:
    """A shopper's list as a face receives it: the list, whether it may be replayed, and the
    writes to make after the response (``state.ClosingWrites``; None when made already)."""

    result: RecommendationResult
    reusable: ReusableList | None = None
    closing: Any = None
