"""One-at-a-time locks for long jobs (training, profile rebuilds).

On Postgres: ``pg_try_advisory_lock`` on a dedicated connection, held for the whole job
and released by the server when the process dies (a kill -9 frees it at once). Elsewhere
(SQLite, the embedded demo): a lease key in Django's cache that the job renews while it
runs and that expires on its own when the process is gone.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections


class RunLock(Protocol):
    def acquire(self) -> bool: ...
    def renew(self) -> None: ...
    def release(self) -> None: ...


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key derived from the lock's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class AdvisoryLock:
    """``pg_try_advisory_lock`` on a connection of its own, held until ``release``."""

    def __init__(self, name: str) -> None:
        self.key = advisory_key(name)
        self.connection = connections.create_connection(DEFAULT_DB_ALIAS)

    def acquire(self) -> bool:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
            acquired = bool(cursor.fetchone()[0])
        if not acquired:
            self.connection.close()
        return acquired

    def renew(self) -> None:
        """Nothing to renew: the lock lives as long as the connection."""

    def release(self) -> None:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [self.key])
        finally:
            # Closing the session releases the lock even when the unlock above failed.
            self.connection.close()


class CacheLease:
    """A lease key in Django's cache, renewed while the job runs, expiring with a dead process."""

    def __init__(self, name: str, lease_seconds: int) -> None:
        self.key = f"recommendations:lease:{name}"
        self.lease_seconds = lease_seconds
        self.token = uuid.uuid4().hex

    def acquire(self) -> bool:
        return bool(cache.add(self.key, self.token, timeout=self.lease_seconds))

    def renew(self) -> None:
        # Renew only our own lease: after an expiry another run may hold the key.
        if cache.get(self.key) == self.token:
            cache.set(self.key, self.token, timeout=self.lease_seconds)

    def release(self) -> None:
        if cache.get(self.key) == self.token:
            cache.delete(self.key)


@contextmanager
def run_lock(name: str, *, lease_seconds: int) -> Iterator[RunLock | None]:
    """Hold the lock called ``name``; yields None (at once) when another process holds it."""
    lock: RunLock
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        lock = AdvisoryLock(name)
    else:
        lock = CacheLease(name, lease_seconds)
    if not lock.acquire():
        yield None
        return
    try:
        yield lock
    finally:
        lock.release()


# Orders impression writes and erasures (``serving.impressions.flush``, ``privacy.forget_user``).
ERASURE_BARRIER = "recommendations:erasure"


def erasure_barrier(*, exclusive: bool) -> None:
    """Inside a transaction: wait for erasures (shared) or for impression writes (exclusive).

    An impression written by a transaction that holds the shared lock is either committed
    before an erasure's delete starts (which then deletes it) or checked against the
    tombstones after the erasure committed them (and then dropped): a row queued before an
    erasure is never written after it. Postgres: a transaction-level advisory lock, released
    at commit. SQLite (the embedded demo) has one writer at a time already: nothing to do.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [advisory_key(ERASURE_BARRIER)])
