"""The default tag rules and the loading of ``RECOMMENDER["TAG_RULES"]``.

Rules are data (see ``recommendations.core.profiles.tags`` for their shape); a project
replaces the whole list in its settings. The default rules name built-in codes, whose
labels and descriptions are translated (``recommendations.services.profiles.texts``).
Invalid rules are reported at start-up by the system check ``recommendations.E010``.
"""

from __future__ import annotations

from typing import Any

from recommendations.conf import recommender_settings
from recommendations.core.profiles.tags import RuleError, validate_rule
from recommendations.services.profiles.texts import CATEGORY_CODES, TAG_TEXTS

DEFAULT_TAG_RULES: list[dict[str, Any]] = [
    {
        "code": "high_value",
        "feature": "monetary",
        "operator": ">",
        "percentile": 90,
        "weight": 3.0,
    },
    {
        "code": "loyal",
        "feature": "frequency",
        "operator": ">=",
        "threshold": 3,
        "weight": 2.0,
    },
    {
        "code": "new_customer",
        "feature": "tenure_days",
        "operator": "<=",
        "threshold": 14,
        "weight": 1.0,
    },
    {
        "code": "churn_risk",
        "feature": "purchase_recency_days",
        "operator": ">",
        "threshold": 60,
        "weight": 2.0,
        "and": [{"feature": "recency_days", "operator": ">", "threshold": 30}],
    },
    {
        "code": "cart_abandoner",
        "feature": "cart_abandonment_rate",
        "operator": ">=",
        "threshold": 0.75,
        "weight": 1.5,
        "and": [{"feature": "carts", "operator": ">=", "threshold": 2}],
    },
    {
        "code": "bargain_hunter",
        "feature": "price_level",
        "operator": "<=",
        "threshold": 0.8,
        "weight": 1.0,
        "and": [{"feature": "views", "operator": ">=", "threshold": 3}],
    },
    {
        "code": "likely_buyer",
        "feature": "propensity",
        "operator": ">=",
        "threshold": 0.6,
        "weight": 2.0,
    },
    {
        "code": "window_shopper",
        "feature": "views",
        "operator": ">=",
        "threshold": 15,
        "weight": 1.0,
        "and": [{"feature": "purchases", "operator": "==", "threshold": 0}],
    },
    {
        "code": "fan_of",
        "feature": "affinity:{category}",
        "operator": ">",
        "threshold": 0.5,
        "weight": 1.0,
        "and": [{"feature": "events", "operator": ">=", "threshold": 5}],
    },
]


def _code_errors(rule: dict[str, Any]) -> list[str]:
    """A built-in code must exist, and name a category exactly when its feature expands one."""
    code = rule.get("code")
    if not isinstance(code, str) or not code.strip():
        return []
    if code not in TAG_TEXTS:
        return [f"unknown 'code' {code!r} (built-in: {', '.join(sorted(TAG_TEXTS))}); give 'label' instead"]
    if (code in CATEGORY_CODES) != ("{category}" in str(rule.get("feature", ""))):
        return [f"'code' {code!r} needs a feature with '{{category}}' exactly when its label names one"]
    return []


def rule_errors(rules: Any) -> list[tuple[str, list[str]]]:
    """``[(rule name, problems)]`` for every invalid rule of ``rules`` (a list of dicts)."""
    if not isinstance(rules, list | tuple):
        return [("TAG_RULES", ["must be a list of rule dicts"])]
    problems: list[tuple[str, list[str]]] = []
    for index, rule in enumerate(rules):
        errors = validate_rule(rule)
        if isinstance(rule, dict):
            errors += _code_errors(rule)
        if errors:
            label = (rule.get("label") or rule.get("code")) if isinstance(rule, dict) else None
            name = f"TAG_RULES[{index}] ({label!r})" if label else f"TAG_RULES[{index}]"
            problems.append((name, errors))
    return problems


def get_tag_rules() -> list[dict[str, Any]]:
    """The rules in force: ``RECOMMENDER["TAG_RULES"]`` or the defaults; raises RuleError when invalid."""
    rules = recommender_settings.TAG_RULES
    if rules is None:
        return DEFAULT_TAG_RULES
    problems = rule_errors(rules)
    if problems:
        name, errors = problems[0]
        raise RuleError(f"{name}: {'; '.join(errors)}")
    return list(rules)
