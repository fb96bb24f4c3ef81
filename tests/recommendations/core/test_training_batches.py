"""Training windows as positions, gathered batch by batch, equal to the materialised windows."""

from __future__ import annotations

import numpy as np
import torch

from recommendations.core.dataset import ItemIndex
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.packed_events import pack_sequences, packed_sequences
from recommendations.core.sequences import build_sequences, clean_log
from recommendations.core.trainer import Trainer, seed_everything
from recommendations.core.training_batches import gather_windows, training_windows, window_index
from tests.recommendations.core.conftest import fast_config, planted_log

WEIGHTS = {"view": 1.0, "add_to_cart": 3.0}


def _sequences(n_users: int = 60, length: int = 23):
    log = clean_log(planted_log(n_users=n_users, length=length, seed=2), WEIGHTS)
    index = ItemIndex(sorted(set(log.items)))
    return build_sequences(log, index, WEIGHTS), len(index)


def test_gathered_windows_equal_the_materialised_ones():
    # given: histories longer than the window, cut into several windows each
    seqs, _ = _sequences()
    expected = training_windows(seqs, 8, 3)

    # when
    windows = window_index(seqs, 8, 3)
    gathered = gather_windows(seqs, windows, 8)

    # then
    assert len(windows) == len(expected[0]) == 60 * 3
    for got, want in zip(gathered, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert windows.lengths.tolist() == (expected[0] > 0).sum(1).tolist()


def test_a_narrow_batch_is_the_last_columns_of_the_full_width():
    # given
    seqs, _ = _sequences(n_users=10, length=5)
    windows = window_index(seqs, 8, 2)
    full = gather_windows(seqs, windows, 8)

    # when: the batch's longest window has 4 steps
    narrow = gather_windows(seqs, windows, int(windows.lengths.max()))

    # then
    assert narrow[0].shape == (10, 4)
    for got, want in zip(narrow, full, strict=True):
        np.testing.assert_array_equal(got, want[:, -4:])


def _trained(seqs, n_items: int, repeat: bool) -> dict[str, torch.Tensor]:
    config = fast_config(epochs=3, max_sequence_length=8, windows_per_user=2, train_precision="fp32")
    seed_everything(config.random_seed)
    network = BehaviorNetwork(n_items, 16, 1, 1, 0.1, 8, repeat=repeat)
    Trainer(config).fit(network, seqs)
    return network.state_dict()


def test_training_from_packed_files_gives_the_same_network(tmp_path):
    # given: the same sequences in memory and memory-mapped from disk
    seqs, n_items = _sequences()
    mapped = packed_sequences(pack_sequences(seqs, tmp_path))

    for repeat in (False, True):
        # when
        in_memory = _trained(seqs, n_items, repeat)
        from_disk = _trained(mapped, n_items, repeat)

        # then: bit for bit (same windows, same batches, same seed)
        assert in_memory.keys() == from_disk.keys()
        for name, weight in in_memory.items():
            assert torch.equal(weight, from_disk[name]), name
