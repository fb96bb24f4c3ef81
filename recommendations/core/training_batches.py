"""Training batches of the network: windows cut from the sequences, batch sizes, length buckets."""

from __future__ import annotations

import numpy as np
import torch

from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import Sequences
from recommendations.core.sequences import gap_buckets

__all__ = ["batch_size_for", "length_bucketed_batches", "training_windows"]


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
