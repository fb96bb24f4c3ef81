"""``manage.py export_profiles --out PATH``: CSV of user_id, segment, tags, propensity."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from recommendations.services.profiles.export import export_profiles


class Command(BaseCommand):
    help = "Export every profile as CSV (user_id, segment, tags separated by |, propensity)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--out", required=True, help="Path of the CSV file to write ('-' for stdout).")

    def handle(self, *args: Any, out: str, **options: Any) -> None:
        if out == "-":
            count = export_profiles(self.stdout)
            self.stderr.write(f"{count} profiles exported")
            return
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder):
            raise CommandError(f"--out: folder {folder} does not exist")
        # Write to a temporary file and rename: a failure never leaves a half-written CSV.
        handle, tmp = tempfile.mkstemp(dir=folder, suffix=".csv.tmp")
        try:
            with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
                count = export_profiles(stream)
            os.replace(tmp, out)
        except BaseException:
            os.unlink(tmp)
            raise
        self.stdout.write(self.style.SUCCESS(f"{count} profiles exported to {out}"))
