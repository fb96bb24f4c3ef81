"""Prometheus counters of the event pipeline (exported by ``recommendations.ops.metrics`` at /metrics).

``behavior_events_total{outcome}``, per batch of ``services.ingest_events`` and per lost
server-side event:

- ``accepted``: new events stored;
- ``retried``: events whose id was stored already (a client's retry, e.g. the beacon's
  outbox after a 503 or a lost answer): acknowledged, not stored twice;
- ``rejected``: events refused with a 400 (per-event errors);
- ``lost``: events of server-side views dropped while the database was unreachable
  (``behavior.tracking.record_event``).

``behavior_throttle_local_total``: requests throttled from process memory because the
shared cache (Redis) failed.

``behavior_partition_misses_total{table}``: rows of ``events`` or ``impressions`` stored in a
DEFAULT partition because no partition held their time (PostgreSQL; ``services.partitions``).

Under several gunicorn workers, prometheus-client's multiprocess mode adds the processes up
(``PROMETHEUS_MULTIPROC_DIR``).
"""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter("behavior_events", "Behaviour events by outcome.", ["outcome"])
THROTTLE_LOCAL = Counter(
    "behavior_throttle_local", "Requests throttled per process while the shared cache was down."
)


def count_events(*, accepted: int = 0, retried: int = 0, rejected: int = 0, lost: int = 0) -> None:
    """Add one batch's outcome to the counters (never raises: metrics must not break ingestion)."""
    for outcome, amount in (
        ("accepted", accepted),
        ("retried", retried),
        ("rejected", rejected),
        ("lost", lost),
    ):
        if amount:
            EVENTS.labels(outcome).inc(amount)


PARTITION_MISSES = Counter(
    "behavior_partition_misses",
    "Rows stored in a DEFAULT partition because no partition held their time (PostgreSQL).",
    ["table"],
)


def count_partition_misses(table: str, amount: int) -> None:
    """Count rows of ``table`` ("events", "impressions") that went to the DEFAULT partition."""
    if amount:
        PARTITION_MISSES.labels(table).inc(amount)
