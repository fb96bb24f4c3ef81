"""Refresh item relations, popularity and the precomputed per-user lists (as the Celery tasks do)."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Recompute similar / bought-together relations and popularity, then precompute the "
        "recommendation lists of active users through the active model."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--lists-only", action="store_true", help="skip item relations and popularity")

    def handle(self, *args, lists_only: bool = False, **options) -> None:
        from recommendations.services.serving.popularity import refresh_popularity
        from recommendations.services.serving.precompute import refresh_recommendations
        from recommendations.services.serving.relations import refresh_item_relations

        if not lists_only:
            relations = refresh_item_relations()
            popular = refresh_popularity()
            summary = ", ".join(f"{count} {kind}" for kind, count in relations.items())
            self.stdout.write(f"item relations: {summary}; popular items: {popular}")
        result = refresh_recommendations()
        if result.model_version is None:
            self.stdout.write("no active model: lists are served from the fallback chain")
        else:
            self.stdout.write(
                f"precomputed {result.users} lists with model version {result.model_version} "
                f"in {result.seconds:.1f} s ({result.users_per_second:.0f} users/s)"
            )
