"""The training loop, kept apart from the network: seeding, devices, precision, Adam, early stopping.

Its batches come from :mod:`recommendations.core.training_batches`, its validation from
:mod:`recommendations.core.validation`.
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from recommendations.core import distributed
from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import Sequences
from recommendations.core.distributed import equal_batch_count, shard_rows
from recommendations.core.metrics import ndcg_at_k
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.progress import Progress
from recommendations.core.runtime import cpu_has_native_bf16, keep_freed_heap, release_freed_heap
from recommendations.core.training_batches import (
    batch_size_for,
    gather_windows,
    length_bucketed_batches,
    window_index,
)
from recommendations.core.validation import Validation, score_sequences, validation_ranks


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and ``random``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def training_precision(config: NetworkConfig, device: torch.device) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"``: the arithmetic of :class:`Trainer` for ``config`` on ``device``.

    ``"auto"`` is mixed precision wherever the device has fast half-precision arithmetic: bf16 on CPUs
    with native bf16 and on CUDA devices that support it, fp16 (with loss scaling) on older GPUs.
    """
    if config.train_precision != "auto":
        return config.train_precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def _optimizer(network: BehaviorNetwork, config: NetworkConfig) -> torch.optim.Adam:
    """Adam; fused (one kernel for every parameter instead of ~15 small ops each) where torch has it."""
    lr, decay = config.learning_rate, config.weight_decay
    try:
        return torch.optim.Adam(network.parameters(), lr=lr, weight_decay=decay, fused=True)
    except (RuntimeError, ValueError):
        # devices without a fused kernel: the per-parameter implementation (same update rule)
        return torch.optim.Adam(network.parameters(), lr=lr, weight_decay=decay)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` intra-op threads inside the block, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class TrainResult:
    """What one training run did."""

    epochs_run: int = 0
    best_epoch: int = 0
    best_ndcg: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    interactions_per_second: float = 0.0
    cpu_us_per_interaction: float = 0.0
    positions_per_epoch: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 0


class Trainer:
    """Next-item training of a :class:`BehaviorNetwork` with early stopping on validation NDCG@10.

    Parameters
    ----------
    config : NetworkConfig
    progress : callable (stage: str, fraction: float) -> None, optional
    stage : str
        Name passed to ``progress``.
    """

    def __init__(self, config: NetworkConfig, progress: Progress | None = None, stage: str = "train") -> None:
        self.config = config
        self.progress = progress
        self.stage = stage

    def fit(
        self,
        network: BehaviorNetwork,
        train: Sequences,
        validation: Validation | None = None,
        epochs: int | None = None,
    ) -> TrainResult:
        """Train ``network`` in place; with ``validation``, the best epoch's weights are restored.

        Parameters
        ----------
        network : BehaviorNetwork
        train : Sequences
        validation : Validation, optional
        epochs : int, optional
            Overrides ``config.epochs`` (used by the refit on all data).
        """
        cfg = self.config
        seed_everything(cfg.random_seed)
        device = resolve_device(cfg.device)
        epochs = cfg.epochs if epochs is None else epochs
        precision = training_precision(cfg, device)
        keep_freed_heap()
        result = TrainResult(device=str(device), precision=precision)
        t_start = time.perf_counter()
        ctx = distributed.context()
        with torch_threads(cfg.threads):
            network.to(device)
            model = ctx.wrap(network, device)
            # created before the clock starts: its first use imports torch._dynamo (seconds, once per process)
            opt = _optimizer(network, cfg)
            scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
            t_prep, c_prep = time.perf_counter(), time.process_time()
            # positions only: each batch's steps are gathered when it is drawn, so memory grows with
            # the batch, not with the log (the sequences may be views of memory-mapped files)
            windows = window_index(train, network.max_length, cfg.windows_per_user)
            n_windows = len(windows)
            result.positions_per_epoch = int(windows.lengths.sum())
            result.batch_size = batch_size = batch_size_for(cfg, n_windows)
            if ctx.active and ctx.reduce_int(len(shard_rows(windows.rows, ctx)), "min") > 0:
                # each rank its shoppers; the global batch stays the configured size
                windows = windows.take(shard_rows(windows.rows, ctx))
                batch_size = -(-batch_size // ctx.world_size)
            lengths = torch.from_numpy(windows.lengths)
            local_positions = int(windows.lengths.sum())
            sampled = network.n_items > cfg.sampled_softmax_threshold
            gen = torch.Generator().manual_seed(cfg.random_seed + ctx.rank)
            best_state, best, bad = None, -1.0, 0
            train_seconds = 0.0
            # the one-off window building is charged to the first epoch (it is part of the data pipeline)
            prep_seconds = time.perf_counter() - t_prep
            prep_cpu = time.process_time() - c_prep
            train_cpu = 0.0
            for epoch in range(1, epochs + 1):
                if not n_windows:
                    break
                model.train()
                t0, c0 = time.perf_counter(), time.process_time()
                total = 0.0
                batches = equal_batch_count(length_bucketed_batches(lengths, batch_size, gen), ctx)
                for idx in batches:
                    # the batch's windows have similar lengths: only the columns of its longest one
                    # (exact: leading padding is masked and positions count from the newest step)
                    width = int(lengths[idx].max())
                    items, types, gaps, labels = (
                        torch.from_numpy(a).to(device, non_blocking=True)
                        for a in gather_windows(train, windows.take(idx.numpy()), width)
                    )
                    negatives = None
                    if sampled:
                        negatives = torch.randint(
                            1, network.n_items + 1, (cfg.num_negatives,), generator=gen
                        ).to(device)
                    with _autocast(device, precision):
                        # forward is the next-item loss: through DDP's __call__ its gradient hooks fire
                        loss = model(items, types, gaps, labels, negatives)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    total += float(loss.detach()) * len(idx)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0 + (prep_seconds if epoch == 1 else 0.0)
                cpu = time.process_time() - c0 + (prep_cpu if epoch == 1 else 0.0)
                train_seconds += dt
                train_cpu += cpu
                row = {
                    "epoch": epoch,
                    "loss": round(total / max(len(windows), 1), 5),
                    "seconds": round(dt, 3),
                    "interactions_per_second": round(result.positions_per_epoch / max(dt, 1e-9), 1),
                    # CPU seconds of every thread of the process: robust to a shared, busy machine
                    "cpu_seconds": round(cpu, 3),
                    "cpu_us_per_interaction": round(cpu / max(local_positions, 1) * 1e6, 2),
                }
                result.epochs_run = epoch
                if validation is not None and len(validation.targets):
                    ndcg = -1.0
                    if ctx.is_main:
                        logits, _ = score_sequences(network, validation.inputs, device)
                        ndcg = ndcg_at_k(validation_ranks(logits, validation))
                    ndcg = ctx.broadcast_float(ndcg)
                    row["valid_ndcg@10"] = round(ndcg, 5)
                    # patience restarts only on a relative gain of at least min_improvement
                    bad = 0 if ndcg > best * (1.0 + cfg.min_improvement) else bad + 1
                    if ndcg > best:
                        best, result.best_epoch = ndcg, epoch
                        best_state = copy.deepcopy(network.state_dict())
                else:
                    result.best_epoch = epoch
                result.history.append(row)
                if self.progress:
                    self.progress(self.stage, epoch / epochs)
                if validation is not None and bad >= cfg.patience:
                    break
            if best_state is not None:
                network.load_state_dict(best_state)
                result.best_ndcg = best
        result.seconds = time.perf_counter() - t_start
        result.interactions_per_second = (
            result.positions_per_epoch * result.epochs_run / train_seconds if train_seconds else 0.0
        )
        result.cpu_us_per_interaction = (
            train_cpu / max(local_positions * result.epochs_run, 1) * 1e6 if result.epochs_run else 0.0
        )
        network.eval()
        release_freed_heap()
        return result
