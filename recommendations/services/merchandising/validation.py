"""What staff may save as a merchandising rule; each function returns its reasons (empty: fine).

The admin form shows them; code creating rules calls the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext

from behavior.items import items_by_key
from recommendations.adapter import get_adapter
from recommendations.core.merchandising import PIN

__all__ = ["RuleInput", "rule_errors"]


@dataclass(frozen=True)
class RuleInput:
    """A rule as entered in the form."""

    action: str
    item_key: str
    category_key: str
    position: int | None
    starts_at: datetime | None
    ends_at: datetime | None


def rule_errors(rule: RuleInput) -> list[str]:
    """Every reason to refuse ``rule``: its target, its position and its window."""
    errors = []
    if rule.starts_at is not None and rule.ends_at is not None and rule.ends_at <= rule.starts_at:
        errors.append(gettext("The end must be after the start."))
    if not rule.item_key and not rule.category_key:
        errors.append(gettext("Name an item or a category."))
    elif rule.item_key and rule.category_key:
        errors.append(gettext("Name an item or a category, not both."))
    if rule.action == PIN:
        if rule.position is None:
            errors.append(gettext("A pin needs a position."))
        if rule.category_key and not rule.item_key:
            errors.append(gettext("Only an item can be pinned; boost a category instead."))
    elif rule.position is not None:
        errors.append(gettext("Only a pin has a position."))
    if rule.item_key and not rule.category_key:
        errors.extend(_item_errors(rule))
    elif rule.category_key and not rule.item_key:
        errors.extend(_category_errors(rule))
    return errors


def _item_errors(rule: RuleInput) -> list[str]:
    """An item that does not exist; a pinned item that cannot be shown (out of stock, inactive)."""
    if not items_by_key([rule.item_key]):
        return [gettext("No item has the key %(key)s.") % {"key": rule.item_key}]
    if rule.action == PIN and not get_adapter().available_items([rule.item_key]):
        return [
            gettext("%(key)s is out of stock or inactive: a pinned item must be one shoppers can buy.")
            % {"key": rule.item_key}
        ]
    return []


def _category_errors(rule: RuleInput) -> list[str]:
    """A category no item belongs to (a typo would silently do nothing)."""
    adapter = get_adapter()
    queryset = adapter.available_queryset().model._default_manager.all()
    if not adapter.filter_category(queryset, rule.category_key).exists():
        return [gettext("No item is in the category %(key)s.") % {"key": rule.category_key}]
    return []
