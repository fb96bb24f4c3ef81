"""Hyperparameters of the behaviour recommender (plain dataclass, Django-free)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 1.0,
    "wishlist": 2.0,
    "add_to_cart": 3.0,
    "remove_from_cart": 0.0,
    "purchase": 5.0,
    "search": 0.0,
}

# settings.RECOMMENDER keys whose field name is not simply the lower-cased key.
_SETTING_ALIASES = {"TRAIN_THREADS": "threads"}


@dataclass
class NetworkConfig:
    """Every hyperparameter of :class:`~recommendations.core.recommender.BehaviorRecommender`.

    Attributes
    ----------
    embedding_dim : int
        Width of item, event-type, position and time-gap embeddings.
    num_layers, num_heads : int
        Transformer blocks and attention heads per block.
    dropout : float
        Dropout on embeddings and inside the blocks.
    max_sequence_length : int
        Most recent events per shopper fed to the network.
    learning_rate, batch_size, epochs, patience : float, int, int, int
        Adam step size, sequences per batch, epoch cap, epochs without validation gain before stopping.
    min_improvement : float
        Relative validation NDCG@10 gain an epoch needs to reset the patience counter (the best weights
        are kept whatever the gain): slow creeping gains on large logs, each epoch costly, stop early.
    random_seed : int
        Seeds torch, numpy and ``random``.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    threads : int
        ``torch.set_num_threads`` during training.
    sampled_softmax_threshold, num_negatives : int
        Above this many items the next-item loss is a sampled softmax with ``num_negatives`` shared negatives.
    propensity_horizon_days : float
        "Buys within this many days" is the propensity label.
    event_weights : dict[str, float]
        Weight of each event type (co-visitation, popularity); weight 0 drops the type from sequences.
    min_item_users, min_user_events : int
        Rare-item filter (distinct users) and shortest trainable history.
    trending_half_life_days : float
        Half-life of the exponential decay of trending scores.
    mode : str
        ``"novel"``: validation targets are items new to the shopper and the history is masked;
        ``"any"``: the last item, repeats allowed.
    windows_per_user : int
        Long histories are cut into at most this many training windows of ``max_sequence_length``.
    weight_decay : float
        Adam weight decay.
    refit_full : bool
        After early stopping, train on every event (validation targets included).
    refit_epochs : int
        With ``refit_full``: epochs over every event, continuing from the early-stopped weights. 0 retrains
        a fresh network from scratch for the best epoch count instead (twice the training time on logs
        where early stopping ends late; the continuation costs one epoch).
    blend : bool
        Choose blend weights of the network and the candidate sources (co-visitation, item-kNN,
        transitions, recency, popularity) on validation.
    covis_window : int
        Co-visitation counts pairs at most this many events apart within a session.
    session_gap_hours : float
        A pause longer than this starts a new session for co-visitation.
    neighbours : int
        Neighbours kept per item in the co-visitation and transition tables.
    max_validation_users : int
        Validation users scored per epoch (a fixed random sample above this).
    train_precision : str
        Arithmetic of the training passes: ``"fp32"``; ``"bf16"``, matrix products in bfloat16 under
        ``torch.autocast`` (weights, optimizer state, layer norms, softmax and loss stay float32); or
        ``"auto"`` (default): bf16 on a CPU with native bfloat16 instructions (avx512_bf16 or AMX), fp32
        elsewhere. Inference and validation scoring are always float32.
    """

    embedding_dim: int = 64
    num_layers: int = 2
    num_heads: int = 1
    dropout: float = 0.2
    max_sequence_length: int = 50
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 60
    patience: int = 5
    min_improvement: float = 0.01
    random_seed: int = 42
    device: str = "auto"
    threads: int = 2
    sampled_softmax_threshold: int = 50_000
    num_negatives: int = 3000
    propensity_horizon_days: float = 7.0
    event_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    min_item_users: int = 2
    min_user_events: int = 2
    trending_half_life_days: float = 7.0
    mode: str = "novel"
    windows_per_user: int = 8
    weight_decay: float = 0.0
    refit_full: bool = True
    refit_epochs: int = 1
    blend: bool = True
    covis_window: int = 5
    session_gap_hours: float = 24.0
    neighbours: int = 100
    max_validation_users: int = 2000
    train_precision: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in ("novel", "any"):
            raise ValueError(f"mode must be 'novel' or 'any', got {self.mode!r}")
        for name in (
            "embedding_dim",
            "num_layers",
            "num_heads",
            "max_sequence_length",
            "batch_size",
            "epochs",
            "threads",
            "num_negatives",
            "windows_per_user",
            "neighbours",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if int(self.refit_epochs) < 0:
            raise ValueError(f"refit_epochs must be >= 0, got {self.refit_epochs!r}")
        if self.embedding_dim % self.num_heads:
            raise ValueError("embedding_dim must be a multiple of num_heads")
        if self.train_precision not in ("auto", "fp32", "bf16"):
            raise ValueError(
                f"train_precision must be 'auto', 'fp32' or 'bf16', got {self.train_precision!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        self.event_weights = {**DEFAULT_EVENT_WEIGHTS, **dict(self.event_weights or {})}

    @classmethod
    def from_settings(cls, mapping: Mapping[str, Any]) -> NetworkConfig:
        """Build a config from ``settings.RECOMMENDER``-style UPPER_CASE keys; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in mapping.items():
            name = _SETTING_ALIASES.get(str(key), str(key).lower())
            if name in names:
                kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkConfig:
        """Inverse of :meth:`to_dict`; fields this version does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
