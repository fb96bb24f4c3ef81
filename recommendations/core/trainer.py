"""The training loop, kept apart from the network: seeding, batches, Adam, early stopping, devices."""

from __future__ import annotations

import contextlib
import copy
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from recommendations.core.config import NetworkConfig
from recommendations.core.dataset import Sequences, gap_buckets, pad_batch
from recommendations.core.models.behavior_network import BehaviorNetwork
from recommendations.core.progress import Progress
from recommendations.core.runtime import cpu_has_native_bf16, keep_freed_heap, release_freed_heap


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and ``random``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def training_precision(config: NetworkConfig, device: torch.device) -> str:
    """``"bf16"`` or ``"fp32"``: the arithmetic :class:`Trainer` uses for ``config`` on ``device``."""
    if config.train_precision != "auto":
        return config.train_precision
    # CUDA keeps float32: its speed is not the target here and its bf16 numerics are not measured
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _optimizer(network: BehaviorNetwork, config: NetworkConfig) -> torch.optim.Adam:
    """Adam; fused (one kernel for every parameter instead of ~15 small ops each) where torch has it."""
    kwargs = {"lr": config.learning_rate, "weight_decay": config.weight_decay}
    try:
        return torch.optim.Adam(network.parameters(), fused=True, **kwargs)
    except (RuntimeError, ValueError):
        # devices without a fused kernel: the per-parameter implementation (same update rule)
        return torch.optim.Adam(network.parameters(), **kwargs)


@contextmanager
def torch_threads(n: int):
    """Use ``n`` intra-op threads inside the block, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cat_long(parts: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0, dtype=torch.long)


@dataclass
class Validation:
    """Next-item validation data: inputs, one target per shopper, masking rule.

    Attributes
    ----------
    inputs : Sequences
        Each shopper's steps before the target.
    targets : ndarray of shape (n,), int64
        Item index (>= 1) of each target.
    mask_history : bool
        Items of the input history are excluded from the ranking (novel mode).
    """

    inputs: Sequences
    targets: np.ndarray
    mask_history: bool = True
    _mask: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def history_mask(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, column) indices of every history item except the row's own target (computed once)."""
        if self._mask is None:
            rows, cols = [], []
            for r, seq in enumerate(self.inputs.items):
                hist = np.unique(seq[seq != self.targets[r]]) - 1
                rows.append(np.full(len(hist), r, dtype=np.int64))
                cols.append(hist.astype(np.int64))
            self._mask = (_cat_long(rows), _cat_long(cols))
        return self._mask


@dataclass
class TrainResult:
    """What one training run did."""

    epochs_run: int = 0
    best_epoch: int = 0
    best_ndcg: float = 0.0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    interactions_per_second: float = 0.0
    cpu_us_per_interaction: float = 0.0
    positions_per_epoch: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 0


def training_windows(seqs: Sequences, length: int, windows_per_user: int) -> tuple[np.ndarray, ...]:
    """Cut each sequence into windows of ``length + 1`` steps from the newest backwards.

    Returns
    -------
    items, types, gaps, labels : ndarray of shape (n_windows, length), int64
        Left-padded inputs ``seq[:-1]`` and labels ``seq[1:]`` (0 = no loss term).
    """
    rows_i, rows_t, rows_g, rows_l = [], [], [], []
    for items, types, times in zip(seqs.items, seqs.types, seqs.times, strict=True):
        if len(items) < 2:
            continue
        gaps = gap_buckets(times)
        end = len(items)
        for _ in range(windows_per_user):
            start = max(0, end - length - 1)
            if end - start < 2:
                break
            ii, tt, gg = items[start:end], types[start:end], gaps[start:end]
            n = end - start - 1
            a = np.zeros((4, length), dtype=np.int64)
            a[0, -n:], a[1, -n:], a[2, -n:], a[3, -n:] = ii[:-1], tt[:-1], gg[:-1], ii[1:]
            rows_i.append(a[0])
            rows_t.append(a[1])
            rows_g.append(a[2])
            rows_l.append(a[3])
            end = start + 1
            if start == 0:
                break
    if not rows_i:
        z = np.zeros((0, length), dtype=np.int64)
        return z, z, z, z
    return np.stack(rows_i), np.stack(rows_t), np.stack(rows_g), np.stack(rows_l)


