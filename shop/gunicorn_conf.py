"""Gunicorn settings of the Docker image (``--config python:shop.gunicorn_conf``).

prometheus-client's multiprocess mode: every worker writes its metric values to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` (any worker) adds them up. The folder must be
set before any worker imports prometheus-client, so it is set here, in the master: the one
given in the environment, else a new temporary folder. It is emptied when gunicorn starts
(values of a previous run would be added to this one's), and a dead worker's files are
marked so its live gauges stop counting (its counters keep their totals).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")


def on_starting(server: Any) -> None:
    """Empty the metrics folder of a previous run."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its files stop counting for the live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
