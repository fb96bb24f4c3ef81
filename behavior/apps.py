from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BehaviorConfig(AppConfig):
    name = "behavior"
    verbose_name = _("Behaviour events")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Login merge of anonymous history into the user.
        from behavior import signals  # noqa: F401
