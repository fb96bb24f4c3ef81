"""``manage.py forget_user USERNAME``: erase everything the recommender holds about one person."""

from __future__ import annotations

import getpass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.services.privacy import forget_user


class Command(BaseCommand):
    help = "Erase a user's events (and linked anonymous history), profile, lists and impressions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--requested-by", default="", help="Who asked (default: command:<os user>).")

    def handle(self, *args, username: str, requested_by: str, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc
        result = forget_user(user, requested_by=requested_by or f"command:{getpass.getuser()}")
        details = ", ".join(f"{kind}: {count}" for kind, count in result.counts.items())
        self.stdout.write(
            f"Erased {username} ({result.visitor_count} linked visitor id(s)); deleted {details}. "
            f"Audit record {result.audit_id}."
        )
