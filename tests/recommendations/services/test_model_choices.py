"""The propensity head's choice shows among the model version's choices in the admin."""

from __future__ import annotations

from recommendations.models import ModelVersion
from recommendations.services.model_choices import version_choices


def test_the_propensity_choice_is_a_row_with_every_candidates_validation_auc():
    # given the report of a training run whose propensity head chose the logistic regression
    choice = {
        "value": "logistic",
        "searched": True,
        "validation": {"logistic": 0.6349, "network": 0.6012, "blend": 0.6301},
        "reason": "ROC-AUC on the newest time cut: the simplest candidate within one standard error",
    }
    version = ModelVersion(number=3, report={"choices": {"propensity": choice}})

    # when
    rows = version_choices(version)

    # then one row names the model, how it was chosen and the figures behind it
    (row,) = [r for r in rows if r.label.startswith("Purchase-propensity model")]
    assert row.value == "logistic"
    assert row.how == "chosen on validation"
    assert row.figures.startswith("logistic: 0.6349; network: 0.6012; blend: 0.6301; ROC-AUC on the newest")