def batch_size_for(config: NetworkConfig, n_windows: int) -> int:
    """Training windows per batch: ``config.batch_size`` when set, else the automatic size.

    The automatic size is ``max_batch_size`` on large logs and shrinks (not below ``min_batch_size``)
    until one epoch makes ``min_steps_per_epoch`` optimizer steps: the loss covers every position of a
    window, so an epoch of a few hundred shoppers is otherwise a handful of Adam steps, and early
    stopping, counted in epochs, ends the run before the network has learnt anything.
    """
    if config.batch_size is not None:
        return int(config.batch_size)
    if config.min_steps_per_epoch <= 0:
        return int(config.max_batch_size)
    fitted = n_windows // int(config.min_steps_per_epoch)
    return int(max(config.min_batch_size, min(config.max_batch_size, fitted)))


def length_bucketed_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator) -> list:
    """Index batches of windows with similar lengths, in random order.

    The windows are shuffled, cut into pools of 32 batches, each pool sorted by length and cut into
    batches, and the batches shuffled: every batch is still a random draw, but padded only to its own
    longest window, which on shop logs (most histories far shorter than ``max_sequence_length``)
    removes most of the padded positions a plain shuffle pays for.

    Parameters
    ----------
    lengths : LongTensor of shape (n,)
        Real (non-padding) steps of each window.

    Returns
    -------
    list of LongTensor
        Window indices of each batch; every window appears exactly once.
    """
    n = len(lengths)
    perm = torch.randperm(n, generator=generator)
    pool = batch_size * 32
    batches = []
    for start in range(0, n, pool):
        chunk = perm[start : start + pool]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[k] for k in order]


