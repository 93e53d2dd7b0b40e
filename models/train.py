"""Training loop, model selection, checkpoints and the ``signsim train`` entry point.

Each epoch replays the training period in batches: score the batch's pairs (true
events plus one sampled negative each) from the state before the batch, take one
optimiser step on the four losses, then write the true events into the state. After
each epoch the validation period is scored under the strict protocol (with prequential
adaptation when enabled, on a throw-away copy of the weights); the best epoch by
``sign AUC + existence MRR`` is kept, with early stopping.

Checkpoints hold ``{'state_dict': ..., 'config': {...}}`` with a JSON-safe config and are
read back only with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from models.data import (
    EventBatch,
    SignedEvents,
    TimeSplit,
    iter_batches,
    load_events,
    resolve_run,
    split_by_time,
)
from models.protocol import BatchScores, make_negatives, metrics_from, run_protocol
from models.sampling import TrainingNegatives
from models.signed_tgn import ModelConfig, SignedTGN, build_model
from sim.errors import SignsimError
from sim.store.database import Store, open_store

__all__ = [
    "FitResult",
    "NeuralMethod",
    "TrainConfig",
    "TrainResult",
    "fit_model",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "train_run",
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``/``cuda``/``cuda:N`` as given.

    Raises:
        SignsimError: An unknown device, or CUDA requested where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise SignsimError(f"Unknown device '{name}'; use auto, cpu or cuda.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SignsimError("Device 'cuda' was requested but no CUDA GPU is available.")
    if dev.type not in ("cpu", "cuda"):
        raise SignsimError(f"Unsupported device '{name}'; use auto, cpu or cuda.")
    return dev


def train_step(
    model: SignedTGN,
    batch: EventBatch,
    sampler: TrainingNegatives,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    neg_sign_weight: float = 1.0,
) -> float:
    """One optimiser step on a batch scored from the state before it; returns the loss.

    The batch is not written into the state here (call ``model.observe`` after).
    """
    optimizer.zero_grad()
    b = len(batch)
    neg = sampler.sample(batch.src, batch.dst, generator)
    u = torch.cat([batch.src, batch.src])
    v = torch.cat([batch.dst, neg])
    out = model(u, v, float(batch.t[0]))
    y_exist = torch.cat([torch.ones(b, device=u.device), torch.zeros(b, device=u.device)])
    positive = batch.sign > 0
    sign_w = torch.where(positive, 1.0, neg_sign_weight)
    loss = F.binary_cross_entropy_with_logits(out.exist, y_exist)
    loss = loss + F.binary_cross_entropy_with_logits(
        out.sign[:b], positive.float(), weight=sign_w
    ) / sign_w.mean()
    loss = loss + F.mse_loss(out.weight[:b], batch.signed_weight)
    y3 = torch.cat([torch.where(positive, 1, 2), torch.zeros(b, dtype=torch.long,
                                                             device=u.device)])
    loss = loss + F.cross_entropy(out.classes, y3)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return float(loss.detach())


class NeuralMethod:
    """Adapter of a :class:`SignedTGN` to the online protocol.

    Args:
        name: Row name in reports.
        model: The model.
        train: Its training settings (adaptation learning rate, loss weights).
        sampler: Training-negative sampler (shared with the training loop).
        generator: Random generator for adaptation negatives.
    """

    def __init__(
        self, name: str, model: SignedTGN, train: TrainConfig,
        sampler: TrainingNegatives | None = None, generator: torch.Generator | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.train = train
        device = next(model.parameters()).device
        self.sampler = sampler or TrainingNegatives(model.num_nodes).to(device)
        self.generator = generator or torch.Generator().manual_seed(train.seed + 1)
        self._opt: torch.optim.Optimizer | None = None

    def reset_state(self) -> None:
        """Forget the stream (weights are kept)."""
        self.model.reset_state()
        self.sampler.reset_state()

    @torch.no_grad()
    def score(self, batch: EventBatch, negatives: Tensor, col3: int) -> BatchScores:
        """Score true pairs, their negatives and the 3-class negatives."""
        self.model.eval()
        b, q = negatives.shape
        u = torch.cat([batch.src, batch.src, batch.src.repeat_interleave(q)])
        v = torch.cat([batch.dst, negatives[:, col3], negatives.reshape(-1)])
        out = self.model(u, v, float(batch.t[0]), n_full=2 * b)
        p3 = torch.softmax(out.classes, dim=-1)
        return BatchScores(
            exist_pos=out.exist[:b], exist_neg=out.exist[2 * b:].view(b, q),
            p_pos=torch.sigmoid(out.sign[:b]), weight=out.weight[:b],
            p3_pos=p3[:b], p3_neg=p3[b:],
        )

    def learn(self, batch: EventBatch) -> None:
        """One adaptation step on the revealed batch (before it is observed)."""
        if self._opt is None:
            self._opt = torch.optim.Adam(self.model.parameters(), lr=self.train.adapt_lr,
                                         fused=True)
        self.model.train()
        train_step(self.model, batch, self.sampler, self._opt, self.generator,
                   self.train.neg_sign_weight)
        self.model.eval()

    def observe(self, batch: EventBatch) -> None:
        """Write the batch into the model's state and the negative sampler."""
        self.model.observe(batch)
        self.sampler.observe(batch.src, batch.dst)


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
) -> FitResult:
    """Train a model on ``events[:split.train_end]`` and select the best epoch on validation.

    Args:
        events: The stream (already on the target device).
        split: Its chronological split.
        model_config: Model hyper-parameters (``num_nodes`` must match the stream).
        train: Training settings.
        progress: Show a tqdm progress bar.
        name: Label of the progress bar.
    """
    torch.manual_seed(train.seed)
    device = events.device
    model = build_model(model_config).to(device)
    gen = torch.Generator().manual_seed(train.seed)
    sampler = TrainingNegatives(model.num_nodes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, fused=True)
    negatives = make_negatives(events, split, train.batch_size, train.select_neg,
                               train.eval_seed)
    n_batches = math.ceil(split.train_end / train.batch_size)
    result = FitResult(model=model)
    best_state: dict[str, Tensor] | None = None
    best_score, stale, total_events, total_time = -math.inf, 0, 0, 0.0
    bar = tqdm(total=train.epochs * n_batches, disable=not progress, desc=f"train {name}",
               unit="batch")
    for epoch in range(1, train.epochs + 1):
        model.train()
        model.reset_state()
        sampler.reset_state()
        t0, loss_sum = time.perf_counter(), 0.0
        for batch in iter_batches(events, 0, split.train_end, train.batch_size):
            loss_sum += train_step(model, batch, sampler, optimizer, gen, train.neg_sign_weight)
            model.observe(batch)
            sampler.observe(batch.src, batch.dst)
            bar.update(1)
        seconds = time.perf_counter() - t0
        total_events += split.train_end
        total_time += seconds
        weights = copy.deepcopy(model.state_dict())
        state = _copy_state(model, sampler)
        method = NeuralMethod(name, model, train, sampler, torch.Generator().manual_seed(epoch))
        res = run_protocol(method, events, split, negatives, train.batch_size,
                           adapt=train.adapt, parts=("val",), warmup=False)
        val = metrics_from(res)["val"]
        model.load_state_dict(weights)
        _restore_state(model, sampler, state)
        model._computed = None
        score = _selection_score(val)
        result.history.append({"epoch": epoch, "loss": loss_sum / n_batches,
                               "train_seconds": seconds, "selection": score,
                               **{f"val_{k}": v for k, v in val.items()}})
        bar.set_postfix(loss=f"{loss_sum / n_batches:.3f}", val_auc=f"{val['sign_auc']:.3f}",
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


def _copy_state(model: SignedTGN, sampler: TrainingNegatives) -> dict[str, Any]:
    bufs = {k: v.clone() for k, v in model.named_buffers()}
    bufs.update({f"__sampler.{k}": v.clone() for k, v in sampler.named_buffers()})
    feats = model.features
    extra = None
    if feats is not None:
        extra = (dict(feats.pairs.table), feats._hist_n)
    return {"buffers": bufs, "features": extra}


def _restore_state(model: SignedTGN, sampler: TrainingNegatives, state: dict[str, Any]) -> None:
    bufs = dict(model.named_buffers())
    bufs.update({f"__sampler.{k}": v for k, v in sampler.named_buffers()})
    for k, v in state["buffers"].items():
        bufs[k].copy_(v)
    if model.features is not None and state["features"] is not None:
        table, hist_n = state["features"]
        model.features.pairs.table = table
        model.features._hist_n = hist_n  # the buffers only grow: rows < hist_n unchanged


def save_checkpoint(path: str | Path, model: SignedTGN, extra: dict[str, Any]) -> Path:
    """Write ``{'state_dict', 'config'}``; ``config`` = model config + ``extra`` (JSON-safe)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    config = {"model": model.config.to_dict(), **extra}
    json.dumps(config)  # refuse anything that is not JSON-safe
    torch.save({"state_dict": model.state_dict(), "config": config}, p)
    return p


def load_checkpoint(
    path: str | Path, num_nodes: int | None = None, device: torch.device | str = "cpu"
) -> tuple[SignedTGN, dict[str, Any]]:
    """Load a checkpoint with ``weights_only=True`` and rebuild the model.

    Args:
        path: The checkpoint file.
        num_nodes: Size the state for this many nodes (default: as trained).
        device: Where to put the model.

    Raises:
        SignsimError: Missing or unreadable checkpoint.
    """
    p = Path(path)
    if not p.exists():
        raise SignsimError(f"Checkpoint '{p}' does not exist.")
    try:
        data = torch.load(p, weights_only=True, map_location=device)
        config = data["config"]
        mcfg = dict(config["model"])
    except Exception as exc:  # any unreadable file is a user error here
        raise SignsimError(
            f"Checkpoint '{p}' cannot be read as a signsim checkpoint: {exc}"
        ) from None
    if num_nodes is not None:
        mcfg["num_nodes"] = num_nodes
    try:
        model = build_model(ModelConfig.from_dict(mcfg)).to(device)
        model.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        what = "has no state_dict" if isinstance(exc, KeyError) else (
            f"does not fit its own configuration ({str(exc).splitlines()[0][:200]})")
        raise SignsimError(
            f"Checkpoint '{p}' {what}; it was not written by this version of signsim's "
            "`signsim train`, or it was edited. Train a new one with `signsim train RUN`."
        ) from None
    return model, config


@dataclass
class TrainResult:
    """What ``signsim train`` did.

    Attributes:
        model_id: Row id in the ``models`` table.
        run_id: The run trained on.
        checkpoint: Checkpoint path.
        best_epoch: Best epoch (1-based).
        val_metrics: Validation metrics of the best epoch.
        seconds: Wall time.
        train_events_per_s: Training throughput.
        device: Device used.
    """

    model_id: int
    run_id: int
    checkpoint: str
    best_epoch: int
    val_metrics: dict[str, float]
    seconds: float
    train_events_per_s: float
    device: str


def _record_model(store: Store, name: str, run_id: int, ckpt: Path, config: dict[str, Any],
                  metrics: dict[str, Any]) -> int:
    from sqlalchemy import insert

    from sim.store.schema import ModelRecord

    row = {"name": name, "run_id": run_id, "created_at": datetime.now(UTC).replace(tzinfo=None),
           "checkpoint": str(ckpt.resolve()), "config_json": json.dumps(config, sort_keys=True),
           "metrics_json": json.dumps(metrics, sort_keys=True, default=float)}
    with store.begin() as conn:
        return int(conn.execute(insert(ModelRecord).returning(ModelRecord.id), row).scalar_one())


def train_run(
    db: str | Store,
    run: str | int,
    *,
    variant: str = "semba",
    use_features: bool = True,
    train: TrainConfig | None = None,
    model_overrides: dict[str, Any] | None = None,
    out_dir: str | Path = "checkpoints",
    device: str = "auto",
    name: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a model on a stored run and record it in the ``models`` table.

    Args:
        db: Database path/URL or an open store.
        run: Run id, or the name of an imported network / scenario.
        variant: ``semba``, ``no_balance`` or ``unsigned``.
        use_features: Feed the online pair features to the heads.
        train: Training settings (defaults if None).
        model_overrides: Extra :class:`ModelConfig` fields (``memory_dim`` ...).
        out_dir: Folder for the checkpoint.
        device: ``auto``, ``cpu`` or ``cuda``.
        name: Model name (default ``<variant>-run<id>-seed<seed>``).
        progress: Show a progress bar.

    Raises:
        SignsimError: Unknown run, bad settings, or an unusable device.
    """
    t0 = time.perf_counter()
    train = train or TrainConfig()
    store = db if isinstance(db, Store) else open_store(db, create=False)
    run_id = resolve_run(store, run)
    dev = resolve_device(device)
    events = load_events(store, run_id).to(dev)
    split = split_by_time(events, train.train_frac, train.val_frac)
    try:
        mcfg = ModelConfig(num_nodes=events.num_nodes, variant=variant,
                           use_features=use_features, **(model_overrides or {}))
    except (TypeError, ValueError) as exc:
        raise SignsimError(f"Bad model settings: {exc}.") from None
    if train.epochs < 1 or train.batch_size < 1:
        raise SignsimError("--epochs and --batch-size must be at least 1.")
    name = name or f"{variant}-run{run_id}-seed{train.seed}"
    fit = fit_model(events, split, mcfg, train, progress=progress, name=name)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    ckpt = Path(out_dir) / f"{name}-{stamp}.pt"
    config = {"train": train.to_dict(), "run_id": run_id, "split": asdict(split),
              "name": name}
    save_checkpoint(ckpt, fit.model, config)
    metrics = {"best_epoch": fit.best_epoch, "val": fit.val_metrics, "history": fit.history,
               "train_events_per_s": fit.train_events_per_s, "device": str(dev)}
    model_id = _record_model(store, name, run_id, ckpt,
                             {"model": fit.model.config.to_dict(), **config}, metrics)
    return TrainResult(model_id=model_id, run_id=run_id, checkpoint=str(ckpt),
                       best_epoch=fit.best_epoch, val_metrics=fit.val_metrics,
                       seconds=time.perf_counter() - t0,
                       train_events_per_s=fit.train_events_per_s, device=str(dev))
