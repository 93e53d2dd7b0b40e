"""Training loop, model selection, checkpoints and the ``signsim train`` entry point.

Each epoch replays the training period in batches: score the batch's pairs (true
events plus one sampled negative each) from the state before the batch, take one
optimiser step on the four losses, then write the true events into the state. After
each epoch the validation period is scored under the strict protocol (with prequential
adaptation when enabled, on a throw-away copy of the weights); the best epoch by
``sign AUC + existence MRR`` is kept, with early stopping.

Large batches: the training batch (``train_batch_size``) may be larger than the
protocol's; random chunk scheduling moves its boundaries every epoch and the learning
rate follows the square-root rule. The training period can be streamed from the
database (``stream_chunk``), and trained by N data-parallel processes (``gpus``, see
:mod:`models.distributed`). Checkpoints: :mod:`models.checkpoint` (re-exported here).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from models.checkpoint import load_checkpoint, save_checkpoint
from models.data import (
    EventBatch,
    SignedEvents,
    TimeSplit,
    first_batch_size,
    iter_batches,
)
from models.distributed import DistContext
from models.protocol import make_negatives, metrics_from, run_protocol
from models.sampling import TrainingNegatives
from models.signed_tgn import ModelConfig, SignedTGN, build_model
from models.step import NeuralMethod, resolve_device, train_step
from models.stream import StreamInfo, iter_event_chunks, load_window, stream_batches
from sim.store.database import Store

__all__ = [
    "FitResult",
    "NeuralMethod",
    "TrainConfig",
    "fit_model",
    "fit_stream",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "train_step",
]


@dataclass
class TrainConfig:
    """Training and protocol settings (JSON-safe).

    Attributes:
        epochs: Maximum epochs.
        batch_size: Events per batch (training and protocol).
        lr: Adam learning rate.
        patience: Epochs without validation improvement before stopping.
        seed: Seed of weights and training negatives.
        eval_seed: Seed of the fixed evaluation negatives.
        n_neg: Evaluation negatives per event.
        select_neg: Negatives per event in the per-epoch validation (model selection).
        adapt: Prequential adaptation in validation/test (test-then-train).
        adapt_lr: Learning rate of the adaptation steps.
        neg_sign_weight: Loss weight of negative-sign events in the sign loss.
        train_frac: Share of time for training.
        val_frac: Share of time for validation.
        train_batch_size: Events per training batch (0: ``batch_size``). The protocol
            (validation, ``evaluate``) always scores in batches of ``batch_size``.
        chunk_size: Random chunk scheduling (TGL, Zhou et al., VLDB 2022): each epoch's
            first training batch holds a random multiple of ``chunk_size`` events (0 to
            ``train_batch_size - chunk_size``), so batch boundaries, and with them which
            events are scored without seeing each other, move from epoch to epoch.
            0: ``batch_size``; a chunk >= the training batch keeps the boundaries fixed.
        lr_scale: Multiply ``lr`` by ``(train_batch_size / batch_size) ** lr_scale`` (0.5:
            the square-root rule for large batches; 0: no scaling).
        stream_chunk: When > 0, each epoch reads the training period from the database
            in chunks of this many rows (host memory bounded by the chunk, not the run).
        val_window: With ``stream_chunk``: validation events scored per epoch for model
            selection (0: the whole validation period), read as one window.
    """

    epochs: int = 6
    batch_size: int = 200
    lr: float = 1e-3
    patience: int = 3
    seed: int = 0
    eval_seed: int = 0
    n_neg: int = 100
    select_neg: int = 20
    adapt: bool = True
    adapt_lr: float = 3e-4
    neg_sign_weight: float = 1.0
    train_frac: float = 0.70
    val_frac: float = 0.15
    train_batch_size: int = 0
    chunk_size: int = 0
    lr_scale: float = 0.5
    stream_chunk: int = 0
    val_window: int = 0

    @property
    def train_batch(self) -> int:
        """Events per training batch."""
        return self.train_batch_size or self.batch_size

    @property
    def train_lr(self) -> float:
        """Learning rate of the training epochs (scaled for large batches)."""
        return self.lr * (self.train_batch / self.batch_size) ** self.lr_scale

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class FitResult:
    """Outcome of :func:`fit_model`.

    Attributes:
        model: The model with the best epoch's weights (state: end of training).
        history: Per epoch: loss, validation metrics, seconds.
        best_epoch: 1-based best epoch.
        val_metrics: Validation metrics of the best epoch.
        train_events_per_s: Mean training throughput.
    """

    model: SignedTGN
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    val_metrics: dict[str, float] = field(default_factory=dict)
    train_events_per_s: float = 0.0


def _selection_score(m: dict[str, float]) -> float:
    score = m.get("sign_auc", float("nan")) + m.get("exist_mrr", float("nan"))
    return score if math.isfinite(score) else -math.inf


def fit_model(
    events: SignedEvents,
    split: TimeSplit,
    model_config: ModelConfig,
    train: TrainConfig,
    *,
    progress: bool = False,
    name: str = "model",
    ctx: DistContext | None = None,
) -> FitResult:
    """Train a model on ``events[:split.train_end]`` and select the best epoch on validation.

    Args:
        events: The stream (already on the target device).
        split: Its chronological split.
        model_config: Model hyper-parameters (``num_nodes`` must match the stream).
        train: Training settings.
        progress: Show a tqdm progress bar.
        name: Label of the progress bar.
        ctx: This process's data-parallel group (None: one process).
    """
    main = ctx is None or ctx.is_main
    negatives = (make_negatives(events, split, train.batch_size, train.select_neg,
                                train.eval_seed) if main else None)

    def batches(first: int | None) -> Iterable[EventBatch]:
        return iter_batches(events, 0, split.train_end, train.train_batch, first)

    def validate(method: NeuralMethod) -> dict[str, float]:
        assert negatives is not None
        res = run_protocol(method, events, split, negatives, train.batch_size,
                           adapt=train.adapt, parts=("val",), warmup=False)
        return metrics_from(res)["val"]

    return _fit(batches, split.train_end, validate, model_config, train, events.device,
                progress=progress, name=name, ctx=ctx)


def fit_stream(
    store: Store,
    info: StreamInfo,
    model_config: ModelConfig,
    train: TrainConfig,
    device: torch.device,
    *,
    progress: bool = False,
    name: str = "model",
    ctx: DistContext | None = None,
) -> FitResult:
    """:func:`fit_model` reading the training period from the database in chunks.

    Each epoch streams ``[0, train_end)`` in chunks of ``train.stream_chunk`` rows. Model
    selection scores the first ``train.val_window`` validation events (all when 0) under
    the strict protocol, from the state at the end of the epoch; the evaluation
    negatives' histories come from as many events before the validation period (a
    bounded window, so historical negatives only know that recent past).
    """
    split, chunk = info.split, train.stream_chunk
    n_val = split.val_end - split.train_end
    n_val = min(n_val, train.val_window) if train.val_window > 0 else n_val
    hist = min(split.train_end, n_val)
    validate = None
    if ctx is None or ctx.is_main:
        window = load_window(store, info, split.train_end - hist, split.train_end + n_val,
                             chunk).to(device)
        wsplit = TimeSplit(train_end=hist, val_end=hist + n_val, n=hist + n_val,
                           train_time=split.train_time, val_time=split.val_time)
        negatives = make_negatives(window, wsplit, train.batch_size, train.select_neg,
                                   train.eval_seed)

        def validate(method: NeuralMethod) -> dict[str, float]:
            res = run_protocol(method, window, wsplit, negatives, train.batch_size,
                               adapt=train.adapt, parts=("val",), warmup=False)
            return metrics_from(res)["val"]

    def batches(first: int | None) -> Iterable[EventBatch]:
        chunks = iter_event_chunks(store, info, 0, split.train_end, chunk)
        return stream_batches(chunks, train.train_batch, first, device)

    return _fit(batches, split.train_end, validate, model_config, train, device,
                progress=progress, name=name, ctx=ctx)


def _fit(
    batches: Callable[[int | None], Iterable[EventBatch]],
    n_train: int,
    validate: Callable[[NeuralMethod], dict[str, float]] | None,
    model_config: ModelConfig,
    train: TrainConfig,
    device: torch.device,
    *,
    progress: bool,
    name: str,
    ctx: DistContext | None,
) -> FitResult:
    """The epoch loop shared by in-memory, streamed and data-parallel training."""
    torch.manual_seed(train.seed)
    model = build_model(model_config).to(device)
    rank = ctx.rank if ctx is not None else 0
    gen = torch.Generator().manual_seed(train.seed + 1_000_003 * rank)
    schedule = torch.Generator().manual_seed(train.seed + 104_729)  # the same on every rank
    sampler = TrainingNegatives(model.num_nodes).to(device)

    def sync() -> None:
        if ctx is not None:
            ctx.average_gradients(model)

    optimizer = torch.optim.Adam(model.parameters(), lr=train.train_lr, fused=True)
    chunk = train.chunk_size or train.batch_size
    n_batches = math.ceil(n_train / train.train_batch)
    main = ctx is None or ctx.is_main
    result = FitResult(model=model)
    best_state: dict[str, Tensor] | None = None
    best_score, stale, total_events, total_time = -math.inf, 0, 0, 0.0
    bar = tqdm(total=train.epochs * n_batches, disable=not (progress and main),
               desc=f"train {name}", unit="batch")
    for epoch in range(1, train.epochs + 1):
        model.train()
        model.reset_state()
        sampler.reset_state()
        first = first_batch_size(train.train_batch, chunk, schedule)
        t0, loss_sum, steps = time.perf_counter(), 0.0, 0
        for batch in batches(first):
            if ctx is None:
                loss_sum += train_step(model, batch, sampler, optimizer, gen,
                                       train.neg_sign_weight)
            elif len(batch) >= ctx.world:  # every rank needs a non-empty share
                a, b = ctx.share(0, len(batch))
                loss_sum += train_step(model, batch_part(batch, a, b), sampler, optimizer,
                                       gen, train.neg_sign_weight, sync=sync,
                                       t_ref=float(batch.t[0]))
            steps += 1
            model.observe(batch)
            sampler.observe(batch.src, batch.dst)
            bar.update(1)
        seconds = time.perf_counter() - t0
        total_events += n_train
        total_time += seconds
        loss = loss_sum / max(steps, 1)
        val: dict[str, float] = {}
        score = -math.inf
        if main and validate is not None:
            val = _validate(model, sampler, validate, train, name, epoch)
            score = _selection_score(val)
        if ctx is not None:
            score = ctx.broadcast([score])[0]
        result.history.append({"epoch": epoch, "loss": loss, "train_seconds": seconds,
                               "selection": score, **{f"val_{k}": v for k, v in val.items()}})
        if val:
            bar.set_postfix(loss=f"{loss:.3f}", val_auc=f"{val['sign_auc']:.3f}",
                            val_mrr=f"{val['exist_mrr']:.3f}")
        if score > best_score:
            best_score, stale = score, 0
            best_state = copy.deepcopy(model.state_dict())
            result.best_epoch, result.val_metrics = epoch, val
        else:
            stale += 1
            if stale >= train.patience:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    result.train_events_per_s = total_events / total_time if total_time else 0.0
    return result


def batch_part(batch: EventBatch, a: int, b: int) -> EventBatch:
    """Events ``[a, b)`` of a batch (positions within it)."""
    return EventBatch(start=batch.start + a, src=batch.src[a:b], dst=batch.dst[a:b],
                      t=batch.t[a:b], sign=batch.sign[a:b], weight=batch.weight[a:b])


def _validate(
    model: SignedTGN, sampler: TrainingNegatives,
    validate: Callable[[NeuralMethod], dict[str, float]], train: TrainConfig, name: str,
    epoch: int,
) -> dict[str, float]:
    """Score validation from the end-of-epoch state on a throw-away copy of it."""
    weights = copy.deepcopy(model.state_dict())
    state = _copy_state(model, sampler)
    method = NeuralMethod(name, model, train, sampler, torch.Generator().manual_seed(epoch))
    val = validate(method)
    model.load_state_dict(weights)
    _restore_state(model, sampler, state)
    return val


def _copy_state(model: SignedTGN, sampler: TrainingNegatives) -> dict[str, Any]:
    bufs = {k: v.clone() for k, v in model.named_buffers()}
    bufs.update({f"__sampler.{k}": v.clone() for k, v in sampler.named_buffers()})
    feats = model.features
    extra = feats.extra_state() if feats is not None else None
    return {"buffers": bufs, "features": extra}


def _restore_state(model: SignedTGN, sampler: TrainingNegatives, state: dict[str, Any]) -> None:
    bufs = dict(model.named_buffers())
    bufs.update({f"__sampler.{k}": v for k, v in sampler.named_buffers()})
    for k, v in state["buffers"].items():
        bufs[k].copy_(v)
    if model.features is not None and state["features"] is not None:
        model.features.load_extra_state(state["features"])
