"""Rule-based tags declared as data.

A rule is a dict::

    {"code": "high_value", "feature": "monetary", "operator": ">", "percentile": 90,
     "weight": 1.0, "and": [{"feature": "frequency", "operator": ">=", "threshold": 2}]}

Exactly one of ``code`` (a built-in tag, whose label and description come from the
translated catalogue) or ``label`` (the project's own wording, with an optional
``description``: data, shown as written).

``threshold`` (a number) or ``percentile`` (0-100, taken among users whose value is known
and non-zero, so "top 10% of spenders" means of those who spent) — exactly one. ``and``
(optional) adds conditions of the same shape that must all hold. ``{category}`` in the
label and feature expands the rule once per category with an affinity column
(``"affinity:{category}"`` -> "fan of Electronics"). A missing value never fires a rule.
Every tag carries its reasons: feature, value, operator and threshold.

A tag is stored as codes and numbers, never as a sentence: ``{"code", "label", "params",
"weight", "reasons"}`` where ``label`` is the tag's key (the ``ProfileTag`` row the admin
filters on: ``"high_value"``, ``"fan_of:Electronics"``, or a custom rule's label as written),
``params`` holds ``{"category": ...}`` for expanded rules, and a custom rule's tag also
carries its ``description``. The reader's language is applied when the tag is shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recommendations.core.profiles.features import AFFINITY_PREFIX

OPERATORS = {
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
    "==": np.equal,
    "!=": np.not_equal,
}
_RULE_KEYS = {
    "code",
    "label",
    "feature",
    "operator",
    "threshold",
    "percentile",
    "weight",
    "description",
    "and",
}
_CONDITION_KEYS = {"feature", "operator", "threshold", "percentile"}


class RuleError(ValueError):
    """An invalid tag rule."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _condition_errors(condition: Any, where: str) -> list[str]:
    if not isinstance(condition, Mapping):
        return [f"{where} must be a dict"]
    errors: list[str] = []
    feature = condition.get("feature")
    if not isinstance(feature, str) or not feature.strip():
        errors.append(f"{where}: 'feature' must be a non-empty string")
    if condition.get("operator") not in OPERATORS:
        errors.append(
            f"{where}: 'operator' must be one of {' '.join(OPERATORS)}, not {condition.get('operator')!r}"
        )
    has_threshold = "threshold" in condition
    has_percentile = "percentile" in condition
    if has_threshold == has_percentile:
        errors.append(f"{where}: give exactly one of 'threshold' or 'percentile'")
    elif has_threshold and not _is_number(condition["threshold"]):
        errors.append(f"{where}: 'threshold' must be a number")
    elif has_percentile and not (_is_number(condition["percentile"]) and 0 <= condition["percentile"] <= 100):
        errors.append(f"{where}: 'percentile' must be a number between 0 and 100")
    return errors


def validate_rule(rule: Any) -> list[str]:
    """Every problem of one rule, as sentences (empty list: the rule is valid)."""
    if not isinstance(rule, Mapping):
        return ["a rule must be a dict"]
    errors: list[str] = []
    unknown = sorted(set(rule) - _RULE_KEYS)
    if unknown:
        errors.append(f"unknown key(s) {', '.join(unknown)}")
    label = rule.get("label")
    code = rule.get("code")
    if ("code" in rule) == ("label" in rule):
        errors.append("give exactly one of 'code' (a built-in tag) or 'label' (your own wording)")
    elif "label" in rule and (not isinstance(label, str) or not label.strip()):
        errors.append("'label' must be a non-empty string")
    elif "code" in rule and (not isinstance(code, str) or not code.strip()):
        errors.append("'code' must be a non-empty string")
    if "code" in rule and "description" in rule:
        errors.append("a built-in 'code' brings its own description; use 'label' to word your own")
    errors += _condition_errors({k: v for k, v in rule.items() if k in _CONDITION_KEYS}, "rule")
    if "weight" in rule and not _is_number(rule["weight"]):
        errors.append("'weight' must be a number")
    if "description" in rule and not isinstance(rule["description"], str):
        errors.append("'description' must be a string")
    extra = rule.get("and", [])
    if not isinstance(extra, list):
        errors.append("'and' must be a list of conditions")
    else:
        for i, condition in enumerate(extra):
            errors += _condition_errors(condition, f"and[{i}]")
            if isinstance(condition, Mapping) and set(condition) - _CONDITION_KEYS:
                errors.append(
                    f"and[{i}]: unknown key(s) {', '.join(sorted(set(condition) - _CONDITION_KEYS))}"
                )
    templated = "{category}" in str(rule.get("feature", "")) or "{category}" in str(label or "")
    if templated and "{category}" not in str(rule.get("feature", "")):
        errors.append("'{category}' in the label needs '{category}' in the feature too")
    return errors


