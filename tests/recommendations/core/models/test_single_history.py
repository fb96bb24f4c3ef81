"""The NumPy inference of one history against the torch network it mirrors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recommendations.core import scoring
from recommendations.core.dataset import Sequences
from recommendations.core.models import single_history
from recommendations.core.models.behavior_network import BehaviorNetwork


def network(layers: int = 2, heads: int = 1, dim: int = 16, max_length: int = 12, seed: int = 0):
    torch.manual_seed(seed)
    net = BehaviorNetwork(60, dim=dim, layers=layers, heads=heads, dropout=0.3, max_length=max_length).eval()
    with torch.no_grad():  # trained-looking norms and biases, not their initial ones and zeros
        for name, parameter in net.named_parameters():
            if name.endswith(("ln1.weight", "ln2.weight", "ln.weight")):
                parameter.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                parameter.normal_(0.0, 0.1)
    return net


def steps(length: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 61, length), rng.integers(1, 8, length), rng.integers(1, 32, length)


def torch_last_hidden(net: BehaviorNetwork, items, types, gaps) -> np.ndarray:
    with torch.inference_mode():
        inputs = [torch.from_numpy(np.asarray(a, dtype=np.int64)[None]) for a in (items, types, gaps)]
        return net.last_hidden(*inputs).numpy()


@pytest.mark.parametrize(("layers", "heads", "dim"), [(1, 1, 16), (2, 1, 16), (2, 2, 16), (3, 4, 32)])
@pytest.mark.parametrize("length", [1, 2, 7, 12])
def test_numpy_states_equal_the_networks_up_to_float32_rounding(layers, heads, dim, length):
    # given a network in eval mode and one unpadded history (1 step up to the longest kept)
    net = network(layers, heads, dim, seed=layers * 10 + heads)
    items, types, gaps = steps(length, seed=length)
    # when its last hidden state is computed by NumPy
    got = single_history.encoder_for(net).last_hidden(items, types, gaps)
    # then it is the network's, shape (1, dim), float32
    assert got.shape == (1, dim) and got.dtype == np.float32
    np.testing.assert_allclose(got, torch_last_hidden(net, items, types, gaps), rtol=1e-5, atol=1e-5)


def test_the_encoder_is_rebuilt_after_the_weights_change_in_place():
    # given a network whose encoder was built
    net = network()
    items, types, gaps = steps(9, seed=3)
    first = single_history.encoder_for(net)
    assert single_history.encoder_for(net) is first  # kept while nothing changes
    before = first.last_hidden(items, types, gaps)
    # when an optimiser step changes a weight in place
    with torch.no_grad():
        net.blocks[0].qkv.weight.mul_(1.5)
    # then a new encoder follows the new weights
    again = single_history.encoder_for(net)
    assert again is not first
    after = again.last_hidden(items, types, gaps)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, torch_last_hidden(net, items, types, gaps), rtol=1e-5, atol=1e-5)
    # and a network switched to training, or moved to float64, after its encoder was built is left to torch
    assert single_history.encoder_for(net.train()) is None
    assert single_history.encoder_for(net.eval().double()) is None


def test_other_networks_and_modes_are_left_to_torch():
    # given a network in training mode, one in float64, one with the tanh GELU, and a subclass
    training = network().train()
    doubled = network().double()
    tanh = network()
    tanh.blocks[0].ff[1] = nn.GELU(approximate="tanh")

    class Custom(BehaviorNetwork):
        pass

    custom = Custom(10, dim=8, layers=1, max_length=4).eval()
    # then none gets a NumPy encoder
    for net in (training, doubled, tanh, custom):
        assert single_history.encoder_for(net) is None


def test_network_logits_of_one_history_use_numpy_and_match_the_batch_path():
    # given a network and one history, scored alone (the web request's path) and among others
    net = network()
    histories = [steps(n, seed=n) for n in (12, 5, 9)]
    seqs = Sequences(
        ["0", "1", "2"],
        [h[0] for h in histories],
        [h[1] for h in histories],
        [np.cumsum(np.full(len(h[0]), 30.0)) for h in histories],
    )
    together = scoring.network_logits(net, seqs).clone()
    for row in range(3):
        alone = Sequences(["0"], [seqs.items[row]], [seqs.types[row]], [seqs.times[row]])
        # then the same logits up to float32 rounding
        got = scoring.network_logits(net, alone)
        torch.testing.assert_close(got, together[row : row + 1], rtol=1e-4, atol=1e-5)
    assert single_history.encoder_for(net) is not None


def test_an_empty_history_is_scored_by_torch(monkeypatch):
    # given one empty history (one padded step), and NumPy inference that would fail if asked
    net = network()
    empty = Sequences(["0"], [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)], [np.zeros(0)])

    def refuse(*args):
        raise AssertionError("padding goes to torch")

    monkeypatch.setattr(single_history.SingleHistoryEncoder, "last_hidden", refuse)
    # when scored
    logits = scoring.network_logits(net, empty)
    # then the logits are torch's for the padded step
    with torch.inference_mode():
        padded = torch.zeros((1, 1), dtype=torch.int64)
        expected = net.next_item_scores(net.last_hidden(padded, padded, padded), padded, padded, padded)
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)


@pytest.mark.parametrize("length", [1, 5, 12, 20])
def test_one_history_uses_the_newest_steps_and_their_gaps_as_the_padded_batch_does(length):
    # given one history up to longer than the network keeps, at uneven times (every gap bucket)
    from recommendations.core.batch import padded_inputs

    net = network(max_length=12)
    items, types, _ = steps(length, seed=40 + length)
    times = np.cumsum(np.random.default_rng(length).exponential(5_000.0, length))
    seqs = Sequences(["0"], [items], [types], [times])
    # when its logits are computed (NumPy inputs and states)
    got = scoring.network_logits(net, seqs)
    # then they are torch's on the padded batch's inputs: the newest 12 steps, the first one's
    # gap measured from the step before it
    with torch.inference_mode():
        inputs = padded_inputs(seqs, min(length, 12))
        window = [torch.from_numpy(a) for a in inputs]
        expected = net.next_item_scores(net.last_hidden(*window), *window)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
