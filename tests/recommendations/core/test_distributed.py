"""The process group seen by the trainer: shards of shoppers, and nothing at all outside torchrun."""

from __future__ import annotations

import numpy as np
import torch

from recommendations.core.distributed import DistributedContext, context, equal_batch_count, shard_rows


def test_outside_torchrun_the_process_is_rank_0_of_1_and_changes_nothing():
    # given
    ctx = context()
    network = torch.nn.Linear(2, 2)
    batches = [torch.tensor([0, 1]), torch.tensor([2])]

    # when / then
    assert (ctx.rank, ctx.world_size, ctx.active, ctx.is_main) == (0, 1, False, True)
    assert ctx.wrap(network, torch.device("cpu")) is network
    assert ctx.broadcast_float(0.25) == 0.25
    assert ctx.reduce_int(7, "max") == 7
    assert equal_batch_count(batches, ctx) is batches
    assert shard_rows(np.array([4, 4, 9]), ctx).tolist() == [0, 1, 2]


def test_each_rank_takes_every_window_of_its_shoppers():
    # given: windows of shoppers (sequence rows) 0, 0, 1, 2, 3, 3, 5
    rows = np.array([0, 0, 1, 2, 3, 3, 5])

    # when
    first = shard_rows(rows, DistributedContext(rank=0, world_size=2))
    second = shard_rows(rows, DistributedContext(rank=1, world_size=2))

    # then: shoppers dealt round-robin, no window twice, none left out
    assert first.tolist() == [0, 1, 3]
    assert second.tolist() == [2, 4, 5, 6]
