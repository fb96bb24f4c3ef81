"""``manage.py rebuild_profiles [--full] [--users NAME ...] [--chunk-users N] [--workers]``.

The service of the Celery task, its chunks run here in order or (``--workers``) by the workers.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from recommendations.core.profiles.tags import RuleError
from recommendations.management.chunk_options import add_chunk_arguments, check_chunk_users
from recommendations.models import ProfileRun, ProfileRunChunk
from recommendations.runtime.priority import lower_cpu_priority
from recommendations.services.profiles import rebuild_profiles
from recommendations.services.profiles.outcome import RebuildResult
from recommendations.services.profiles.rebuild import rebuild_result


class Command(BaseCommand):
    help = (
        "Rebuild user profiles (incremental by default; --full re-learns segments, outliers and tags), "
        "chunk by chunk."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--full", action="store_true", help="Recompute every profile and the segments.")
        parser.add_argument("--users", nargs="+", metavar="USERNAME", help="Only these users.")
        add_chunk_arguments(parser, "PROFILE_CHUNK_USERS")

    def handle(
        self,
        *args: Any,
        full: bool = False,
        users: list[str] | None = None,
        chunk_users: int | None = None,
        workers: bool = False,
        **options: Any,
    ) -> None:
        check_chunk_users(chunk_users)
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
        from recommendations.tasks import fan_out_profile_chunks

        try:
            result = rebuild_profiles(
                user_ids=user_ids,
                full=full,
                chunk_users=chunk_users,
                fan_out=fan_out_profile_chunks if workers else None,
                progress=self._progress,
            )
        except RuleError as exc:
            raise CommandError(f"Invalid TAG_RULES: {exc}") from exc
        if result.kind == "skipped":
            raise CommandError("Another profile rebuild is running; nothing was done.")
        if result.status == ProfileRun.Status.RUNNING:
            result = self._wait(result.run_id)
        self._report(result)

    def _report(self, result: RebuildResult) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.kind} rebuild (run {result.run_id}): {result.users} profiles in "
                f"{result.chunks_total} chunks, {result.segments} segments, "
                f"{result.outliers} flagged for review, {result.tagged} tagged, propensity from "
                f"{result.propensity_source or '-'}, {result.seconds:.1f} s"
            )
        )
        for note in result.notes:
            self.stdout.write(f"note: {note}")
        if result.status != ProfileRun.Status.COMPLETED:
            run = ProfileRun.objects.get(pk=result.run_id)
            reason = f" ({run.error})" if run.error else ""
            raise CommandError(
                f"{result.chunks_total - result.chunks_done} of {result.chunks_total} chunks failed{reason}; "
                f"users {', '.join(result.kept) or '(none)'} kept their previous profiles "
                f"({result.failed_users} users)."
            )

    def _progress(self, run: ProfileRun, chunk: ProfileRunChunk | None) -> None:
        if chunk is None:
            self.stdout.write(f"fitted scaling, outliers and {run.k or 0} segments on every chunk's features")
            return
        what = {
            "staged": f"features of {chunk.planned} users",
            "done": f"{chunk.profiles} profiles written",
        }.get(str(chunk.status), str(chunk.status))
        self.stdout.write(f"chunk {chunk.index + 1}/{run.chunks_total}: {what}")

    def _wait(self, run_id: int) -> RebuildResult:
        """Print the chunks done as the workers finish them; the rebuild once closed."""
        shown = ""
        while True:
            run = ProfileRun.objects.get(pk=run_id)
            line = f"chunks done: {run.chunks_done}/{run.chunks_total}"
            if run.kind == ProfileRun.Kind.FULL:
                staged = run.chunks.exclude(status=ProfileRunChunk.Status.PENDING).count()
                line += f" ({run.get_stage_display()}; features of {staged} chunks computed)"
            if line != shown and run.status == ProfileRun.Status.RUNNING:
                self.stdout.write(line)
                shown = line
            if run.status != ProfileRun.Status.RUNNING:
                self.stdout.write(f"chunks done: {run.chunks_done}/{run.chunks_total}")
                return rebuild_result(run)
            time.sleep(2)
