"""The swappable item model (``settings.RECOMMENDER_ITEM_MODEL``), like ``get_user_model``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models

from behavior.conf import behavior_settings

# What the event's item relation points at while ``RECOMMENDER_ITEM_MODEL`` is missing: the app
# registry still loads, and ``manage.py check`` reports the missing setting
# (``recommendations.E002``) instead of an AttributeError while the models are imported.
MISSING_ITEM_MODEL = "RECOMMENDER_ITEM_MODEL.NotSet"


def item_model_label() -> str:
    """``settings.RECOMMENDER_ITEM_MODEL``, or :data:`MISSING_ITEM_MODEL` when it is not set."""
    return getattr(settings, "RECOMMENDER_ITEM_MODEL", None) or MISSING_ITEM_MODEL


def get_item_model() -> type[models.Model]:
    """Return the model named by ``settings.RECOMMENDER_ITEM_MODEL``."""
    name = getattr(settings, "RECOMMENDER_ITEM_MODEL", None)
    if not name:
        raise ImproperlyConfigured("RECOMMENDER_ITEM_MODEL must be set, e.g. 'shop.Product'.")
    try:
        return apps.get_model(name, require_ready=False)
    except ValueError as exc:
        raise ImproperlyConfigured(
            "RECOMMENDER_ITEM_MODEL must be of the form 'app_label.ModelName'"
        ) from exc
    except LookupError as exc:
        raise ImproperlyConfigured(
            f"RECOMMENDER_ITEM_MODEL refers to model {name!r} that has not been installed"
        ) from exc


def item_key_field() -> str:
    """Name of the item model's field that holds the public item key."""
    field = behavior_settings.ITEM_KEY_FIELD
    return get_item_model()._meta.pk.name if field == "pk" else field


def item_key(item: models.Model) -> str:
    """The public key of one item, always as a string."""
    return str(getattr(item, item_key_field()))


def items_by_key(keys: Iterable[str], *, only: Iterable[str] | None = None) -> dict[str, Any]:
    """Fetch items by public key in one query; unknown keys are simply absent."""
    field = item_key_field()
    keys = list({str(k) for k in keys})
    if not keys:
        return {}
    queryset = get_item_model()._default_manager.filter(**{f"{field}__in": keys})
    if only is not None:
        queryset = queryset.only(field, *only)
    return {str(getattr(item, field)): item for item in queryset}


def item_ids_by_key(keys: Iterable[str]) -> dict[str, Any]:
    """Map public item keys to primary keys in one query (no model instances).

    This runs once per ingested batch, so when the item model's default manager does not
    filter and the key is a text column, the query is plain SQL: building the ORM query
    for a hundred keys costs several times more CPU than running it. Any other setup
    (a filtering default manager, a numeric key) takes the ORM path with identical results.
    """
    field = item_key_field()
    keys = list({str(k) for k in keys})
    if not keys:
        return {}
    model = get_item_model()
    manager = model._default_manager
    plain = _plain_lookup_sql(model, field)
    if plain is not None:
        placeholders = ", ".join(["%s"] * len(keys))
        with connections[manager.db].cursor() as cursor:
            cursor.execute(plain.format(placeholders=placeholders), keys)
            return {str(key): pk for key, pk in cursor.fetchall()}
    rows = manager.filter(**{f"{field}__in": keys}).values_list(field, "pk")
    return {str(key): pk for key, pk in rows}


def _plain_lookup_sql(model: type[models.Model], field_name: str) -> str | None:
    """``SELECT key, pk FROM items WHERE key IN ({placeholders})``, or None when unsafe.

    Unsafe: the default manager adds conditions (custom ``get_queryset``), or the key
    column is not text (a non-numeric key must then be "unknown", not a database error).
    """
    key_field = model._meta.get_field(field_name)
    primary_key = model._meta.pk
    if not isinstance(key_field, models.Field) or primary_key is None:
        return None
    key_column, pk_column = key_field.column, primary_key.column
    if not key_column or not pk_column:
        return None
    if key_field.get_internal_type() not in {"CharField", "TextField", "SlugField"}:
        return None
    if model._default_manager.get_queryset().query.where:
        return None
    quote = connections[model._default_manager.db].ops.quote_name
    return (
        f"SELECT {quote(key_column)}, {quote(pk_column)} "
        f"FROM {quote(model._meta.db_table)} WHERE {quote(key_column)} IN ({{placeholders}})"
    )
