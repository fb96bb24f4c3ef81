"""A standardised, L2-regularised logistic regression over the propensity's scalar features.

Fitted with scikit-learn; stored and applied as plain arrays (mean, scale, coefficients,
intercept), so an artefact holds tensors only and loads without pickle.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

#: inverse L2 strength on standardised features (scikit-learn's default; on a few thousand
#: examples and two dozen features the fit barely moves between 0.1 and 1)
DEFAULT_C = 1.0


class LogisticModel:
    """``P(buy) = sigmoid(coef . (x - mean) / scale + intercept)``.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (d,), float64
        Standardisation learned from the training examples.
    coef_ : ndarray of shape (d,), float64
    intercept_ : float
    """

    def __init__(self, c: float = DEFAULT_C, seed: int = 0) -> None:
        self.c = c
        self.seed = seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticModel:
        """Fit on features ``x`` (n, d) and 0/1 labels ``y`` (n,).

        Labels of one class only (a tiny log's training part) give that class's rate for everyone.
        """
        x = np.asarray(x, dtype=np.float64)
        self.mean_ = x.mean(0)
        self.scale_ = x.std(0) + 1e-6
        if len(np.unique(y)) < 2:
            rate = float(np.clip(np.mean(y) if len(y) else 0.5, 1e-4, 1 - 1e-4))
            self.coef_ = np.zeros(x.shape[1])
            self.intercept_ = float(np.log(rate / (1 - rate)))
            return self
        model = LogisticRegression(C=self.c, max_iter=2000, random_state=self.seed)
        model.fit((x - self.mean_) / self.scale_, np.asarray(y, dtype=np.int64))
        self.coef_ = model.coef_[0].astype(np.float64)
        self.intercept_ = float(model.intercept_[0])
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class, shape (n,) float64."""
        z = (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_
        probability: np.ndarray = 1.0 / (
            1.0 + np.exp(-np.clip(z @ self.coef_ + self.intercept_, -50.0, 50.0))
        )
        return probability

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The fitted arrays as tensors named ``{prefix}.mean`` etc."""
        return {
            f"{prefix}.mean": torch.from_numpy(self.mean_.copy()),
            f"{prefix}.scale": torch.from_numpy(self.scale_.copy()),
            f"{prefix}.coef": torch.from_numpy(self.coef_.copy()),
            f"{prefix}.intercept": torch.tensor([self.intercept_], dtype=torch.float64),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> LogisticModel:
        """The model written by :meth:`tensors`."""
        model = cls()
        model.mean_ = tensors[f"{prefix}.mean"].double().numpy()
        model.scale_ = tensors[f"{prefix}.scale"].double().numpy()
        model.coef_ = tensors[f"{prefix}.coef"].double().numpy()
        model.intercept_ = float(tensors[f"{prefix}.intercept"][0])
        if not model.mean_.shape == model.scale_.shape == model.coef_.shape:
            raise ValueError(f"{prefix}: mean, scale and coefficients differ in shape")
        return model
