"""Create or update the default Celery beat schedule (idempotent)."""

from django.core.management.base import BaseCommand

from recommendations.runtime.schedule import install_schedule


class Command(BaseCommand):
    help = "Install the recommender's default periodic tasks into django-celery-beat (idempotent)."

    def handle(self, *args, **options) -> None:
        for name, what in install_schedule().items():
            self.stdout.write(f"{what:8} {name}")
