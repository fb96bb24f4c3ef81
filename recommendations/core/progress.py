"""Progress reports of a fit: the callback type and a wrapper that times each stage."""

from __future__ import annotations

import time
from collections.abc import Callable

#: ``progress(stage, fraction)``: ``fraction`` runs from 0 to 1 within each named stage
Progress = Callable[[str, float], None]


def stage_clock(stage_seconds: dict[str, float], progress: Progress | None, t_start: float) -> Progress:
    """A progress callback that also records wall seconds per stage into ``stage_seconds``.

    A stage's time runs from its first report to the first report of the next stage (the
    training report shows where a fit spent its time); ``t_start`` is ``time.perf_counter()``
    at the start of the fit.
    """
    current_stage, started = "", t_start

    def report_progress(stage: str, fraction: float) -> None:
        nonlocal current_stage, started
        now = time.perf_counter()
        if stage != current_stage:
            if current_stage:
                seconds = stage_seconds.get(current_stage, 0.0) + now - started
                stage_seconds[current_stage] = round(seconds, 2)
            current_stage, started = stage, now
        if progress is not None:
            progress(stage, fraction)

    return report_progress
