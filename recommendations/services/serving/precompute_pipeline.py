"""The refresh's batch pipeline: batch sizes, scoring threads, a read-ahead and a write-behind thread."""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch


def ramped_batches(total: int, size: int) -> list[int]:
    """Batch sizes for ``total`` users: a quarter and a half batch first, then whole ones, a quarter last.

    The stages overlap only once a batch is in each of them: small first batches start the scoring
    early, and a small last one shortens the write that nothing else overlaps at the end.
    """
    size = max(1, size)
    quarter = max(1, size // 4)
    sizes: list[int] = []
    left = total
    for first in (quarter, max(1, size // 2)):
        if left > 0:
            sizes.append(min(first, left))
            left -= sizes[-1]
    while left > size + quarter:
        sizes.append(size)
        left -= size
    if left > quarter:
        sizes.append(left - quarter)
        left = quarter
    if left > 0:
        sizes.append(left)
    return sizes


def scored_in_order(score: Any, batches: Iterator[Any], workers: int | None) -> Generator[Any, None, None]:
    """``score(batch)`` of each batch, in order, with up to ``workers`` batches scored at once.

    Each scoring thread sets its own torch thread count to one: torch keeps a count per thread,
    taken from the process-wide value only when the thread first runs an op. An error is raised
    here in order; closing the generator cancels the batches not started and joins the threads.
    """
    workers = max(1, int(workers or 1))
    if workers == 1:
        yield from map(score, batches)
        return
    pool = ThreadPoolExecutor(
        workers, thread_name_prefix="precompute-score", initializer=torch.set_num_threads, initargs=(1,)
    )
    pending: collections.deque = collections.deque()
    try:
        for batch in batches:
            pending.append(pool.submit(score, batch))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for job in pending:
            job.cancel()
        pool.shutdown(wait=True)


_DONE = object()


def read_ahead(iterator: Iterator) -> Iterator:
    """``iterator``'s items, produced one item ahead in a thread with its own database connection."""
    from django.db import connections

    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in iterator:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)
        finally:
            connections.close_all()  # this thread's connection only (connections are per thread)

    thread = threading.Thread(target=produce, name="precompute-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class WriteBehind:
    """Calls ``store(*job)`` for each submitted job in a thread with its own database connection.

    At most one job waits while another is stored, so memory stays bounded; the first error stops
    the storing and is raised to the caller by the next ``__call__`` or by ``close``.
    """

    def __init__(self, store: Any, watch: Any = None) -> None:
        self.store = store
        self.watch = watch
        self.jobs: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="precompute-write-behind", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from django.db import connections

        try:
            while (job := self.jobs.get()) is not _DONE:
                if self.error is None:
                    try:
                        with self.watch("write (thread)") if self.watch else contextlib.nullcontext():
                            self.store(*job)
                    except BaseException as exc:  # raised in the caller's thread
                        self.error = exc
        finally:
            connections.close_all()  # this thread's connection only

    def __call__(self, *job: Any) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put(job)

    def close(self) -> None:
        """Wait for every submitted job; raise the first error."""
        self.jobs.put(_DONE)
        self.thread.join()
        if self.error is not None:
            raise self.error
