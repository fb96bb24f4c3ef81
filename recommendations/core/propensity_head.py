"""The purchase-propensity estimator: time-cut examples, training, prediction, persistence.

The head reads the behaviour network's last hidden state (a frozen input) and the scalar
recency / frequency / funnel features of :mod:`recommendations.core.propensity`. Its weights live
in the network (``prop_head``, ``prop_linear``) and travel with its state; the standardisation and
the base rate travel as ``propensity.*`` tensors and metadata keys of the artefact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
from recommendations.core.propensity_choice import auc_standard_error, choose, logloss, validation_split
from recommendations.core.propensity_linear import LogisticModel
from recommendations.core.trainer import seed_everything, torch_threads

#: histories (already cut at "now") -> the network's last hidden state, shape (n, dim) float32
Encoder = Callable[[Sequence[History]], np.ndarray]
Progress = Callable[[str, float], None]
#: the models compared on validation, simplest first (a tie goes to the earlier): a logistic
#: regression of the scalar features, the network head (an MLP over the encoder's last hidden
#: state and the scalars, plus a linear term of the scalars), and the mean of the two probabilities
CANDIDATES = ("logistic", "network", "blend")
BASES = ("logistic", "network")


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
    model_ : str
        The candidate chosen on validation (one of :data:`CANDIDATES`).
    linear_ : LogisticModel or None
        The logistic regression of ``"logistic"`` and ``"blend"``.
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
        self.model_ = "network"
        self.linear_: LogisticModel | None = None

    @staticmethod
    def examples(
        histories: list[History], now: float, encode: Encoder | None
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """Hidden states (``None`` without ``encode``) and every scalar feature, from events before ``now``.

        The features are :data:`~recommendations.core.propensity.LINEAR_FEATURE_NAMES`; the network
        head reads the first ``N_FEATURES`` of them.
        """
        hist = truncate(histories, now)
        x = scalar_features(hist, now, occasions=True)
        return (encode(hist) if encode is not None else None), x

    def _collect(self, log: EventLog, cfg: NetworkConfig, rng: np.random.Generator) -> dict[str, Any]:
        """Shoppers active before each time cut, with the purchase label of the window after it."""
        horizon = cfg.propensity_horizon_days * DAY
        all_log = log if log.is_bot is None else log.subset(~log.is_bot)
        by_user = all_log.histories()
        users = list(by_user)
        hists = [by_user[u] for u in users]
        t_min, t_max = float(all_log.timestamps.min()), float(all_log.timestamps.max())
        cuts, horizon = label_cuts(t_min, t_max, horizon)  # a shorter window on a short log
        subs, stamps_of, ys, groups = [], [], [], []
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
            subs.append([hists[k] for k in active])
            stamps_of.append(c)
            ys.append(purchase_labels(subs[-1], c, c + horizon))
            groups.append(user_group[active])
        return {"cuts": cuts, "horizon": horizon, "subs": subs, "at": stamps_of, "ys": ys, "groups": groups}

    def fit(
        self,
        log: EventLog,
        net: BehaviorNetwork,
        encode: Encoder,
        cfg: NetworkConfig,
        progress: Progress,
    ) -> dict[str, Any]:
        """Time-cut labels: features strictly before each cut, label = purchase in [cut, cut + horizon).

        Candidates (:data:`CANDIDATES`) learn on the cuts whose label window closed before the
        newest cut and are compared by ROC-AUC on the newest cut (a shop's next window, as in
        serving); the best is refitted on every cut. A log too short for such a split compares
        them on held-out shoppers instead. The report's ``choice`` is what the admin shows.
        """
        self.reset()
        if not len(log) or cfg.propensity_horizon_days <= 0:
            return {"trained": False, "reason": "empty log or no horizon"}
        rng = np.random.default_rng(cfg.random_seed)
        data = self._collect(log, cfg, rng)
        cuts, horizon, ys = data["cuts"], data["horizon"], data["ys"]
        if not ys or not np.concatenate(ys).sum() or np.concatenate(ys).all():
            return {
                "trained": False,
                "reason": "no purchase labels of both classes before the newest cut",
                "cuts": len(cuts),
            }
        hs: list[np.ndarray] = []
        xs: list[np.ndarray] = []
        for sub, c in zip(data["subs"], data["at"], strict=True):
            h, x = self.examples(sub, c, encode)
            if h is not None:
                hs.append(h)
            xs.append(x)
        H, X, Y, G = (np.concatenate(a) for a in (hs, xs, ys, data["groups"]))
        at = np.repeat(np.asarray(data["at"], dtype=np.float64), [len(y) for y in ys])
        Xn = X[:, :N_FEATURES]
        self.mean_ = Xn.mean(0).astype(np.float32)
        self.std_ = (Xn.std(0) + 1e-6).astype(np.float32)
        self.base_rate_ = float(Y.mean())
        inputs = _Inputs(H, X, ((Xn - self.mean_) / self.std_).astype(np.float32), Y, G, rng)
        train, valid, scheme = validation_split(at, horizon, Y, G)
        if not valid.any():  # degenerate held-out shoppers: a random fifth of the examples
            valid = np.zeros(len(Y), dtype=bool)
            valid[rng.choice(len(Y), max(1, len(Y) // 5), replace=False)] = True
            train = ~valid
        preds = {n: self._fit_candidate(n, inputs, train, net, cfg).predict(inputs, valid) for n in BASES}
        preds["blend"] = (preds["logistic"] + preds["network"]) / 2
        scores = {}
        for name in CANDIDATES:
            p = preds[name]
            auc = roc_auc(Y[valid], p)
            scores[name] = {
                # None when the validation examples hold one class only (a tiny log): JSON has no NaN
                "valid_roc_auc": _finite_or_none(round(auc, 4)),
                "valid_logloss": round(logloss(Y[valid], p), 5),
            }
        best = max(0.5 if s["valid_roc_auc"] is None else s["valid_roc_auc"] for s in scores.values())
        n_pos = int(Y[valid].sum())
        se = auc_standard_error(best, n_pos, int(valid.sum()) - n_pos)
        chosen = choose(scores, se if np.isfinite(se) else 0.0)
        self.model_ = chosen
        fitted = self._fit_candidate(chosen, inputs, np.ones(len(Y), dtype=bool), net, cfg)
        self.linear_ = fitted.linear
        net.eval()
        self.trained_ = True
        progress("propensity", 1.0)
        reason = (
            f"ROC-AUC on {scheme}: the simplest candidate within one standard error ({se:.3f}) of the best"
        )
        return {
            "trained": True,
            "cuts": len(cuts),
            "examples": len(Y),
            "positive_rate": round(float(Y.mean()), 4),
            "horizon_days": round(horizon / DAY, 4),
            "configured_horizon_days": cfg.propensity_horizon_days,
            "selected": chosen,
            "reason": reason,
            "validation_scheme": scheme,
            "validation_examples": int(valid.sum()),
            "validation_standard_error": round(se, 4) if np.isfinite(se) else None,
            "validation": scores,
            "choice": {
                "value": chosen,
                "searched": True,
                "validation": {n: s["valid_roc_auc"] for n, s in scores.items()},
                "reason": reason,
            },
        }

    def _fit_candidate(
        self, name: str, inputs: _Inputs, rows: np.ndarray, net: BehaviorNetwork, cfg: NetworkConfig
    ) -> _Fitted:
        """Fit candidate ``name`` on the examples in ``rows`` (the network head in ``net`` itself)."""
        linear = None
        if name in ("logistic", "blend"):
            linear = LogisticModel(seed=cfg.random_seed).fit(inputs.x[rows], inputs.y[rows])
        if name in ("network", "blend"):
            fit_rows, stop_rows = inputs.stop_split(rows)
            th, tz, ty = (
                torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in (inputs.h, inputs.z, inputs.y)
            )
            self._train(net, th, tz, ty, torch.from_numpy(fit_rows), torch.from_numpy(stop_rows), cfg)
        return _Fitted(name, linear, net)

    @staticmethod
    def _train(
        net: BehaviorNetwork,
        th: torch.Tensor,
        tz: torch.Tensor,
        ty: torch.Tensor,
        tr: torch.Tensor,
        va: torch.Tensor,
        cfg: NetworkConfig,
    ) -> tuple[float, dict[str, Any]]:
        """Full-batch Adam on the propensity head with early stopping on held-out log-loss."""
        seed_everything(cfg.random_seed)
        for p in net.prop_head.modules():
            if isinstance(p, torch.nn.Linear):
                p.reset_parameters()
        prop_linear = net.prop_linear
        if prop_linear is None:
            raise ValueError("the network was built without its propensity head")
        prop_linear.reset_parameters()
        params = list(prop_linear.parameters()) + list(net.prop_head.parameters())
        opt = torch.optim.Adam(params, lr=3e-3, weight_decay=1e-3)
        best, best_state, bad = math.inf, None, 0
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        # index the fixed inputs once (boolean indexing copies), and build the head's input once:
        # the hidden state is a fixed feature here, so the per-step work is two small matmuls
        ztr, zva, ytr, yva = tz[tr], tz[va], ty[tr], ty[va]
        xtr, xva = torch.cat([th[tr], ztr], dim=1), torch.cat([th[va], zva], dim=1)

        def logit(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = net.prop_head(x).squeeze(1) + prop_linear(z).squeeze(1)
            return out

        # one thread: the head's ops are tiny (B x 16), and on a shared CPU the OpenMP barriers of a
        # second thread cost several times more than the work itself
        with torch_threads(1):
            for _epoch in range(400):
                net.prop_head.train()
                loss = bce(logit(xtr, ztr), ytr)
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward unannotated
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
        needs_network = self.model_ in ("network", "blend")
        h, x = self.examples(histories, now, encode if needs_network else None)
        z = ((x[:, :N_FEATURES] - self.mean_) / self.std_).astype(np.float32)
        inputs = _Inputs(h, x, z, np.zeros(len(x)), np.zeros(len(x), dtype=bool), None)
        return _Fitted(self.model_, self.linear_, net).predict(inputs, np.ones(len(x), dtype=bool))

    # ------------------------------------------------------------------ persistence
    def tensors(self) -> dict[str, torch.Tensor]:
        """The artefact tensors of the head outside the network's state."""
        out = {
            "propensity.mean": torch.from_numpy(self.mean_),
            "propensity.std": torch.from_numpy(self.std_),
        }
        if self.linear_ is not None:
            out.update(self.linear_.tensors("propensity.logistic"))
        return out

    def meta(self) -> dict[str, Any]:
        """The artefact metadata keys of the head."""
        return {
            "has_propensity": bool(self.trained_),
            "propensity_base_rate": float(self.base_rate_),
            "propensity_model": self.model_,
        }

    @classmethod
    def from_saved(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> PropensityHead:
        """The head of an artefact written with :meth:`tensors` and :meth:`meta`."""
        head = cls()
        head.mean_ = tensors["propensity.mean"].numpy()
        head.std_ = tensors["propensity.std"].numpy()
        head.trained_ = bool(meta["has_propensity"])
        head.base_rate_ = float(meta["propensity_base_rate"])
        # artefacts of earlier releases hold the network head only
        head.model_ = str(meta.get("propensity_model", "network"))
        if head.model_ not in CANDIDATES:
            raise ValueError(f"unknown propensity model {head.model_!r}")
        if head.model_ in ("logistic", "blend"):
            head.linear_ = LogisticModel.from_tensors(tensors, "propensity.logistic")
        return head


@dataclass
class _Inputs:
    """Every example of the head: hidden states, scalar features (all, and standardised for the network)."""

    h: np.ndarray | None
    x: np.ndarray
    z: np.ndarray
    y: np.ndarray
    g: np.ndarray  # held-out shoppers (early stopping of the network head)
    rng: np.random.Generator | None

    def stop_split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` split into examples to fit and held-out shoppers' to stop on.

        A random fifth of ``rows`` stops when the held-out shoppers there are none or of one class.
        """
        fit, stop = rows & ~self.g, rows & self.g
        if not fit.any() or not stop.any() or self.y[stop].min() == self.y[stop].max():
            assert self.rng is not None
            idx = np.flatnonzero(rows)
            stop = np.zeros(len(rows), dtype=bool)
            stop[self.rng.choice(idx, max(1, len(idx) // 5), replace=False)] = True
            fit = rows & ~stop
        return fit, stop


@dataclass
class _Fitted:
    """One fitted candidate: its name, the logistic regression (if part of it) and the network."""

    name: str
    linear: LogisticModel | None
    net: BehaviorNetwork

    def predict(self, inputs: _Inputs, rows: np.ndarray) -> np.ndarray:
        """Probabilities of the examples in ``rows``, float64."""
        parts = []
        if self.name in ("logistic", "blend"):
            assert self.linear is not None
            parts.append(self.linear.predict(inputs.x[rows]))
        if self.name in ("network", "blend"):
            assert inputs.h is not None
            with torch.no_grad():
                logit = self.net.propensity_logit(
                    torch.from_numpy(np.asarray(inputs.h[rows], dtype=np.float32)),
                    torch.from_numpy(inputs.z[rows]),
                )
            parts.append(torch.sigmoid(logit).double().numpy())
        mean: np.ndarray = np.mean(parts, axis=0)
        return mean