def _percentile(values: np.ndarray, q: float) -> float | None:
    known = values[np.isfinite(values) & (values != 0)]
    if not len(known):
        return None
    return float(np.percentile(known, q))


def resolve_thresholds(
    rules: Sequence[Mapping[str, Any]], columns: Sequence[str], values: np.ndarray
) -> list[dict[str, Any]]:
    """Expand ``{category}`` rules and turn percentiles into numbers for this population.

    Returns rules of the form ``{"code", "label", "params", "weight"[, "description"], "conditions": [...]}``
    (``label`` is the tag's key, see the module docstring)
    where every condition has a numeric ``threshold`` (and the ``percentile`` it came
    from). Rules on a feature that is absent (e.g. no propensity) are left out. The result
    is JSON-able and is stored so an incremental rebuild uses the same thresholds.
    """
    index = {name: j for j, name in enumerate(columns)}
    categories = [c[len(AFFINITY_PREFIX) :] for c in columns if c.startswith(AFFINITY_PREFIX)]
    resolved: list[dict[str, Any]] = []
    for rule in rules:
        base_conditions = [
            {k: rule[k] for k in ("feature", "operator", "threshold", "percentile") if k in rule},
            *[dict(c) for c in rule.get("and", [])],
        ]
        expansions = categories if "{category}" in rule["feature"] else [None]
        for category in expansions:
            conditions: list[dict[str, Any]] = []
            for condition in base_conditions:
                feature = condition["feature"]
                if category is not None:
                    feature = feature.replace("{category}", category)
                if feature not in index:
                    conditions = []
                    break
                item: dict[str, Any] = {"feature": feature, "operator": condition["operator"]}
                if "percentile" in condition:
                    threshold = _percentile(values[:, index[feature]], float(condition["percentile"]))
                    if threshold is None:
                        conditions = []
                        break
                    item["percentile"] = condition["percentile"]
                    item["threshold"] = round(threshold, 6)
                else:
                    item["threshold"] = float(condition["threshold"])
                conditions.append(item)
            if not conditions:
                continue
            resolved.append(_resolved_rule(rule, category, conditions))
    return resolved


def _resolved_rule(
    rule: Mapping[str, Any], category: str | None, conditions: list[dict[str, Any]]
) -> dict[str, Any]:
    """One resolved rule: a built-in code keyed ``code[:category]``, or a custom label as written."""
    params = {} if category is None else {"category": category}
    resolved: dict[str, Any] = {"code": rule.get("code", ""), "params": params}
    if rule.get("code"):
        resolved["label"] = rule["code"] if category is None else f"{rule['code']}:{category}"
    else:
        label, description = rule["label"], rule.get("description", "")
        if category is not None:
            label = label.replace("{category}", category)
            description = description.replace("{category}", category)
        resolved["label"] = label
        resolved["description"] = description
    resolved["weight"] = float(rule.get("weight", 1.0))
    resolved["conditions"] = conditions
    return resolved


def evaluate_rules(
    resolved: Sequence[Mapping[str, Any]], columns: Sequence[str], values: np.ndarray
) -> list[list[dict[str, Any]]]:
    """Tags of each row of ``values`` (raw, unfilled features): ``[{code, label, params, weight, reasons}]``.

    Tags are ordered by weight (highest first); each reason is
    ``{"feature", "value", "operator", "threshold"[, "percentile"]}``. A custom rule's tag
    also carries its ``description``. Rules resolved before tags had codes (stored in an
    older run's params: label and description, no code) give tags of that older shape.
    """
    index = {name: j for j, name in enumerate(columns)}
    n = len(values)
    tags: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for rule in resolved:
        mask = np.ones(n, dtype=bool)
        for condition in rule["conditions"]:
            column = values[:, index[condition["feature"]]]
            with np.errstate(invalid="ignore"):
                mask &= np.isfinite(column) & OPERATORS[condition["operator"]](column, condition["threshold"])
        for i in np.flatnonzero(mask):
            reasons = []
            for condition in rule["conditions"]:
                reason = {
                    "feature": condition["feature"],
                    "value": round(float(values[i, index[condition["feature"]]]), 4),
                    "operator": condition["operator"],
                    "threshold": condition["threshold"],
                }
                if "percentile" in condition:
                    reason["percentile"] = condition["percentile"]
                reasons.append(reason)
            tag: dict[str, Any] = {
                "code": rule.get("code", ""),
                "label": rule["label"],
                "params": dict(rule.get("params", {})),
                "weight": rule["weight"],
                "reasons": reasons,
            }
            if "description" in rule:
                tag["description"] = rule["description"]
            tags[i].append(tag)
    for row in tags:
        row.sort(key=lambda tag: -tag["weight"])
    return tags
