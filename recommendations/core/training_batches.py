"""Training batches of the network: windows cut from the sequences, batch sizes, length buckets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import Sequences
from recommendations.core.sequences import gap_buckets

__all__ = [
    "WindowIndex",
    "batch_size_for",
    "gather_windows",
    "length_bucketed_batches",
    "training_windows",
    "window_index",
]


@dataclass
class WindowIndex:
    """Where each training window lies, without its steps (three integers a window).

    Attributes
    ----------
    rows : ndarray of shape (n_windows,), int64
        Sequence row of each window.
    starts, ends : ndarray of shape (n_windows,), int64
        The window is steps ``starts:ends`` of its sequence (inputs all but the last, labels all
        but the first).
    """

    rows: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def lengths(self) -> np.ndarray:
        """Labelled positions (real input steps) of each window, int64."""
        lengths: np.ndarray = self.ends - self.starts - 1
        return lengths

    def take(self, picks: np.ndarray) -> WindowIndex:
        """The windows at positions ``picks``."""
        return WindowIndex(self.rows[picks], self.starts[picks], self.ends[picks])


def window_index(seqs: Sequences, length: int, windows_per_user: int) -> WindowIndex:
    """The windows :func:`training_windows` cuts, in the same order, as positions only.

    Memory is three int64 per window instead of four rows of ``length`` int64: the steps are
    gathered batch by batch (:func:`gather_windows`) from the sequences, which may be views of
    memory-mapped files (:mod:`recommendations.core.packed_events`).
    """
    rows: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    for r, items in enumerate(seqs.items):
        end = len(items)
        if end < 2:
            continue
        for _ in range(windows_per_user):
            start = max(0, end - length - 1)
            if end - start < 2:
                break
            rows.append(r)
            starts.append(start)
            ends.append(end)
            end = start + 1
            if start == 0:
                break
    return WindowIndex(*(np.asarray(v, dtype=np.int64) for v in (rows, starts, ends)))


def gather_windows(
    seqs: Sequences, windows: WindowIndex, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Left-padded inputs and labels of ``windows``, ``width`` columns (>= every window's length).

    The values equal the last ``width`` columns of :func:`training_windows`' rows for the same
    windows: a window's first gap is measured from the step before it, as in the whole sequence.

    Returns
    -------
    items, types, gaps, labels : ndarray of shape (len(windows), width), int64
    """
    out = np.zeros((4, len(windows), width), dtype=np.int64)
    for k, (r, start, end) in enumerate(zip(windows.rows, windows.starts, windows.ends, strict=True)):
        lead = 1 if start > 0 else 0
        times = np.asarray(seqs.times[r][start - lead : end], dtype=np.float64)
        gg = gap_buckets(times)[lead:]
        ii = seqs.items[r][start:end]
        n = end - start - 1
        out[0, k, -n:] = ii[:-1]
        out[1, k, -n:] = seqs.types[r][start : end - 1]
        out[2, k, -n:] = gg[:-1]
        out[3, k, -n:] = ii[1:]
    return out[0], out[1], out[2], out[3]


def training_windows(seqs: Sequences, length: int, windows_per_user: int) -> tuple[np.ndarray, ...]:
    """Cut each sequence into windows of ``length + 1`` steps from the newest backwards.

    Returns
    -------
    items, types, gaps, labels : ndarray of shape (n_windows, length), int64
        Left-padded inputs ``seq[:-1]`` and labels ``seq[1:]`` (0 = no loss term).
    """
    rows_i, rows_t, rows_g, rows_l = [], [], [], []
    for items, types, times in zip(seqs.items, seqs.types, seqs.times, strict=True):
        if len(items) < 2:
            continue
        gaps = gap_buckets(times)
        end = len(items)
        for _ in range(windows_per_user):
            start = max(0, end - length - 1)
            if end - start < 2:
                break
            ii, tt, gg = items[start:end], types[start:end], gaps[start:end]
            n = end - start - 1
            a = np.zeros((4, length), dtype=np.int64)
            a[0, -n:], a[1, -n:], a[2, -n:], a[3, -n:] = ii[:-1], tt[:-1], gg[:-1], ii[1:]
            rows_i.append(a[0])
            rows_t.append(a[1])
            rows_g.append(a[2])
            rows_l.append(a[3])
            end = start + 1
            if start == 0:
                break
    if not rows_i:
        z = np.zeros((0, length), dtype=np.int64)
        return z, z, z, z
    return np.stack(rows_i), np.stack(rows_t), np.stack(rows_g), np.stack(rows_l)


def batch_size_for(config: NetworkConfig, n_windows: int) -> int:
    """Training windows per batch: ``config.batch_size`` when set, else the automatic size.

    The automatic size is ``max_batch_size`` on large logs and shrinks (not below ``min_batch_size``)
    until one epoch makes ``min_steps_per_epoch`` optimizer steps: the loss covers every position of a
    window, so an epoch of a few hundred shoppers is otherwise a handful of Adam steps, and early
    stopping, counted in epochs, ends the run before the network has learnt anything.
    """
    if config.batch_size is not None:
        return int(config.batch_size)
    if config.min_steps_per_epoch <= 0:
        return int(config.max_batch_size)
    fitted = n_windows // int(config.min_steps_per_epoch)
    return int(max(config.min_batch_size, min(config.max_batch_size, fitted)))


def length_bucketed_batches(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """Index batches of windows with similar lengths, in random order.

    The windows are shuffled, cut into pools of 32 batches, each pool sorted by length and cut into
    batches, and the batches shuffled: every batch is still a random draw, but padded only to its own
    longest window, which on shop logs (most histories far shorter than ``max_sequence_length``)
    removes most of the padded positions a plain shuffle pays for.

    Parameters
    ----------
    lengths : LongTensor of shape (n,)
        Real (non-padding) steps of each window.

    Returns
    -------
    list of LongTensor
        Window indices of each batch; every window appears exactly once.
    """
    n = len(lengths)
    perm = torch.randperm(n, generator=generator)
    pool = batch_size * 32
    batches: list[torch.Tensor] = []
    for start in range(0, n, pool):
        chunk = perm[start : start + pool]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[k] for k in order]
