from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from recommendations import checks  # noqa: F401
        from recommendations.api import fastpath
        from recommendations.serving import freshness

        # keep the API fast path's caches true: latest-event markers, users' session auth hashes
        freshness.connect()
        fastpath.connect()
