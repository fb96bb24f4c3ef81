"""Bring the demo shop's recommender up to date: train, relate items, precompute, profile.

`make demo` runs it after `seed_demo`; each step calls the same service as its Celery
task (in-process here, because the embedded demo has no broker).
"""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand

STEPS = [
    ("retrain", "training the behaviour network"),
    ("refresh_recommendations", "precomputing recommendation lists"),
    ("rebuild_profiles", "rebuilding user profiles"),
]


class Command(BaseCommand):
    help = "Train, refresh item relations and lists, and rebuild profiles for the demo shop."

    def handle(self, *args, **options) -> None:
        for name, what in STEPS:
            self.stdout.write(self.style.MIGRATE_HEADING(f"== {what} ({name})"))
            call_command(name, stdout=self.stdout, stderr=self.stderr)
        self.stdout.write(self.style.SUCCESS("The demo shop is ready."))
