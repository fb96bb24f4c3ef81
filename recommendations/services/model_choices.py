"""What a model version chose for the shop on validation data, as rows staff can read.

The training report records each choice of the search (``report["choices"]``: filters, sequence length,
dropout, batch size, blend, repeat weight, propensity model); this module turns it into labelled rows
for the admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recommendations.models import ModelVersion

LABELS = {
    "filters": "Rare-item and short-history filters",
    "max_sequence_length": "Events per shopper the network reads",
    "dropout": "Network dropout (regularisation)",
    "batch_size": "Training batch size",
    "blend": "Blend of the network and the candidate sources",
    "mode": "Weight of the shopper's own recent items (repeats)",
    "propensity": "Purchase-propensity model (validation figures: ROC-AUC)",
}


@dataclass(frozen=True)
class ChoiceRow:
    """One choice: what it is, the value taken, how it was taken and the validation figures behind it."""

    label: str
    value: str
    how: str
    figures: str


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items() if v not in (0, 0.0, None))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _figures(choice: dict) -> str:
    tried = choice.get("validation") or {}
    parts = []
    for candidate, figure in tried.items():
        score = figure.get("NDCG@10") if isinstance(figure, dict) else figure
        parts.append(
            f"{candidate}: {score:.4f}" if isinstance(score, int | float) else f"{candidate}: {score}"
        )
    if choice.get("reason"):
        parts.append(str(choice["reason"]))
    return "; ".join(parts)


def version_choices(version: ModelVersion) -> list[ChoiceRow]:
    """The version's choices in a fixed order; empty for versions trained before choices were recorded."""
    choices = (version.report or {}).get("choices") or {}
    rows = []
    for key, label in LABELS.items():
        choice = choices.get(key)
        if not isinstance(choice, dict):
            continue
        how = "chosen on validation" if choice.get("searched") else "set in settings"
        rows.append(ChoiceRow(label, _text(choice.get("value")), how, _figures(choice)))
    return rows
