"""Fewer cyclic garbage collections during bulk work that allocates many short-lived containers."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Cyclic-GC thresholds during bulk work (see fewer_collections).
BULK_GC_THRESHOLDS = (100_000, 10, 10)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector every 100,000 container allocations, not every 700.

    Bulk jobs (an import chunk, a batch of precomputed lists) keep ~100,000 containers alive at a
    time (each row's list, tuples, dicts), and with the default thresholds the collector walks
    them, and in its full collections every object of the process (Django, torch), over and over:
    ~20 % of an import's Python CPU and ~10 % of a refresh's, for objects that reference counting
    frees anyway. Cycles are still collected, only later, so memory stays bounded. The thresholds
    are process-wide: restored on exit (these jobs are commands and tasks, not web requests).
    """
    previous = gc.get_threshold()
    gc.set_threshold(*BULK_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
