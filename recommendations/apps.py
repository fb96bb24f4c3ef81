from contextlib import suppress

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = _("Recommendations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from recommendations import checks  # noqa: F401
        from recommendations.services.serving import catalogue, freshness

        # keep the serving caches true: latest-event markers, the per-process snapshot of
        # recommendable items
        freshness.connect()
        # a missing or wrong RECOMMENDER_ITEM_MODEL: `manage.py check` names it
        # (recommendations.E002) instead of a traceback while the apps load
        with suppress(ImproperlyConfigured):
            catalogue.connect()
        from behavior.signals import retention_due
        from recommendations.services.retention import prune_serving_data

        retention_due.connect(prune_serving_data, dispatch_uid="recommendations.retention")
        from behavior.signals import visitor_merged
        from recommendations.services.experiments.assignment import carry_over_at_login

        # an anonymous shopper's experiment arms stay theirs once they log in
        visitor_merged.connect(carry_over_at_login, dispatch_uid="recommendations.experiments.login")
        from recommendations.ops import alerts
        from recommendations.runtime.enqueue import remember_celery_app

        alerts.connect()
        from recommendations.services.merchandising import rules as merchandising_rules

        # a saved or deleted merchandising rule is read again at once in this process
        merchandising_rules.connect()
        remember_celery_app()
