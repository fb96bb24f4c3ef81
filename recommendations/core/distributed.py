"""Data-parallel training across processes: PyTorch's DistributedDataParallel, nothing home-made.

Under ``torchrun`` every process (rank) runs the same training; :class:`~recommendations.core.trainer.Trainer`
asks :func:`context` whether a process group is up and then trains on its rank's shard of the
shoppers, with DDP averaging the gradients after each backward pass. Rank 0 alone scores validation
and broadcasts the figure, so every rank makes the same early-stopping decision and keeps the same
best weights (the weights are identical on every rank after each synchronised step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "context", "equal_batch_count", "init_from_environment", "shard_rows"]


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the process group (rank 0 of 1 outside one)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        """Whether gradients are synchronised with other processes."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process validates, logs and saves."""
        return self.rank == 0

    def wrap(self, network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``network`` in DistributedDataParallel when active, else itself.

        ``find_unused_parameters``: the propensity head (and the repeat head when the batch has no
        repeat target) takes no part in the next-item loss, and DDP would otherwise wait for their
        gradients forever.
        """
        if not self.active:
            return network
        device_ids = None
        if device.type == "cuda":
            # "cuda" without an index is the rank's current device (init_from_environment sets it)
            device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
        return torch.nn.parallel.DistributedDataParallel(
            network, device_ids=device_ids, find_unused_parameters=True
        )

    def broadcast_float(self, value: float) -> float:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def reduce_int(self, value: int, op: str) -> int:
        """``min`` or ``max`` of ``value`` over the ranks."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.MAX)
        return int(tensor.item())


def context() -> DistributedContext:
    """The current process group's rank and size (rank 0 of 1 when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size())
    return DistributedContext()


def init_from_environment(device: str = "auto") -> DistributedContext:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``...).

    NCCL when the process trains on CUDA, gloo on CPU. Outside torchrun (no ``WORLD_SIZE`` or 1)
    nothing is initialised. On CUDA each rank takes the GPU of its ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        return context()
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return context()


def shard_rows(rows: np.ndarray, ctx: DistributedContext) -> np.ndarray:
    """Positions of the windows whose shopper (sequence row) belongs to this rank.

    Shoppers are dealt round-robin by row (``DistributedSampler``'s split, on shoppers rather than
    on windows, so a shopper's windows train in one process).
    """
    if not ctx.active:
        return np.arange(len(rows))
    return np.flatnonzero(rows % ctx.world_size == ctx.rank)


def equal_batch_count(batches: list[torch.Tensor], ctx: DistributedContext) -> list[torch.Tensor]:
    """The rank's batches repeated from the start up to the largest count of any rank.

    DDP synchronises every backward pass, so every rank must make the same number of steps; like
    ``DistributedSampler``'s padding, the ranks with fewer batches re-use their first ones.
    """
    if not ctx.active or not batches:
        return batches
    target = ctx.reduce_int(len(batches), "max")
    return [batches[k % len(batches)] for k in range(target)]
