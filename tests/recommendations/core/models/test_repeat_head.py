"""The repeat mode: the loss is the mixture's cross-entropy, scores are its log-probabilities, the
gate learns how often shoppers come back, and networks saved without the head still load."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from recommendations.core import scoring
from recommendations.core.dataset import Sequences
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.recommender import BehaviorRecommender
from tests.recommendations.core.conftest import T0


def network(n_items: int = 40, dim: int = 16, max_length: int = 10, seed: int = 0) -> BehaviorNetwork:
    torch.manual_seed(seed)
    net = BehaviorNetwork(n_items, dim=dim, layers=1, heads=1, dropout=0.0, max_length=max_length).eval()
    with torch.no_grad():  # a distance bias and gate that are not their initial zeros
        assert net.repeat is not None
        net.repeat.distance.weight.normal_(0.0, 1.0)
        net.repeat.gate.bias.fill_(0.3)
    return net


def windows(n_items: int, rows: int, length: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Left-padded windows with repeated items (few distinct items per row)."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, 6, (rows, length), generator=g) * 7 % n_items + 1
    items[0, :3] = 0
    items[1, :6] = 0
    types = (items > 0).long() * torch.randint(1, 4, (rows, length), generator=g)
    gaps = (items > 0).long() * torch.randint(1, 8, (rows, length), generator=g)
    return items, types, gaps


def test_the_loss_is_the_cross_entropy_of_the_two_modes_mixture():
    # given windows whose next items are sometimes in the window, sometimes not
    net = network()
    items, types, gaps = windows(40, 4, 10, seed=1)
    labels = torch.roll(items, -1, dims=1)
    labels[:, -1] = torch.tensor([3, 8, 22, 40])
    labels = labels * (items > 0)

    # when
    with torch.no_grad():
        loss = float(net.next_item_loss(items, types, gaps, labels))

        # then it equals -log(g * P_repeat + (1 - g) * P_catalogue), written out position by position
        hidden = net.encode(items, types, gaps)
        steps = net.embed_steps(items, types, gaps)
        head = net.repeat
        assert head is not None
        terms = []
        for b in range(items.shape[0]):
            for t in range(items.shape[1]):
                y = int(labels[b, t])
                if not y:
                    continue
                h = hidden[b, t]
                p_catalogue = torch.softmax(net.scores(h), 0)[y - 1]
                seen = [s for s in range(t + 1) if items[b, s] > 0]
                att = torch.stack(
                    [
                        head.query(h) @ head.key(steps[b, s]) * head.scale + head.distance.weight[t - s, 0]
                        for s in seen
                    ]
                ).softmax(0)
                p_repeat = sum(float(a) for a, s in zip(att, seen, strict=True) if int(items[b, s]) == y)
                gate = float(torch.sigmoid(head.gate(h)))
                terms.append(-math.log(gate * p_repeat + (1 - gate) * float(p_catalogue)))
    assert math.isclose(loss, sum(terms) / len(terms), rel_tol=1e-5)


def test_scores_are_log_probabilities_that_keep_the_catalogue_order_of_unseen_items():
    # given
    net = network()
    items, types, gaps = windows(40, 5, 10, seed=2)

    # when
    with torch.inference_mode():
        hidden = net.last_hidden(items, types, gaps)
        scores = net.next_item_scores(hidden, items, types, gaps)
        logits = net.scores(hidden)

    # then every row is a distribution over the catalogue
    torch.testing.assert_close(scores.exp().sum(1), torch.ones(5), rtol=0, atol=1e-5)
    for row in range(5):
        seen = {int(i) - 1 for i in items[row] if i > 0}
        unseen = [j for j in range(40) if j not in seen]
        # items outside the window keep the catalogue's order and differences
        torch.testing.assert_close(
            scores[row, unseen] - scores[row, unseen].max(), logits[row, unseen] - logits[row, unseen].max()
        )
        # items in the window get the repeat mode's mass on top
        base = scores[row, unseen[0]] - logits[row, unseen[0]]
        assert all(float(scores[row, j]) > float(logits[row, j] + base) + 1e-6 for j in seen)


def test_batches_of_many_lengths_score_as_each_history_alone():
    # given histories of many lengths, scored in several buckets
    net = network(max_length=8)
    rng = np.random.default_rng(3)
    lengths = [1, 9, 3, 8, 2, 5, 12, 4]
    seqs = Sequences(
        [str(i) for i in range(len(lengths))],
        [rng.integers(1, 8, n) * 5 % 40 + 1 for n in lengths],
        [rng.integers(1, 4, n) for n in lengths],
        [np.cumsum(rng.exponential(3_000.0, n)) for n in lengths],
    )

    # when
    together = scoring.network_logits(net, seqs, bucket=3).clone()
    alone = torch.cat(
        [scoring.network_logits(net, seqs.take(np.array([i]))).clone() for i in range(len(lengths))]
    )

    # then
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def _train(sequences: list[list[int]], n_items: int, steps: int = 150) -> BehaviorNetwork:
    torch.manual_seed(0)
    net = BehaviorNetwork(n_items, dim=16, layers=1, heads=1, dropout=0.0, max_length=9).train()
    seqs = torch.tensor(sequences)
    items, labels = seqs[:, :-1], seqs[:, 1:]
    ones = torch.ones_like(items)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        optimiser.zero_grad()
        net.next_item_loss(items, ones, ones, labels).backward()
        optimiser.step()
    return net.eval()


def _gate(net: BehaviorNetwork, sequences: list[list[int]]) -> float:
    items = torch.tensor(sequences)[:, :-1]
    ones = torch.ones_like(items)
    with torch.inference_mode():
        assert net.repeat is not None
        gate, _ = net.repeat.step_log_probs(
            net.last_hidden(items, ones, ones), net.embed_steps(items, ones, ones), items
        )
    return float(torch.sigmoid(gate).mean())


def test_the_gate_learns_how_often_shoppers_come_back():
    # given shoppers who cycle through three items of their own, and shoppers who never come back
    rng = np.random.default_rng(4)
    n_items = 300
    cycling = [
        [int(x) for x in np.tile(rng.choice(n_items, 3, replace=False) + 1, 4)[:10]] for _ in range(120)
    ]
    onwards = [[int(x) for x in rng.choice(n_items, 10, replace=False) + 1] for _ in range(120)]

    # when a network learns each log
    comes_back, never = _train(cycling, n_items), _train(onwards, n_items)

    # then the first puts its weight on the repeat mode and ranks the item due next first; the
    # second keeps it on the catalogue
    assert _gate(comes_back, cycling) > 0.9
    assert _gate(never, onwards) < 0.1
    items = torch.tensor(cycling)[:, :-1]
    ones = torch.ones_like(items)
    with torch.inference_mode():
        scores = comes_back.next_item_scores(comes_back.last_hidden(items, ones, ones), items, ones, ones)
    hits = (scores.argmax(1) + 1 == torch.tensor(cycling)[:, -1]).float().mean()
    assert float(hits) > 0.9


def test_a_model_saved_without_the_head_loads_and_scores_as_before(network_model, tmp_path):
    # given a fitted model whose network predates the repeat mode
    old = copy.deepcopy(network_model)
    net = old.network_
    plain = BehaviorNetwork(
        net.n_items,
        net.dim,
        len(net.blocks),
        net.blocks[0].heads,
        0.0,
        net.max_length,
        n_scalar=net.prop_head[0].in_features - net.dim,
        repeat=False,
    )
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("repeat.")})
    old.network_ = plain.eval()
    old.save(tmp_path / "old")
    histories = [[("sku-002", "view", T0), ("sku-003", "add_to_cart", T0 + 30)]]

    # when
    loaded = BehaviorRecommender.load(tmp_path / "old")

    # then it has no repeat mode and ranks as the saved network did
    assert loaded.network_.repeat is None
    assert loaded.recommend(histories, n=8, now=T0) == old.recommend(histories, n=8, now=T0)


def test_lists_that_hide_the_history_blend_the_catalogue_softmax_whatever_the_gate(network_model):
    # given the fitted network blended half and half with co-visitation, once with a gate that
    # sends nearly all mass to the shopper's own items and once with one that sends nearly none
    def with_gate(bias: float) -> BehaviorRecommender:
        model = copy.deepcopy(network_model)
        weights = {"network": 0.5, "covisitation": 0.5}
        model.novel_weights_, model.blend_weights_ = dict(weights), dict(weights)
        assert model.network_.repeat is not None
        with torch.no_grad():
            model.network_.repeat.gate.weight.zero_()
            model.network_.repeat.gate.bias.fill_(bias)
        return model

    returning, new_seeking = with_gate(8.0), with_gate(-8.0)
    histories = [
        [("sku-002", "view", T0), ("sku-003", "add_to_cart", T0 + 30)],
        [("sku-010", "view", T0), ("sku-011", "view", T0 + 60), ("sku-010", "view", T0 + 90)],
    ]
    seen = [{item for item, _, _ in h} for h in histories]

    def scored(model: BehaviorRecommender, hide: bool) -> list[list[tuple[str, float]]]:
        return model.recommend(histories, n=8, exclude=seen, seen_excluded=hide, now=T0)

    # when / then lists that hide the history get the same items and scores under both gates
    assert scored(returning, True) == scored(new_seeking, True)
    # while lists that may show seen items mix the gate in, so the same unseen items score otherwise
    differ = [
        a != b
        for lists in zip(scored(returning, False), scored(new_seeking, False), strict=True)
        for a, b in zip(*lists, strict=True)
    ]
    assert any(differ)