@torch.no_grad()
def score_sequences(
    network: BehaviorNetwork,
    seqs: Sequences,
    device: torch.device,
    batch_size: int = 256,
    *,
    with_logits: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Next-item logits and last hidden state for every sequence.

    Parameters
    ----------
    with_logits : bool
        ``False`` skips the catalogue-wide scoring (callers that need the hidden state only, e.g. the
        propensity head, would otherwise pay an (n, n_items) matmul and copy); logits are then empty.

    Returns
    -------
    logits : ndarray of shape (len(seqs), n_items), float32 (shape (0, n_items) without logits)
    hidden : ndarray of shape (len(seqs), dim), float32
    """
    network.eval()
    n = network.n_items
    if not len(seqs):
        return np.zeros((0, n), dtype=np.float32), np.zeros((0, network.dim), dtype=np.float32)
    # shortest first, each batch padded only to its own longest sequence: left padding is masked and
    # positions count from the newest step, so trimming leading pad columns changes no output
    lengths = np.minimum([len(it) for it in seqs.items], network.max_length)
    order = np.argsort(lengths, kind="stable")
    hidden = np.zeros((len(seqs), network.dim), dtype=np.float32)
    logits = np.zeros((len(seqs), n), dtype=np.float32) if with_logits else np.zeros((0, n), dtype=np.float32)
    for start in range(0, len(seqs), batch_size):
        rows = order[start : start + batch_size]
        width = max(int(lengths[rows].max()), 1)
        items, types, gaps = (torch.from_numpy(a).to(device) for a in pad_batch(seqs, rows, width))
        h = network.last_hidden(items, types, gaps)
        hidden[rows] = h.float().cpu().numpy()
        if with_logits:
            logits[rows] = network.scores(h).float().cpu().numpy()
    return logits, hidden


def validation_ranks(logits: np.ndarray | torch.Tensor, validation: Validation) -> np.ndarray:
    """0-based rank of each target among all items (history masked when asked); ties rank above it.

    Parameters
    ----------
    logits : array of shape (n, n_items)
    """
    s = torch.as_tensor(logits, dtype=torch.float32).clone()
    if validation.mask_history:
        rows, cols = validation.history_mask()
        s[rows, cols] = float("-inf")
    tgt = torch.from_numpy(validation.targets - 1)
    target_scores = s[torch.arange(len(tgt)), tgt]
    # pessimistic ties: every other item scoring the same ranks above the target (sparse sources
    # score most items 0 and would otherwise look perfect)
    return ((s >= target_scores[:, None]).sum(1) - 1).numpy().astype(np.int64)


def ndcg_from_ranks(ranks: np.ndarray, k: int = 10) -> float:
    hit = ranks < k
    return float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean()) if len(ranks) else 0.0


class Trainer:
    """Next-item training of a :class:`BehaviorNetwork` with early stopping on validation NDCG@10.

    Parameters
    ----------
    config : NetworkConfig
    progress : callable (stage: str, fraction: float) -> None, optional
    stage : str
        Name passed to ``progress``.
    """

    def __init__(self, config: NetworkConfig, progress: Progress | None = None, stage: str = "train") -> None:
        self.config = config
        self.progress = progress
        self.stage = stage

    def fit(
        self,
        network: BehaviorNetwork,
        train: Sequences,
        validation: Validation | None = None,
        epochs: int | None = None,
    ) -> TrainResult:
        """Train ``network`` in place; with ``validation``, the best epoch's weights are restored.

        Parameters
        ----------
        network : BehaviorNetwork
        train : Sequences
        validation : Validation, optional
        epochs : int, optional
            Overrides ``config.epochs`` (used by the refit on all data).
        """
        cfg = self.config
        seed_everything(cfg.random_seed)
        device = resolve_device(cfg.device)
        epochs = cfg.epochs if epochs is None else epochs
        precision = training_precision(cfg, device)
        keep_freed_heap()
        result = TrainResult(device=str(device), precision=precision)
        t_start = time.perf_counter()
        with torch_threads(cfg.threads):
            network.to(device)
            # created before the clock starts: its first use imports torch._dynamo (seconds, once per process)
            opt = _optimizer(network, cfg)
            t_prep, c_prep = time.perf_counter(), time.process_time()
            arrays = training_windows(train, network.max_length, cfg.windows_per_user)
            tensors = [torch.from_numpy(a) for a in arrays]
            lengths = (tensors[0] > 0).sum(1)
            n_windows = len(tensors[0])
            result.positions_per_epoch = int((arrays[3] > 0).sum())
            result.batch_size = batch_size = batch_size_for(cfg, n_windows)
            sampled = network.n_items > cfg.sampled_softmax_threshold
            gen = torch.Generator().manual_seed(cfg.random_seed)
            best_state, best, bad = None, -1.0, 0
            train_seconds = 0.0
            # the one-off window building is charged to the first epoch (it is part of the data pipeline)
            prep_seconds = time.perf_counter() - t_prep
            prep_cpu = time.process_time() - c_prep
            train_cpu = 0.0
            for epoch in range(1, epochs + 1):
                if not n_windows:
                    break
                network.train()
                t0, c0 = time.perf_counter(), time.process_time()
                total = 0.0
                for idx in length_bucketed_batches(lengths, batch_size, gen):
                    items, types, gaps, labels = (t[idx] for t in tensors)
                    # the batch's windows have similar lengths: drop the leading columns that are padding
                    # in every row (exact: they are masked and carry no label; positions count from the
                    # newest step)
                    first = network.max_length - int(lengths[idx].max())
                    items, types, gaps, labels = (
                        t[:, first:].to(device, non_blocking=True) for t in (items, types, gaps, labels)
                    )
                    negatives = None
                    if sampled:
                        negatives = torch.randint(
                            1, network.n_items + 1, (cfg.num_negatives,), generator=gen
                        ).to(device)
                    with _autocast(device, precision):
                        loss = network.next_item_loss(items, types, gaps, labels, negatives)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0 + (prep_seconds if epoch == 1 else 0.0)
                cpu = time.process_time() - c0 + (prep_cpu if epoch == 1 else 0.0)
                train_seconds += dt
                train_cpu += cpu
                row = {
                    "epoch": epoch,
                    "loss": round(total / n_windows, 5),
                    "seconds": round(dt, 3),
                    "interactions_per_second": round(result.positions_per_epoch / max(dt, 1e-9), 1),
                    # CPU seconds of every thread of the process: robust to a shared, busy machine
                    "cpu_seconds": round(cpu, 3),
                    "cpu_us_per_interaction": round(cpu / max(result.positions_per_epoch, 1) * 1e6, 2),
                }
                result.epochs_run = epoch
                if validation is not None and len(validation.targets):
                    logits, _ = score_sequences(network, validation.inputs, device)
                    ndcg = ndcg_from_ranks(validation_ranks(logits, validation))
                    row["valid_ndcg@10"] = round(ndcg, 5)
                    # patience restarts only on a relative gain of at least min_improvement
                    bad = 0 if ndcg > best * (1.0 + cfg.min_improvement) else bad + 1
                    if ndcg > best:
                        best, result.best_epoch = ndcg, epoch
                        best_state = copy.deepcopy(network.state_dict())
                else:
                    result.best_epoch = epoch
                result.history.append(row)
                if self.progress:
                    self.progress(self.stage, epoch / epochs)
                if validation is not None and bad >= cfg.patience:
                    break
            if best_state is not None:
                network.load_state_dict(best_state)
                result.best_ndcg = best
        result.seconds = time.perf_counter() - t_start
        result.interactions_per_second = (
            result.positions_per_epoch * result.epochs_run / train_seconds if train_seconds else 0.0
        )
        result.cpu_us_per_interaction = (
            train_cpu / max(result.positions_per_epoch * result.epochs_run, 1) * 1e6
            if result.epochs_run
            else 0.0
        )
        network.eval()
        release_freed_heap()
        return result
