"""``manage.py export_recommendations``: every user's list as JSON lines.

Users with a history are scored in batches straight through the active model (the same
``LoadedModel`` the serving layer uses, with the same business rules: purchased and
unavailable items are never listed); users without history, or every user when no model
is active, get ``recommendations.services.serving.recommend_for`` (the API's own service).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from behavior.models import Event
from recommendations.adapter import get_adapter
from recommendations.conf import recommender_settings
from recommendations.data.events import item_key_lookup, usable_events
from recommendations.data.histories import load_histories
from recommendations.services.registry import LoadedModel, get_active_model

BATCH_SIZE = 500


class Command(BaseCommand):
    help = (
        'Write {"user_id", "items", "scores", "model_version"} per line for every user with events '
        "(or those listed in --users)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=int, default=None, help="Items per user (default: DEFAULT_LIMIT)."
        )
        parser.add_argument("--out", required=True, help="Output file (JSON lines); '-' for stdout.")
        parser.add_argument("--users", default=None, help="File with one username per line.")
        parser.add_argument(
            "--exclude-seen",
            action="store_true",
            help="Drop every item the user interacted with (default: only the business rules).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"] or recommender_settings.DEFAULT_LIMIT
        if not 1 <= limit <= recommender_settings.MAX_LIMIT:
            raise CommandError(f"--limit must be between 1 and {recommender_settings.MAX_LIMIT}")
        users = self._users(options["users"])
        out = options["out"]
        if out == "-":
            written = self._export(users, limit, options["exclude_seen"], self.stdout)
        else:
            target = Path(out)
            if not target.parent.is_dir():
                raise CommandError(f"--out: folder {target.parent} does not exist")
            # Write beside the target and rename: a reader never sees half a file.
            fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    written = self._export(users, limit, options["exclude_seen"], handle)
                os.replace(partial, target)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
        if out != "-":
            self.stdout.write(f"Wrote {written} users to {out}.")

    # --- who -----------------------------------------------------------------------------------

    def _users(self, path: str | None) -> list[tuple[Any, str]]:
        """``(pk, username)`` pairs: the listed users, or every user with usable events."""
        model = get_user_model()
        field = model.USERNAME_FIELD
        if path is None:
            ids = usable_events().filter(user__isnull=False).values_list("user_id", flat=True).distinct()
            return list(model._default_manager.filter(pk__in=ids).order_by(field).values_list("pk", field))
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"--users {path}: cannot be read ({exc})") from exc
        wanted = [(number, line.strip()) for number, line in enumerate(lines, start=1)]
        wanted = [(number, name) for number, name in wanted if name and not name.startswith("#")]
        known = dict(
            model._default_manager.filter(**{f"{field}__in": [n for _, n in wanted]}).values_list(field, "pk")
        )
        for number, name in wanted:
            if name not in known:
                raise CommandError(f"--users {path}:{number}: unknown user {name!r}")
        return [(known[name], name) for name in dict.fromkeys(name for _, name in wanted)]

    # --- what ----------------------------------------------------------------------------------

    def _export(self, users: list[tuple[Any, str]], limit: int, exclude_seen: bool, handle: Any) -> int:
        loaded = get_active_model()
        written = 0
        for start in range(0, len(users), BATCH_SIZE):
            batch = users[start : start + BATCH_SIZE]
            for username, keys, scores, version in self._batch(batch, limit, exclude_seen, loaded):
                handle.write(
                    json.dumps(
                        {"user_id": username, "items": keys, "scores": scores, "model_version": version}
                    )
                    + "\n"
                )
                written += 1
            if len(users) > BATCH_SIZE:
                self.stderr.write(f"{min(start + BATCH_SIZE, len(users))}/{len(users)} users")
        return written

    def _batch(
        self, batch: list[tuple[Any, str]], limit: int, exclude_seen: bool, loaded: LoadedModel | None
    ) -> Iterable[tuple[str, list[str], list[float], int | None]]:
        ids = [pk for pk, _ in batch]
        seen, purchased = _interacted(ids)
        # the model reads its own sequence length of newest events: no more need leave the database
        histories = load_histories(users=ids, limit=loaded.recommender._max_length() or 50) if loaded else {}
        direct = [(pk, name) for pk, name in batch if histories.get(name)]
        results: dict[Any, tuple[list[str], list[float], int | None]] = {}
        if loaded is not None and direct:
            adapter = get_adapter()
            excluded = [
                (seen.get(pk, set()) if exclude_seen else set()) | purchased.get(pk, set())
                for pk, _ in direct
            ]
            # Over-fetch: some of the best items may be out of stock or inactive.
            scored = loaded.recommender.recommend(
                [histories[name] for _, name in direct],
                limit * 3 + 10,
                exclude=excluded,
                seen_excluded=exclude_seen,
            )
            available = set(adapter.filter_available({key for row in scored for key, _ in row}))
            for (pk, _), row in zip(direct, scored, strict=True):
                kept = [(key, score) for key, score in row if key in available][:limit]
                results[pk] = (
                    [k for k, _ in kept],
                    [round(float(s), 6) for _, s in kept],
                    loaded.version_number,
                )
        missing = [pk for pk, _ in batch if pk not in results]
        if missing:
            from recommendations.services.serving import recommend_for

            user_objects = get_user_model()._default_manager.in_bulk(missing)
            for pk in missing:
                result = recommend_for(
                    user=user_objects[pk],
                    limit=limit,
                    exclude=seen.get(pk, set()) if exclude_seen else (),
                    record=False,
                )
                results[pk] = (
                    [entry.key for entry in result.items],
                    [round(float(entry.score), 6) for entry in result.items],
                    result.model_version,
                )
        for pk, name in batch:
            keys, scores, version = results[pk]
            yield name, keys, scores, version


def _interacted(user_ids: list[Any]) -> tuple[dict[Any, set[str]], dict[Any, set[str]]]:
    """Every item each user interacted with, and those they bought (any age, one query)."""
    seen: dict[Any, set[str]] = {}
    purchased: dict[Any, set[str]] = {}
    rows = (
        Event.objects.filter(user_id__in=user_ids, item__isnull=False)
        .order_by()
        .values_list("user_id", item_key_lookup(), "event_type")
        .distinct()
    )
    for user_id, key, event_type in rows:
        seen.setdefault(user_id, set()).add(str(key))
        if event_type == "purchase":
            purchased.setdefault(user_id, set()).add(str(key))
    return seen, purchased
