"""The purchase-propensity estimator: time-cut examples, training, prediction, persistence.

The head reads the behaviour network's last hidden state (a frozen input) and the scalar
recency / frequency / funnel features of :mod:`recommendations.core.propensity`. Its weights live
in the network (``prop_head``, ``prop_linear``) and travel with its state; the standardisation and
the base rate travel as ``propensity.*`` tensors and metadata keys of the artefact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import EventLog, History
from recommendations.core.metrics import roc_auc
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.propensity import (
    DAY,
    N_FEATURES,
    label_cuts,
    purchase_labels,
    scalar_features,
    truncate,
)
from recommendations.core.trainer import seed_everything, torch_threads

#: histories (already cut at "now") -> the network's last hidden state, shape (n, dim) float32
Encoder = Callable[[list], np.ndarray]
Progress = Callable[[str, float], None]


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


class PropensityHead:
    """Probability that a shopper buys within a label window, learned from time cuts of the log.

    Attributes
    ----------
    mean_, std_ : ndarray of shape (N_FEATURES,), float32
        Standardisation of the scalar features.
    base_rate_ : float
        Share of positive training examples (every shopper's score without a trained head).
    trained_ : bool
    """

    #: shoppers sampled per time cut when training the propensity head (bounds time and memory)
    #: (each example is one forward pass of the encoder: at 20,000 per cut this stage outgrew training on
    #: large shops, while the head has ~1,800 parameters and learns as well from 5,000 per cut)
    max_examples_per_cut = 5_000

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """No head: every shopper gets the base rate (0 until a head is trained)."""
        self.mean_ = np.zeros(N_FEATURES, dtype=np.float32)
        self.std_ = np.ones(N_FEATURES, dtype=np.float32)
        self.base_rate_ = 0.0
        self.trained_ = False

    @staticmethod
    def examples(histories: list, now: float, encode: Encoder) -> tuple[np.ndarray, np.ndarray]:
        """Hidden states and scalar features of ``histories`` from their events strictly before ``now``."""
        hist = truncate(histories, now)
        x = scalar_features(hist, now)
        return encode(hist), x

    def fit(
        self,
        log: EventLog,
        net: BehaviorNetwork,
        encode: Encoder,
        cfg: NetworkConfig,
        progress: Progress,
    ) -> dict:
        """Time-cut labels: features strictly before each cut, label = purchase in [cut, cut + horizon)."""
        horizon = cfg.propensity_horizon_days * DAY
        self.reset()
        if not len(log) or horizon <= 0:
            return {"trained": False, "reason": "empty log or no horizon"}
        all_log = log if log.is_bot is None else log.subset(~log.is_bot)
        by_user = all_log.histories()
        users = list(by_user)
        hists = [by_user[u] for u in users]
        t_min, t_max = float(all_log.timestamps.min()), float(all_log.timestamps.max())
        cuts, horizon = label_cuts(t_min, t_max, horizon)  # a shorter window on a short log
        hs, xs, ys, groups = [], [], [], []
        rng = np.random.default_rng(cfg.random_seed)
        user_group = rng.random(len(users)) < 0.2  # held-out shoppers for early stopping
        # flat (owner, timestamp) arrays built once, so each cut's "active shopper" test is vectorised
        lens = np.fromiter((len(h) for h in hists), dtype=np.int64, count=len(hists))
        owner = np.repeat(np.arange(len(hists)), lens)
        stamps = np.fromiter((ts for h in hists for _, _, ts in h), dtype=np.float64, count=int(lens.sum()))
        first = np.array([h[0][2] if h else np.inf for h in hists], dtype=np.float64)
        for c in cuts:
            recent = np.zeros(len(hists), dtype=bool)
            recent[owner[(stamps >= c - 30 * DAY) & (stamps < c)]] = True
            active = np.flatnonzero(recent & (first < c) & (first >= c - 30 * DAY * 12)).tolist()
            if not active:
                continue
            if len(active) > self.max_examples_per_cut:
                active = sorted(rng.choice(active, self.max_examples_per_cut, replace=False).tolist())
            sub = [hists[k] for k in active]
            hs.append(sub)
            xs.append(c)
            ys.append(purchase_labels(sub, c, c + horizon))
            groups.append(user_group[active])
        if not ys or not np.concatenate(ys).sum() or np.concatenate(ys).all():
            return {
                "trained": False,
                "reason": "no purchase labels of both classes before the newest cut",
                "cuts": len(cuts),
            }
        for k, (sub, c) in enumerate(zip(hs, xs, strict=True)):
            hs[k], xs[k] = self.examples(sub, c, encode)
        H, X, Y, G = (np.concatenate(a) for a in (hs, xs, ys, groups))
        self.mean_ = X.mean(0).astype(np.float32)
        self.std_ = (X.std(0) + 1e-6).astype(np.float32)
        Z = (X - self.mean_) / self.std_
        self.base_rate_ = float(Y.mean())
        if G.all() or not G.any() or not Y[G].sum() or Y[G].all():
            G = np.zeros(len(Y), dtype=bool)
            G[rng.choice(len(Y), max(1, len(Y) // 5), replace=False)] = True
        th, tz, ty = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in (H, Z, Y))
        tr, va = torch.from_numpy(~G), torch.from_numpy(G)

        # two candidates, chosen on held-out shoppers: a linear model of the scalar features alone
        # (the MLP on the hidden state switched off), and the full head with the network's state
        variants = {}
        for variant in ("scalars", "network"):
            loss, state = self._train(net, th, tz, ty, tr, va, cfg, use_hidden=variant == "network")
            with torch.no_grad():
                pv = torch.sigmoid(net.propensity_logit(th[va], tz[va])).numpy()
            variants[variant] = {
                "valid_logloss": round(loss, 5),
                # None when the held-out shoppers hold one class only (a tiny log): JSON has no NaN
                "valid_roc_auc": _finite_or_none(round(roc_auc(Y[G], pv), 4)),
                "state": state,
            }
        # ranking shoppers is what the head is for: choose by held-out ROC-AUC, log-loss breaks ties
        chosen = max(
            variants,
            key=lambda v: (
                0.5 if variants[v]["valid_roc_auc"] is None else variants[v]["valid_roc_auc"],
                -variants[v]["valid_logloss"],
            ),
        )
        net.load_state_dict({**net.state_dict(), **variants[chosen]["state"]})
        net.eval()
        self.trained_ = True
        progress("propensity", 1.0)
        return {
            "trained": True,
            "cuts": len(cuts),
            "examples": len(Y),
            "positive_rate": round(float(Y.mean()), 4),
            "horizon_days": round(horizon / DAY, 4),
            "configured_horizon_days": cfg.propensity_horizon_days,
            "selected": chosen,
            "reason": "higher ROC-AUC on held-out shoppers (time-cut labels before the newest event)",
            "validation": {v: {k: x for k, x in d.items() if k != "state"} for v, d in variants.items()},
        }

    @staticmethod
    def _train(net, th, tz, ty, tr, va, cfg: NetworkConfig, *, use_hidden: bool) -> tuple[float, dict]:
        """Full-batch Adam on the propensity head with early stopping on held-out log-loss."""
        seed_everything(cfg.random_seed)
        for p in net.prop_head.modules():
            if isinstance(p, torch.nn.Linear):
                p.reset_parameters()
        net.prop_linear.reset_parameters()
        params = list(net.prop_linear.parameters())
        last = net.prop_head[-1]
        if use_hidden:
            params += list(net.prop_head.parameters())
        else:
            with torch.no_grad():  # the MLP contributes exactly 0
                last.weight.zero_()
                last.bias.zero_()
        opt = torch.optim.Adam(params, lr=3e-3, weight_decay=1e-3)
        best, best_state, bad = math.inf, None, 0
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        # index the fixed inputs once (boolean indexing copies), and build the head's input once:
        # the hidden state is a fixed feature here, so the per-step work is two small matmuls
        ztr, zva, ytr, yva = tz[tr], tz[va], ty[tr], ty[va]
        xtr, xva = torch.cat([th[tr], ztr], dim=1), torch.cat([th[va], zva], dim=1)

        def logit(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return net.prop_head(x).squeeze(1) + net.prop_linear(z).squeeze(1)

        # one thread: the head's ops are tiny (B x 16), and on a shared CPU the OpenMP barriers of a
        # second thread cost more than the work (measured 6 ms vs 37 ms per step at load 6 on 2 cores)
        with torch_threads(1):
            for _epoch in range(400):
                net.prop_head.train()
                loss = bce(logit(xtr, ztr), ytr)
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    net.prop_head.eval()
                    v = float(bce(logit(xva, zva), yva))
                if v < best - 1e-5:
                    best, bad = v, 0
                    best_state = {k: t.clone() for k, t in net.state_dict().items() if k.startswith("prop_")}
                else:
                    bad += 1
                    if bad >= 30:
                        break
        if best_state:
            net.load_state_dict({**net.state_dict(), **best_state})
        return best, best_state or {}

    def predict(
        self, histories: Sequence[History], now: float, net: BehaviorNetwork, encode: Encoder
    ) -> np.ndarray:
        """Probability that each shopper buys within the head's label window after ``now``.

        Returns
        -------
        ndarray of shape (len(histories),), float64 in [0, 1]
            The training base rate for every shopper when no head could be trained.
        """
        histories = list(histories)
        if not self.trained_:
            return np.full(len(histories), self.base_rate_, dtype=np.float64)
        h, x = self.examples(histories, now, encode)
        z = (x - self.mean_) / self.std_
        with torch.no_grad():
            logit = net.propensity_logit(torch.from_numpy(h), torch.from_numpy(z.astype(np.float32)))
        return torch.sigmoid(logit).double().numpy()

    # ------------------------------------------------------------------ persistence
    def tensors(self) -> dict[str, torch.Tensor]:
        """The artefact tensors of the head outside the network's state."""
        return {
            "propensity.mean": torch.from_numpy(self.mean_),
            "propensity.std": torch.from_numpy(self.std_),
        }

    def meta(self) -> dict:
        """The artefact metadata keys of the head."""
        return {"has_propensity": bool(self.trained_), "propensity_base_rate": float(self.base_rate_)}

    @classmethod
    def from_saved(cls, tensors: dict[str, torch.Tensor], meta: dict) -> PropensityHead:
        """The head of an artefact written with :meth:`tensors` and :meth:`meta`."""
        head = cls()
        head.mean_ = tensors["propensity.mean"].numpy()
        head.std_ = tensors["propensity.std"].numpy()
        head.trained_ = bool(meta["has_propensity"])
        head.base_rate_ = float(meta["propensity_base_rate"])
        return head
