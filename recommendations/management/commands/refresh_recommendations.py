"""Refresh item relations, popularity and the precomputed per-user lists (as the Celery tasks do)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from recommendations.management.chunk_options import add_chunk_arguments, check_chunk_users


class Command(BaseCommand):
    help = (
        "Recompute similar / bought-together relations and popularity, then precompute the "
        "recommendation lists of active users through the active model, chunk by chunk."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--lists-only", action="store_true", help="skip item relations and popularity")
        add_chunk_arguments(parser, "REFRESH_CHUNK_USERS")

    def handle(
        self,
        *args,
        lists_only: bool = False,
        chunk_users: int | None = None,
        workers: bool = False,
        **options,
    ) -> None:
        from recommendations.services.serving.fanout import start_refresh
        from recommendations.services.serving.jobs import refresh_relations

        check_chunk_users(chunk_users)
        if not lists_only:
            counts = refresh_relations()
            if counts is None:
                raise CommandError("Another process is refreshing the item relations; nothing was done.")
            popular = counts.pop("popular")
            summary = ", ".join(f"{count} {kind}" for kind, count in counts.items())
            self.stdout.write(f"item relations: {summary}; popular items: {popular}")
        from recommendations.tasks import fan_out_chunks

        refresh = start_refresh(
            chunk_users=chunk_users, fan_out=fan_out_chunks if workers else None, progress=self._progress
        )
        if refresh is None:
            raise CommandError("Another process is refreshing the recommendation lists; nothing was done.")
        if workers:
            refresh = self._wait(refresh)
        if refresh.model_version is None and not refresh.failed_users:
            self.stdout.write("no active model: lists are served from the fallback chain")
            return
        rate = refresh.users / refresh.seconds if refresh.seconds > 0 else 0.0
        self.stdout.write(
            f"precomputed {refresh.users} lists in {refresh.chunks_total} chunks with model version "
            f"{refresh.model_version} in {refresh.seconds:.1f} s ({rate:.0f} users/s)"
        )
        if refresh.status != refresh.Status.DONE:
            failed = refresh.chunks.exclude(status="done")
            ranges = ", ".join(f"{c.first_user}..{c.last_user}" for c in failed)
            raise CommandError(f"{failed.count()} chunks failed; users {ranges} kept their previous lists.")

    def _progress(self, refresh, chunk) -> None:
        self.stdout.write(
            f"chunk {chunk.index + 1}/{refresh.chunks_total}: {chunk.users} lists "
            f"(users {chunk.first_user}..{chunk.last_user}) {chunk.status}"
        )

    def _wait(self, refresh):
        """Print the chunks done as the workers finish them; the refresh once closed."""
        shown = -1
        while True:
            refresh.refresh_from_db()
            done = refresh.chunks_done
            if done != shown:
                self.stdout.write(f"chunks done: {done}/{refresh.chunks_total}")
                shown = done
            if refresh.status != refresh.Status.RUNNING:
                return refresh
            time.sleep(2)
