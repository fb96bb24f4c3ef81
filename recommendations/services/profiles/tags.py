"""The default tag rules and the loading of ``RECOMMENDER["TAG_RULES"]``.

Rules are data (see ``recommendations.core.profiles.tags`` for their shape); a project
replaces the whole list in its settings. Invalid rules are reported at start-up by the
system check ``recommendations.E010``.
"""

from __future__ import annotations

from typing import Any

from recommendations.conf import recommender_settings
from recommendations.core.profiles.tags import RuleError, validate_rule

DEFAULT_TAG_RULES: list[dict[str, Any]] = [
    {
        "label": "high value",
        "feature": "monetary",
        "operator": ">",
        "percentile": 90,
        "weight": 3.0,
        "description": "Spent more than 90% of the customers who bought anything.",
    },
    {
        "label": "loyal",
        "feature": "frequency",
        "operator": ">=",
        "threshold": 3,
        "weight": 2.0,
        "description": "Placed at least three orders.",
    },
    {
        "label": "new customer",
        "feature": "tenure_days",
        "operator": "<=",
        "threshold": 14,
        "weight": 1.0,
        "description": "First seen within the last two weeks.",
    },
    {
        "label": "churn risk",
        "feature": "purchase_recency_days",
        "operator": ">",
        "threshold": 60,
        "weight": 2.0,
        "description": "Bought before, but not for 60 days and not active for 30.",
        "and": [{"feature": "recency_days", "operator": ">", "threshold": 30}],
    },
    {
        "label": "cart abandoner",
        "feature": "cart_abandonment_rate",
        "operator": ">=",
        "threshold": 0.75,
        "weight": 1.5,
        "description": "Leaves at least three quarters of cart additions unbought.",
        "and": [{"feature": "carts", "operator": ">=", "threshold": 2}],
    },
    {
        "label": "bargain hunter",
        "feature": "price_level",
        "operator": "<=",
        "threshold": 0.8,
        "weight": 1.0,
        "description": "Looks at items at least 20% cheaper than their category's median price.",
        "and": [{"feature": "views", "operator": ">=", "threshold": 3}],
    },
    {
        "label": "likely buyer",
        "feature": "propensity",
        "operator": ">=",
        "threshold": 0.6,
        "weight": 2.0,
        "description": "Purchase propensity of 60% or more.",
    },
    {
        "label": "window shopper",
        "feature": "views",
        "operator": ">=",
        "threshold": 15,
        "weight": 1.0,
        "description": "Views a lot (15+ items) but never bought.",
        "and": [{"feature": "purchases", "operator": "==", "threshold": 0}],
    },
    {
        "label": "fan of {category}",
        "feature": "affinity:{category}",
        "operator": ">",
        "threshold": 0.5,
        "weight": 1.0,
        "description": "More than half of the activity is in {category}.",
        "and": [{"feature": "events", "operator": ">=", "threshold": 5}],
    },
]


def rule_errors(rules: Any) -> list[tuple[str, list[str]]]:
    """``[(rule name, problems)]`` for every invalid rule of ``rules`` (a list of dicts)."""
    if not isinstance(rules, list | tuple):
        return [("TAG_RULES", ["must be a list of rule dicts"])]
    problems: list[tuple[str, list[str]]] = []
    for index, rule in enumerate(rules):
        errors = validate_rule(rule)
        if errors:
            label = rule.get("label") if isinstance(rule, dict) else None
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
