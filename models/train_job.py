"""``signsim train``: train the signed model on a stored run and record it.

The training loop itself (:func:`models.train.fit_model`, :func:`models.train.fit_stream`)
knows nothing of the database's ``models`` table; this module reads the run (loaded or
streamed), trains in one process or data-parallel (:mod:`models.distributed`), saves the
checkpoint and adds the row.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import record_model, save_checkpoint
from models.data import load_events, resolve_run, split_by_time
from models.distributed import DistContext, launch, parameter_digest, plan_processes
from models.signed_tgn import ModelConfig
from models.step import resolve_device
from models.stream import stream_info
from models.train import TrainConfig, fit_model, fit_stream
from sim.errors import SignsimError
from sim.store.database import Store, open_store

__all__ = ["TrainResult", "train_run"]


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
        device: Device used (rank 0's when data-parallel).
        processes: Data-parallel processes.
        param_sha256: SHA-256 of the trained parameters on every rank (all equal).
    """

    model_id: int
    run_id: int
    checkpoint: str
    best_epoch: int
    val_metrics: dict[str, float]
    seconds: float
    train_events_per_s: float
    device: str
    processes: int = 1
    param_sha256: list[str] = field(default_factory=list)


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
    gpus: int = 1,
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
        gpus: Data-parallel processes (:mod:`models.distributed`): one per CUDA GPU
            (NCCL), or with ``device='cpu'`` that many CPU processes (gloo).

    Raises:
        SignsimError: Unknown run, bad settings, or an unusable device.
    """
    t0 = time.perf_counter()
    train = train or TrainConfig()
    if train.epochs < 1 or train.batch_size < 1 or train.train_batch_size < 0:
        raise SignsimError("--epochs and --batch-size must be at least 1.")
    if train.chunk_size < 0 or train.stream_chunk < 0 or train.val_window < 0:
        raise SignsimError("--chunk-size, --stream-chunk and --val-window cannot be negative.")
    opts = {"variant": variant, "use_features": use_features, "train": train.to_dict(),
            "model_overrides": model_overrides or {}, "out_dir": str(out_dir),
            "name": name, "progress": progress}
    store = db if isinstance(db, Store) else open_store(db, create=False)
    run_id = resolve_run(store, run)
    if gpus == 1:
        res = _train(store, run_id, opts, resolve_device(device), None)
        assert res is not None
        res.seconds = time.perf_counter() - t0
        return res
    plan_processes(gpus, device)  # refuse before spawning anything
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        launch(_train_rank, gpus, device, (store.url, run_id, opts, str(out)))
        data = json.loads(out.read_text())
    data["seconds"] = time.perf_counter() - t0
    return TrainResult(**data)


def _train_rank(ctx: DistContext, url: str, run_id: int, opts: dict[str, Any],
                result_path: str) -> None:
    """One data-parallel process of :func:`train_run` (rank 0 writes the result)."""
    res = _train(open_store(url, create=False), run_id, opts, ctx.device, ctx)
    if res is not None:
        Path(result_path).write_text(json.dumps(asdict(res)))


def _train(store: Store, run_id: int, opts: dict[str, Any], dev: torch.device,
           ctx: DistContext | None) -> TrainResult | None:
    """Train on this process's device; records the model on the main process only."""
    train = TrainConfig.from_dict(opts["train"])
    variant, progress = opts["variant"], opts["progress"]
    if train.stream_chunk > 0:
        info = stream_info(store, run_id, train.train_frac, train.val_frac)
        num_nodes, split = info.num_nodes, info.split
    else:
        events = load_events(store, run_id).to(dev)
        num_nodes, split = events.num_nodes, split_by_time(events, train.train_frac,
                                                           train.val_frac)
    try:
        mcfg = ModelConfig(num_nodes=num_nodes, variant=variant,
                           use_features=opts["use_features"], **opts["model_overrides"])
    except (TypeError, ValueError) as exc:
        raise SignsimError(f"Bad model settings: {exc}.") from None
    name = opts["name"] or f"{variant}-run{run_id}-seed{train.seed}"
    if train.stream_chunk > 0:
        fit = fit_stream(store, info, mcfg, train, dev, progress=progress, name=name, ctx=ctx)
    else:
        fit = fit_model(events, split, mcfg, train, progress=progress, name=name, ctx=ctx)
    digests = [parameter_digest(fit.model)]
    if ctx is not None:
        digests = ctx.gather_digests(digests[0])
        if not ctx.is_main:
            return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    ckpt = Path(opts["out_dir"]) / f"{name}-{stamp}.pt"
    processes = 1 if ctx is None else ctx.world
    config = {"train": train.to_dict(), "run_id": run_id, "split": asdict(split),
              "name": name, "processes": processes}
    save_checkpoint(ckpt, fit.model, config)
    metrics = {"best_epoch": fit.best_epoch, "val": fit.val_metrics, "history": fit.history,
               "train_events_per_s": fit.train_events_per_s, "device": str(dev),
               "processes": processes, "param_sha256": digests}
    model_id = record_model(store, name, run_id, ckpt,
                             {"model": fit.model.config.to_dict(), **config}, metrics)
    return TrainResult(model_id=model_id, run_id=run_id, checkpoint=str(ckpt),
                       best_epoch=fit.best_epoch, val_metrics=fit.val_metrics,
                       seconds=0.0, train_events_per_s=fit.train_events_per_s,
                       device=str(dev), processes=processes, param_sha256=digests)
