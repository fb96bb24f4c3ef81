"""``manage.py import_events PATH [--create-missing]``: load an events CSV (see behavior.services.importing).

Each chunk's events are stored in one transaction, all or nothing; on Postgres writer
threads store chunks while the next one is read (``--writers``). When storing a chunk
fails, the command stops with exit status 1 and names the chunk's lines: that chunk stored
nothing, the chunks before it are stored (with writer threads, the one chunk stored beside
it may be too), and running the same import again completes it without duplicates.

Exit status: 0 when the file was read, even if some rows were rejected (each listed with
its line number and the reason per column on stderr, followed by a summary); 1
(CommandError) when the file is missing or unreadable, the header is wrong, a chunk could
not be stored, or the file has rows and none of them could be stored or recognised as
already stored.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from behavior.conf import behavior_settings
from behavior.services.importing import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    ImportFileError,
    ImportStoreError,
    import_events_csv,
)
from behavior.services.retention import events_past_retention


class Command(BaseCommand):
    help = (
        f"Import behaviour events from a CSV file with header {','.join(REQUIRED_COLUMNS)} "
        f"and optional {','.join(OPTIONAL_COLUMNS)}. Idempotent; bad rows are reported by line number."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="CSV file to import.")
        parser.add_argument(
            "--create-missing",
            action="store_true",
            help="Create unknown users (unusable password) and placeholder items.",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=20_000,
            help="Rows read and stored per transaction (memory stays flat).",
        )
        parser.add_argument(
            "--max-reported",
            type=int,
            default=1000,
            help="Rejected rows listed one by one (0 = all); the rest are counted.",
        )
        parser.add_argument(
            "--defer-indexes",
            action="store_true",
            help="Postgres, large initial loads into a quiet database: one transaction "
            "that drops the secondary event indexes and rebuilds them at the end "
            "(faster, but locks the events table for the whole import).",
        )
        parser.add_argument(
            "--writers",
            type=int,
            default=2,
            help="Postgres: threads (each with its own connection) that store chunks while "
            "the next one is read; 0 stores each chunk before reading on.",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1.")
        if options["writers"] < 0:
            raise CommandError("--writers must be 0 or more.")
        max_reported = options["max_reported"]
        reported = 0
        bar = tqdm(
            total=None,
            unit="B",
            unit_scale=True,
            desc="import_events",
            file=sys.stderr,
            disable=options["no_progress"] or options["verbosity"] == 0,
            mininterval=0.5,
        )
        with contextlib.suppress(OSError):
            bar.total = os.path.getsize(options["path"])

        def on_rejected(line: int, errors: dict[str, list[str]]) -> None:
            nonlocal reported
            if max_reported and reported >= max_reported:
                return
            reported += 1
            reasons = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
            with bar.external_write_mode():
                self.stderr.write(f"line {line}: {reasons}")

        def on_progress(rows: int, position: int) -> None:
            bar.n = position
            bar.set_postfix(rows=rows, refresh=False)
            bar.refresh()

        # Move everything loaded so far (Django, the ML stack: ~300k objects) out of the
        # garbage collector's sight: the import allocates millions of short-lived rows,
        # and every full collection would walk those long-lived objects again (it halved
        # the CPU per row). Only this command process is affected.
        gc.freeze()
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            report = import_events_csv(
                options["path"],
                create_missing=options["create_missing"],
                chunk_size=options["chunk_size"],
                on_rejected=on_rejected,
                on_progress=on_progress,
                defer_indexes=options["defer_indexes"],
                writers=options["writers"],
            )
        except (ImportFileError, ImportStoreError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()

        if report.rejected > reported:
            self.stderr.write(f"... and {report.rejected - reported} more rejected rows")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        self.stdout.write(
            f"{report.rows} rows: {report.accepted} stored, {report.duplicates} already stored, "
            f"{report.rejected} rejected"
            + (
                f"; created {report.users_created} users and {report.items_created} items"
                if options["create_missing"]
                else ""
            )
            # Import time alone (Django start-up excluded), for capacity planning; the CPU
            # of this process (all threads), without the database server's.
            + f"; {elapsed:.1f} s, {report.rows / max(elapsed, 1e-9):,.0f} rows/s, {cpu:.1f} s CPU"
        )
        if report.items_created:
            self._describe_placeholders(report.items_created, report.placeholder_values)
        doomed = events_past_retention() if report.accepted else 0
        if doomed:
            self.stderr.write(
                f"Warning: {doomed:,} stored events are older than EVENT_RETENTION_DAYS "
                f"({behavior_settings.EVENT_RETENTION_DAYS} days): the next behavior.prune_events "
                "(daily) deletes them. To keep an imported history, set RECOMMENDER['EVENT_RETENTION_DAYS'] "
                "to None (keep forever) or to more days."
            )
        if report.rows and report.accepted + report.duplicates == 0:
            raise CommandError(f"No row of {options['path']} could be imported ({report.rejected} rejected).")

    def _describe_placeholders(self, count: int, values: dict[str, Any]) -> None:
        """Say what the placeholder items are: whether shops will see them recommended, and why."""
        if values:
            given = ", ".join(f"{name}={value!r}" for name, value in values.items())
            self.stdout.write(
                f"The {count} placeholder items are named after their keys and set {given} "
                "(RECOMMENDER['PLACEHOLDER_ITEM_VALUES']): an imported event shows the item existed, so "
                "they are recommendable until the catalogue sets their real names, prices and stock."
            )
            return
        # nothing was set: the model's defaults decide, and those may hide every placeholder
        self.stderr.write(
            f"Warning: the {count} placeholder items keep the item model's defaults: the model has "
            "none of the fields of RECOMMENDER['PLACEHOLDER_ITEM_VALUES'] "
            f"({', '.join(behavior_settings.PLACEHOLDER_ITEM_VALUES) or 'empty'}). If those defaults make "
            "items unavailable, recommendations of the imported history stay empty: name the item "
            "model's availability fields in PLACEHOLDER_ITEM_VALUES or update the items."
        )
