"""Create the default Celery beat jobs that are missing; ``--reset`` restores them as shipped."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from recommendations.runtime.schedule import install_schedule


class Command(BaseCommand):
    help = (
        "Install the recommender's default periodic tasks into django-celery-beat. Jobs that exist "
        "are kept as staff edited them (schedule, queue, enabled); --reset writes the defaults back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Write every default job back as shipped (schedule, queue, arguments, enabled), "
            "overwriting changes made in the admin.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name, what in install_schedule(reset=options["reset"]).items():
            self.stdout.write(f"{what:8} {name}")
