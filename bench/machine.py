"""How fast this machine is right now: a reference figure to print next to a benchmark's results.

Shared virtual machines change speed from hour to hour (the same pure-Python loop can take half
as long again on the same machine kind), so a table of requests per second means little without
the speed of the machine during the run. A
benchmark calls :func:`measure` at its start and at its end and prints :func:`describe` of both.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

_ADDITIONS = 2_000_000
_MATRIX = 256


@dataclass(frozen=True)
class MachineSpeed:
    #: seconds a pure-Python loop of 10 M additions takes (median of three shorter loops, scaled)
    python_seconds: float
    #: float32 matrix products on one torch thread, GFLOP/s (median of three timed bursts)
    torch_gflops: float


# run at module level (globals in a dict), as ``python -c "s=0\nfor i in range(10_000_000): s+=i"``
# runs it: the form the earlier closing notes quote
_LOOP = compile(f"s = 0\nfor i in range({_ADDITIONS}):\n    s += i\n", "<machine speed>", "exec")


def _python_loop() -> float:
    started = time.perf_counter()
    exec(_LOOP, {})  # a constant loop compiled above, no outside input
    return (time.perf_counter() - started) * (10_000_000 / _ADDITIONS)


def _torch_burst() -> float:
    import torch

    a = torch.rand(_MATRIX, _MATRIX)
    b = torch.rand(_MATRIX, _MATRIX)
    out = torch.empty(_MATRIX, _MATRIX)
    torch.mm(a, b, out=out)  # warm-up (allocation, kernel choice)
    rounds = 40
    started = time.perf_counter()
    for _ in range(rounds):
        torch.mm(a, b, out=out)
    seconds = time.perf_counter() - started
    return 2 * _MATRIX**3 * rounds / seconds / 1e9


def measure() -> MachineSpeed:
    """The machine's speed now (about a second): Python interpreter and one-thread torch figures."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        python = statistics.median(_python_loop() for _ in range(3))
        gflops = statistics.median(_torch_burst() for _ in range(3))
    finally:
        torch.set_num_threads(threads)
    return MachineSpeed(python_seconds=python, torch_gflops=gflops)


def describe(start: MachineSpeed, end: MachineSpeed) -> str:
    """One line for a results table: both measurements, start -> end."""
    return (
        f"Python loop of 10 M additions {start.python_seconds:.2f} -> {end.python_seconds:.2f} s; "
        f"torch float32 matmul, 1 thread, {start.torch_gflops:.0f} -> {end.torch_gflops:.0f} GFLOP/s"
    )
