"""Placeholder items for events that name unknown items (``import_events --create-missing``).

A placeholder item gets its key field set; every other *required* field (no default, not
nullable, not blank-able) is filled generically: text fields with the key, numbers with 0,
booleans with False, a foreign key with the first existing related row (or a placeholder
related row built by the same rules). Other field types cannot be guessed:
:class:`PlaceholderError`. Then ``PLACEHOLDER_ITEM_VALUES`` sets the availability fields the
model has (by default active, available and one in stock): an event proves that the item
existed, and an imported history whose items all start out of stock would make every
recommendation list empty without a word.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from behavior.conf import behavior_settings
from behavior.items import get_item_model, item_key_field

__all__ = ["PlaceholderError", "build_placeholder_item", "placeholder_availability"]


class PlaceholderError(ValueError):
    """The item model has a required field whose placeholder value cannot be guessed."""


def build_placeholder_item(key: str) -> models.Model:
    """An unsaved item with ``key``, generic values for the other required fields and the
    availability of :func:`placeholder_availability`."""
    model = get_item_model()
    key_field = item_key_field()
    values = _placeholder_values(model, key, skip=key_field, depth=0)
    values.update(placeholder_availability())
    values[key_field] = key
    return model(**values)


def placeholder_availability() -> dict[str, Any]:
    """The ``PLACEHOLDER_ITEM_VALUES`` of the fields the item model has (others are ignored)."""
    names = {f.name for f in get_item_model()._meta.concrete_fields}
    return {name: value for name, value in behavior_settings.PLACEHOLDER_ITEM_VALUES.items() if name in names}


def _placeholder_values(
    model: type[models.Model], text: str, *, skip: str = "", depth: int
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.name == skip or _is_optional(field):
            continue
        if isinstance(field, models.ForeignKey):
            values[field.name] = _related_placeholder(field, depth)
        elif isinstance(field, models.CharField | models.TextField):
            values[field.name] = text[: field.max_length] if field.max_length else text
        elif isinstance(field, models.IntegerField | models.DecimalField | models.FloatField):
            values[field.name] = 0
        elif isinstance(field, models.BooleanField):
            values[field.name] = False
        else:
            raise PlaceholderError(f"Cannot invent a value for {model.__name__}.{field.name}.")
    return values


def _is_optional(field: models.Field) -> bool:
    if isinstance(field, models.AutoField) or field.has_default() or field.null:
        return True
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return True
    return bool(field.blank and isinstance(field, models.CharField | models.TextField))


def _related_placeholder(field: models.ForeignKey, depth: int) -> models.Model:
    """The first existing related row, or a placeholder one (one level deep)."""
    related = field.related_model
    existing = related._default_manager.order_by("pk").first()
    if existing is not None:
        return existing
    if depth >= 1:
        raise PlaceholderError(f"No {related.__name__} exists to attach placeholder items to.")
    obj = related(**_placeholder_values(related, "imported", depth=depth + 1))
    obj.save()
    return obj
