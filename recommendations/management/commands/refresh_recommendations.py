"""Refresh item relations, popularity and the precomputed per-user lists (as the Celery tasks do)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Recompute similar / bought-together relations and popularity, then precompute the "
        "recommendation lists of active users through the active model."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--lists-only", action="store_true", help="skip item relations and popularity")

    def handle(self, *args, lists_only: bool = False, **options) -> None:
        from recommendations.services.serving.jobs import refresh_lists, refresh_relations

        if not lists_only:
            counts = refresh_relations()
            if counts is None:
                raise CommandError("Another process is refreshing the item relations; nothing was done.")
            popular = counts.pop("popular")
            summary = ", ".join(f"{count} {kind}" for kind, count in counts.items())
            self.stdout.write(f"item relations: {summary}; popular items: {popular}")
        result = refresh_lists()
        if result is None:
            raise CommandError("Another process is refreshing the recommendation lists; nothing was done.")
        if result.model_version is None:
            self.stdout.write("no active model: lists are served from the fallback chain")
        else:
            self.stdout.write(
                f"precomputed {result.users} lists with model version {result.model_version} "
                f"in {result.seconds:.1f} s ({result.users_per_second:.0f} users/s)"
            )
