"""CPU priority of background work (training, profile rebuilds, precomputation).

A small shop runs web workers, Celery workers and Postgres on the same few cores. A retrain
keeps every core it is given busy for minutes; at the default priority it takes half the CPU
away from web requests and their p99 latency multiplies. Background jobs therefore lower
their own scheduling priority (``RECOMMENDER["BACKGROUND_NICENESS"]``): they still use every
idle cycle, but a web request that needs a core gets it first.

At niceness 19 (the default) the threads are also moved to Linux's ``SCHED_IDLE`` policy:
a niced thread still holds a core until the scheduler's wake-up granularity lets a woken web
thread in, which shows in the web's p99; a ``SCHED_IDLE`` thread is preempted at once. It
still gets every cycle nobody else wants (a web load that keeps every core busy all the time
would starve it: then the shop needs more cores anyway).

Linux keeps one nice value (and policy) per thread, and threads inherit both from their
creator, so the priority is applied to every thread that exists now (torch's and OpenMP's
pools may already be running) and new threads inherit it from the calling one. Niceness is
only ever raised (priority lowered): an unprivileged process could not undo it anyway, and a
process that an operator started with ``nice -n 19`` keeps that.
"""

from __future__ import annotations

import contextlib
import logging
import os

from recommendations.conf import recommender_settings

logger = logging.getLogger(__name__)


def _thread_ids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process-wide call below is all there is
        return [0]


def lower_cpu_priority(niceness: int | None = None) -> int | None:
    """Raise this process's niceness to ``niceness`` (default: the setting); return the value applied.

    Returns None when the setting is None or the platform has no ``setpriority``. Never
    raises: a priority that cannot be changed must not fail a training.
    """
    target = recommender_settings.BACKGROUND_NICENESS if niceness is None else niceness
    if target is None or not hasattr(os, "setpriority"):
        return None
    target = max(0, min(int(target), 19))
    applied = None
    for thread_id in _thread_ids():
        with contextlib.suppress(OSError):  # a thread may end while we walk the list
            current = os.getpriority(os.PRIO_PROCESS, thread_id)
            if current < target:
                os.setpriority(os.PRIO_PROCESS, thread_id, target)
            applied = max(current, target)
            if applied == 19 and hasattr(os, "SCHED_IDLE"):
                os.sched_setscheduler(thread_id, os.SCHED_IDLE, os.sched_param(0))
    if applied is None:
        logger.warning("Could not lower the CPU priority of background work")
    return applied


def lower_task_priority() -> int | None:
    """``lower_cpu_priority()`` inside a Celery worker; nothing when the task runs eagerly.

    Without a broker (the demo, the tests) tasks run inside the calling process, e.g. the web
    server handling the admin's "retrain" button: that process must keep its priority.
    """
    from celery import current_task

    if current_task is not None and current_task.request.is_eager:
        return None
    return lower_cpu_priority()
