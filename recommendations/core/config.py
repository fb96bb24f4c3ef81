"""Hyperparameters of the behaviour recommender (plain dataclass, Django-free)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
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
SETTING_ALIASES = {"TRAIN_THREADS": "threads"}


@dataclass
class NetworkConfig:
    """Every hyperparameter of :class:`~recommendations.core.recommender.BehaviorRecommender`.

    Attributes
    ----------
    embedding_dim : int
        Width of item, event-type, position and time-gap embeddings.
    num_layers, num_heads : int
        Transformer blocks and attention heads per block.
    dropout : float or None
        Dropout on embeddings and inside the blocks; ``None`` (default): chosen on validation from
        ``dropout_grid``.
    dropout_grid : tuple of float
        The candidates ``fit`` trains and compares on validation when ``dropout`` is ``None``.
    max_sequence_length : int or None
        Most recent events per shopper fed to the network; ``None`` (default): the 90th percentile of
        the shoppers' history lengths, within ``sequence_length_range`` (long histories, as on a film
        site, need 200 steps for the network to see a shopper's taste; shop logs of short visits stay at
        50, which also keeps training cheap).
    sequence_length_range : (int, int)
        Bounds of the automatic ``max_sequence_length``.
    learning_rate, epochs, patience : float, int, int
        Adam step size, epoch cap, epochs without validation gain before stopping.
    batch_size : int or None
        Training windows per batch; ``None`` (default): at most ``max_batch_size``, and small enough that
        one epoch makes at least ``min_steps_per_epoch`` optimizer steps (at least ``min_batch_size``).
        A small shop's log of a few hundred shoppers is otherwise a handful of steps per epoch, and early
        stopping ends the training before the network has learnt anything.
    max_batch_size, min_batch_size, min_steps_per_epoch : int
        Bounds of the automatic batch size.
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
        Above this many items the next-item loss is a sampled softmax with ``num_negatives`` shared negatives
        (3,000 negatives per batch train as well as the full softmax, Klenitskiy & Vasilev 2023; a small
        shop's log trains in small batches, and a full softmax over tens of thousands of items made each
        epoch cost that many times the encoder's work).
    propensity_horizon_days : float
        "Buys within this many days" is the propensity label.
    event_weights : dict[str, float]
        Weight of each event type (co-visitation, popularity); weight 0 drops the type from sequences.
    min_item_users, min_user_events : int or None
        Rare-item filter (distinct users) and shortest trainable history; ``None`` (default): chosen on
        validation from ``filter_grid`` (the cheap candidate sources rank the validation targets with
        each filter; a filtered-out target counts as a miss, as it would for a shopper).
    filter_grid : tuple of (int, int)
        ``(min_item_users, min_user_events)`` candidates of the filter search.
    search_users : int
        The network candidates of the search train on at most this many shoppers (a fixed random
        sample): the choice transfers, and a large shop's retrain stays within a few trainings' time.
    trending_half_life_days : float
        Half-life of the exponential decay of trending scores.
    mode : str
        ``"novel"``: validation targets are items new to the shopper and the history is masked;
        ``"any"``: the last item, repeats allowed; ``"auto"`` (default): the blend of the sources is
        chosen on novel targets, then the weight of the shopper's own recent items ("recent") on the
        last item, repeats allowed. Lists are then good both where a shop hides what the shopper has
        seen (the recent weight never reorders unseen items) and where shoppers come back to items
        (the weight grows with how often they do).
    repeat_head : bool
        The network's repeat mode (:mod:`~recommendations.core.models.repeat_head`): a pointer over
        the shopper's own steps mixed with the catalogue softmax by a learned gate, so the network
        alone ranks items shoppers come back to. Off: the catalogue softmax alone.
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
        transitions, recency, popularity) on validation. The network keeps a weight only when the
        best blend with it beats the best blend without it on validation.
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
        ``"fp16"`` (CUDA, with a gradient scaler); or ``"auto"`` (default): bf16 on a CPU with native
        bfloat16 instructions (avx512_bf16 or AMX) and on CUDA devices with bf16, fp16 on older GPUs, fp32
        elsewhere. Inference and validation scoring are always float32.
    """

    embedding_dim: int = 64
    num_layers: int = 2
    num_heads: int = 1
    dropout: float | None = None
    dropout_grid: tuple[float, ...] = (0.2, 0.5)
    max_sequence_length: int | None = None
    sequence_length_range: tuple[int, int] = (50, 200)
    learning_rate: float = 1e-3
    batch_size: int | None = None
    max_batch_size: int = 128
    min_batch_size: int = 16
    min_steps_per_epoch: int = 50
    epochs: int = 200
    patience: int = 10
    min_improvement: float = 0.01
    random_seed: int = 42
    device: str = "auto"
    threads: int = 2
    sampled_softmax_threshold: int = 20_000
    num_negatives: int = 3000
    propensity_horizon_days: float = 7.0
    event_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    min_item_users: int | None = None
    min_user_events: int | None = None
    filter_grid: tuple[tuple[int, int], ...] = ((1, 1), (2, 1), (3, 1), (1, 2))
    search_users: int = 5000
    trending_half_life_days: float = 7.0
    mode: str = "auto"
    repeat_head: bool = True
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
        if self.mode not in ("auto", "novel", "any"):
            raise ValueError(f"mode must be 'auto', 'novel' or 'any', got {self.mode!r}")
        for name in (
            "embedding_dim",
            "num_layers",
            "num_heads",
            "max_sequence_length",
            "batch_size",
            "max_batch_size",
            "min_batch_size",
            "epochs",
            "threads",
            "num_negatives",
            "windows_per_user",
            "neighbours",
            "min_item_users",
            "min_user_events",
            "search_users",
        ):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        if int(self.min_steps_per_epoch) < 0:
            raise ValueError(f"min_steps_per_epoch must be >= 0, got {self.min_steps_per_epoch!r}")
        self.dropout_grid = tuple(float(p) for p in self.dropout_grid)
        low, high = (int(x) for x in self.sequence_length_range)
        if not 1 <= low <= high:
            raise ValueError(
                f"sequence_length_range must be (low, high) with 1 <= low <= high, got {low, high}"
            )
        self.sequence_length_range = (low, high)
        self.filter_grid = tuple((int(a), int(b)) for a, b in self.filter_grid)
        if not self.dropout_grid or not self.filter_grid:
            raise ValueError("dropout_grid and filter_grid need at least one candidate")
        if any(a < 1 or b < 1 for a, b in self.filter_grid):
            raise ValueError(f"filter_grid values must be >= 1, got {self.filter_grid!r}")
        if int(self.refit_epochs) < 0:
            raise ValueError(f"refit_epochs must be >= 0, got {self.refit_epochs!r}")
        if self.embedding_dim % self.num_heads:
            raise ValueError("embedding_dim must be a multiple of num_heads")
        if self.train_precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(
                f"train_precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {self.train_precision!r}"
            )
        for p in (*self.dropout_grid, *(() if self.dropout is None else (self.dropout,))):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"dropout must be in [0, 1), got {p!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        self.event_weights = {**DEFAULT_EVENT_WEIGHTS, **dict(self.event_weights or {})}

    @classmethod
    def from_settings(cls, mapping: Mapping[str, Any]) -> NetworkConfig:
        """Build a config from ``settings.RECOMMENDER``-style UPPER_CASE keys; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in mapping.items():
            name = SETTING_ALIASES.get(str(key), str(key).lower())
            if name in names:
                kwargs[name] = value
        return cls(**kwargs)

    def history_limit(self) -> int:
        """Most recent events worth reading per shopper: the fixed length, else the automatic bound."""
        return int(self.max_sequence_length or self.sequence_length_range[1])

    def length_for(self, lengths: Iterable[int]) -> int:
        """``max_sequence_length`` when set, else the 90th percentile of ``lengths`` within the range.

        The percentile is the nearest-rank one (an actual history length), computed without NumPy so
        that reading the settings imports no numerical library.
        """
        if self.max_sequence_length is not None:
            return int(self.max_sequence_length)
        low, high = self.sequence_length_range
        ordered = sorted(int(n) for n in lengths)
        if not ordered:
            return low
        p90 = ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]
        return int(min(max(p90, low), high))

    def searched(self) -> list[str]:
        """Names of the choices left to the validation search (``None`` fields and ``mode="auto"``)."""
        out = [
            n
            for n in ("min_item_users", "min_user_events", "dropout", "batch_size")
            if getattr(self, n) is None
        ]
        return out + (["mode"] if self.mode == "auto" else [])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkConfig:
        """Inverse of :meth:`to_dict`; fields this version does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
