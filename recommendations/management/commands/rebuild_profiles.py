"""``manage.py rebuild_profiles [--full] [--users NAME ...]``: the service of the Celery task."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from recommendations.core.profiles.tags import RuleError
from recommendations.runtime.priority import lower_cpu_priority
from recommendations.services.profiles import rebuild_profiles


class Command(BaseCommand):
    help = "Rebuild user profiles (incremental by default; --full re-learns segments, outliers and tags)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--full", action="store_true", help="Recompute every profile and the segments.")
        parser.add_argument("--users", nargs="+", metavar="USERNAME", help="Only these users.")

    def handle(self, *args: Any, full: bool = False, users: list[str] | None = None, **options: Any) -> None:
        user_ids = None
        if users:
            model = get_user_model()
            found = dict(
                model._default_manager.filter(**{f"{model.USERNAME_FIELD}__in": users}).values_list(
                    model.USERNAME_FIELD, "pk"
                )
            )
            missing = sorted(set(users) - set(found))
            if missing:
                raise CommandError(f"Unknown user(s): {', '.join(missing)}")
            user_ids = list(found.values())
        self.stdout.write("Rebuilding profiles…")
        lower_cpu_priority()
        try:
            result = rebuild_profiles(user_ids=user_ids, full=full)
        except RuleError as exc:
            raise CommandError(f"Invalid TAG_RULES: {exc}") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.kind} rebuild (run {result.run_id}): {result.users} profiles, "
                f"{result.segments} segments, "
                f"{result.outliers} flagged for review, {result.tagged} tagged, propensity from "
                f"{result.propensity_source}, {result.seconds:.1f} s"
            )
        )
        for note in result.notes:
            self.stdout.write(f"note: {note}")
