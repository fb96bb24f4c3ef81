"""``manage.py export_user_data USERNAME [--out PATH]``: one person's data as JSON."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.services.privacy import export_user_data


class Command(BaseCommand):
    help = "Write everything the recommender holds about one user as JSON (stdout or --out)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--out", default="", help="File to write (default: standard output).")

    def handle(self, *args, username: str, out: str, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc
        text = json.dumps(export_user_data(user), indent=2, ensure_ascii=False)
        if not out:
            self.stdout.write(text)
            return
        target = Path(out)
        if not target.parent.is_dir():
            raise CommandError(f"--out: folder {target.parent} does not exist.")
        # Written atomically: a reader never sees half an export.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.stderr.write(f"Wrote the data of {username} to {target}.")
