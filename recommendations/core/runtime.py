"""Process-level CPU settings that make training fast: the C allocator and native bfloat16 detection.

Kept apart from the training loop because both concern the machine, not the model: glibc's ``mallopt``
and ``malloc_trim`` through ``ctypes``, and the CPU's instruction flags.
"""

from __future__ import annotations

import ctypes
import functools
import platform
from pathlib import Path

import torch

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


@functools.cache
def keep_freed_heap() -> bool:
    """Let glibc keep freed training tensors for reuse instead of returning them to the kernel.

    A training step allocates and frees tensors of up to (positions x catalogue) floats (10 MB for
    6,400 positions and 400 items). glibc serves such blocks with fresh ``mmap`` pages, or trims them off
    the heap top as soon as they are freed, so every step faulted in (and zeroed) hundreds of MB again:
    about 60,000 page faults and an eighth of the CPU time per epoch on the demo shop. Keeping up to
    256 MB of freed heap (blocks below 32 MB come from the heap) removes them; :func:`release_freed_heap`
    hands the memory back after a fit. Once per process; ``False`` where the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        return False
    ok = all(
        libc.mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, 32 << 20),
            (_M_TRIM_THRESHOLD, 256 << 20),
            (_M_TOP_PAD, 16 << 20),
        )
    )
    return ok


def release_freed_heap() -> None:
    """Return the freed heap kept by :func:`keep_freed_heap` to the kernel (a fit's peak stays no longer)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (x86 avx512_bf16 / AMX, Arm bf16).

    Without those instructions oneDNN emulates bfloat16 through float32 and autocast would only add
    conversions, so ``train_precision="auto"`` stays float32 there.
    """
    if not getattr(torch.backends, "mkldnn", None) or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "bf16" in flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})
