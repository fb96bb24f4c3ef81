from django.apps import AppConfig


class BehaviorConfig(AppConfig):
    name = "behavior"
    verbose_name = "Behaviour events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Login merge of anonymous history into the user.
        from behavior import signals  # noqa: F401
