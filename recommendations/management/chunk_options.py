"""The options of the commands whose job runs in chunks of users (``--chunk-users``, ``--workers``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError


def add_chunk_arguments(parser: Any, setting: str) -> None:
    """``--chunk-users N`` (default: the setting named ``setting``) and ``--workers``."""
    parser.add_argument("--chunk-users", type=int, default=None, help=f"users per chunk (default: {setting})")
    parser.add_argument(
        "--workers",
        action="store_true",
        help="hand the chunks to the Celery workers and wait for them (default: run them here, in order)",
    )


def check_chunk_users(chunk_users: int | None) -> None:
    """A clear error for a chunk size below one user."""
    if chunk_users is not None and chunk_users < 1:
        raise CommandError("--chunk-users must be at least 1.")
