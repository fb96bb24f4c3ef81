"""Background jobs lower their own CPU priority, on every thread, and never raise it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from recommendations.checks import check_settings

ROOT = Path(__file__).resolve().parents[3]

# Runs in a child process: lowering the priority of the test process itself would slow the suite.
PROBE = """
import json, os, sys, threading
from recommendations.runtime.priority import lower_cpu_priority

started = threading.Event()
release = threading.Event()
def worker():
    started.set()
    release.wait()
early = threading.Thread(target=worker)
early.start()
started.wait()
applied = lower_cpu_priority(int(sys.argv[1]))
late = threading.Thread(target=release.wait)
late.start()
tids = [int(t) for t in os.listdir("/proc/self/task")]
niceness = {t: os.getpriority(os.PRIO_PROCESS, t) for t in tids}
idle = [os.sched_getscheduler(t) == os.SCHED_IDLE for t in tids]
release.set()
early.join(); late.join()
print(json.dumps({"applied": applied, "threads": sorted(niceness.values()), "idle": idle}))
"""


def _probe(target: int, *, start_niceness: int = 0) -> dict:
    command = [sys.executable, "-c", PROBE, str(target)]
    if start_niceness:
        command = ["nice", "-n", str(start_niceness), *command]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux behaviour")
def test_every_thread_existing_and_new_gets_the_background_niceness() -> None:
    expected = max(7, os.getpriority(os.PRIO_PROCESS, 0))  # the suite itself may run under nice
    result = _probe(7)
    assert result["applied"] == expected
    # main thread, the thread started before the call and the one started after it
    assert result["threads"] == [expected] * 3
    # below the lowest niceness the threads keep the normal policy
    assert result["idle"] == [expected == 19] * 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux behaviour")
def test_the_lowest_niceness_also_moves_every_thread_to_sched_idle() -> None:
    result = _probe(19)
    assert result["applied"] == 19
    assert result["threads"] == [19, 19, 19]
    assert result["idle"] == [True, True, True]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux behaviour")
def test_a_process_started_nicer_keeps_its_lower_priority() -> None:
    started_at = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 12)  # `nice -n 12` adds to ours
    result = _probe(5, start_niceness=12)
    assert result["applied"] == started_at
    assert result["threads"] == [started_at] * 3


def test_niceness_none_leaves_the_priority_alone() -> None:
    from recommendations.runtime.priority import lower_cpu_priority

    before = os.getpriority(os.PRIO_PROCESS, 0)
    with override_settings(RECOMMENDER={"BACKGROUND_NICENESS": None}):
        assert lower_cpu_priority() is None
    assert os.getpriority(os.PRIO_PROCESS, 0) == before


@pytest.mark.parametrize("value", [-1, 20, "10", 2.5, True])
def test_invalid_niceness_is_a_startup_error(value: object) -> None:
    with override_settings(RECOMMENDER={"BACKGROUND_NICENESS": value}):
        errors = [e for e in check_settings() if e.id == "recommendations.E004"]
    assert len(errors) == 1
    assert "BACKGROUND_NICENESS" in errors[0].msg


@pytest.mark.parametrize("value", [None, 0, 10, 19])
def test_valid_niceness_passes_the_check(value: object) -> None:
    with override_settings(RECOMMENDER={"BACKGROUND_NICENESS": value}):
        assert not [e for e in check_settings() if e.id == "recommendations.E004"]


@pytest.mark.django_db
def test_an_eager_task_leaves_the_calling_process_priority_alone() -> None:
    """Without a broker the web process itself runs the task: it must not slow itself down."""
    from recommendations.tasks import rebuild_profiles

    before = os.getpriority(os.PRIO_PROCESS, 0)
    with override_settings(RECOMMENDER={"BACKGROUND_NICENESS": 19}):
        result = rebuild_profiles.delay(full=True).get()
    assert result["users"] == 0
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
