"""System checks of the recommender's settings (ids ``recommendations.E00x``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from recommendations.conf import KNOWN_KEYS


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Unknown keys in ``RECOMMENDER`` and a missing item model are errors at start-up."""
    errors: list[Error] = []
    user = getattr(settings, "RECOMMENDER", {}) or {}
    if not isinstance(user, dict):
        return [Error("settings.RECOMMENDER must be a dict.", id="recommendations.E001")]
    for key in sorted(set(user) - KNOWN_KEYS):
        errors.append(
            Error(
                f"Unknown RECOMMENDER setting {key!r}.",
                hint="See recommendations/conf.py for the supported keys.",
                id="recommendations.E001",
            )
        )
    niceness = user.get("BACKGROUND_NICENESS", 0)
    if niceness is not None and (
        isinstance(niceness, bool) or not isinstance(niceness, int) or not 0 <= niceness <= 19
    ):
        errors.append(
            Error(
                f"BACKGROUND_NICENESS must be None or an integer from 0 to 19, not {niceness!r}.",
                id="recommendations.E004",
            )
        )
    skew = user.get("DATA_CLOCK_SKEW_SECONDS", 0)
    if isinstance(skew, bool) or not isinstance(skew, int | float) or not 0 <= skew < 10**8:
        errors.append(
            Error(
                f"DATA_CLOCK_SKEW_SECONDS must be a number of seconds from 0 to 10**8, not {skew!r}.",
                id="recommendations.E005",
            )
        )
    from recommendations.conf import network_config

    try:
        network_config()
    except (TypeError, ValueError) as exc:
        errors.append(
            Error(
                f"Invalid behaviour-network setting in RECOMMENDER: {exc}",
                hint="See recommendations.core.config.NetworkConfig for each key's meaning and range.",
                id="recommendations.E006",
            )
        )
    from behavior.items import get_item_model, item_key_field

    try:
        model = get_item_model()
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), id="recommendations.E002"))
        return errors
    field_name = item_key_field()
    try:
        field = model._meta.get_field(field_name)
    except Exception:  # FieldDoesNotExist
        errors.append(
            Error(
                f"ITEM_KEY_FIELD {field_name!r} is not a field of {model._meta.label}.",
                id="recommendations.E003",
            )
        )
    else:
        if not (field.primary_key or field.unique):
            errors.append(
                Error(
                    f"ITEM_KEY_FIELD {field_name!r} of {model._meta.label} must be unique.",
                    id="recommendations.E003",
                )
            )
    return errors


# --- profiles: tag rules (recommendations.E010) --------------------------------------------------
@register(Tags.compatibility)
def check_tag_rules(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every rule of ``RECOMMENDER["TAG_RULES"]`` must be valid; each bad rule is named."""
    from recommendations.conf import recommender_settings
    from recommendations.services.profiles.tags import rule_errors

    rules = recommender_settings.TAG_RULES
    if rules is None:
        return []
    return [
        Error(
            f"Invalid tag rule {name}: {'; '.join(problems)}.",
            hint="A rule is {label, feature, operator (> >= < <= == !=), threshold or percentile, "
            "weight, description[, and]}; see recommendations/services/profiles/tags.py.",
            id="recommendations.E010",
        )
        for name, problems in rule_errors(rules)
    ]
