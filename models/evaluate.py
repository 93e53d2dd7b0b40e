"""``signsim evaluate``: a trained model beside every baseline, under one strict protocol.

All methods see the same stream, the same batches, the same fixed negatives and the
same thresholds rule (sign and 3-class thresholds chosen on validation, applied to
test). See :mod:`models.protocol` for the protocol and :mod:`models.baselines` for the
baselines.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from sqlalchemy import update
from tqdm import tqdm

from models.baselines import EdgeBank, FeatureClassifier, ReputationHeuristic, unsigned_tgn
from models.data import SignedEvents, TimeSplit, load_events, split_by_time
from models.protocol import OnlineMethod, make_negatives, metrics_from, run_protocol
from models.signed_tgn import ModelConfig, SignedTGN
from models.train import NeuralMethod, TrainConfig, fit_model, load_checkpoint, resolve_device
from sim.errors import SignsimError
from sim.store.database import Store, open_store
from sim.store.schema import ModelRecord

__all__ = [
    "METRIC_COLUMNS", "EvaluationReport", "LoadedModel", "evaluate_model", "load_model_record",
    "load_trained",
]

METRIC_COLUMNS = (
    ("exist_mrr", "MRR"), ("exist_ap", "AP"), ("exist_auc", "ex.AUC"),
    ("sign_auc", "sg.AUC"), ("sign_macro_f1", "sg.mF1"), ("sign_f1_neg", "F1neg"),
    ("weight_rmse", "w.RMSE"), ("weight_pearson", "w.r"), ("three_class_macro_f1", "3c.mF1"),
)


@dataclass
class EvaluationReport:
    """Metrics of the model and the baselines.

    Attributes:
        model_id: The evaluated model.
        run_id: The run it was evaluated on.
        protocol: One-line description of the protocol.
        metrics: ``{method: {part: {metric: value}}}`` for parts ``val`` and ``test``.
        seconds: ``{method: wall seconds}`` (training included for trained baselines).
    """

    model_id: int
    run_id: int
    protocol: str
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: per part, per method, the metrics (NaN becomes null)."""
        def clean(v: float) -> float | None:
            return v if math.isfinite(v) else None

        out: dict[str, Any] = {"model_id": self.model_id, "run_id": self.run_id,
                               "protocol": self.protocol, "seconds": self.seconds}
        for part in ("val", "test"):
            out[part] = {m: {k: clean(v) for k, v in parts[part].items()}
                         for m, parts in self.metrics.items()}
        return out

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def format_table(self, part: str = "test") -> str:
        """A fixed-width text table of one part (rows: methods; columns: metrics)."""
        name_w = max([len("method")] + [len(m) for m in self.metrics])
        head = f"{'method':<{name_w}} " + " ".join(f"{label:>7}" for _, label in METRIC_COLUMNS)
        lines = [f"{part} metrics, {self.protocol}", head, "-" * len(head)]
        for method, parts in self.metrics.items():
            vals = []
            for key, _ in METRIC_COLUMNS:
                v = parts[part].get(key, float("nan"))
                vals.append(f"{v:7.3f}" if math.isfinite(v) else f"{'-':>7}")
            lines.append(f"{method:<{name_w}} " + " ".join(vals))
        return "\n".join(lines)


def load_model_record(store: Store, model_id: int) -> dict[str, Any]:
    """The ``models`` row of ``model_id`` with its config parsed.

    Raises:
        SignsimError: No such model.
    """
    df = store.frame("SELECT * FROM models WHERE id = :i", {"i": int(model_id)})
    if df.empty:
        known = store.frame("SELECT id, name FROM models ORDER BY id")
        listing = ", ".join(f"{r.id} ({r.name})" for r in known.itertuples()) or "none"
        raise SignsimError(f"No model with id {model_id} in the database (models: {listing}).")
    row: dict[str, Any] = {str(k): v for k, v in df.iloc[0].to_dict().items()}
    row["config"] = json.loads(row["config_json"] or "{}")
    return row


def _baselines(
    events: SignedEvents, split: TimeSplit, train: TrainConfig, model_cfg: dict[str, Any],
    ablations: bool, progress: bool,
) -> list[tuple[OnlineMethod, float]]:
    n = events.num_nodes
    window = max(split.val_time - split.train_time, 1e-9)
    out: list[tuple[OnlineMethod, float]] = [
        (EdgeBank(n), 0.0), (EdgeBank(n, window=window), 0.0), (ReputationHeuristic(n), 0.0)
    ]
    for kind in ("logreg", "gbdt"):
        t0 = time.perf_counter()
        clf = FeatureClassifier(n, kind, seed=train.seed)
        clf.fit(events, split, train.batch_size)
        out.append((clf, time.perf_counter() - t0))
    dims: dict[str, Any] = {k: model_cfg[k] for k in ("memory_dim", "time_dim", "msg_dim", "embed_dim",
                                      "hidden", "heads", "neighbors") if k in model_cfg}
    t0 = time.perf_counter()
    tgn, _ = unsigned_tgn(events, split, train, dims, progress=progress)
    out.append((tgn, time.perf_counter() - t0))
    if ablations:
        for name, variant in (("ablation_no_balance", "no_balance"),
                              ("ablation_one_memory", "unsigned")):
            t0 = time.perf_counter()
            cfg = ModelConfig(num_nodes=n, variant=variant, use_features=True, **dims)
            fit = fit_model(events, split, cfg, train, progress=progress, name=name)
            out.append((NeuralMethod(name, fit.model, train), time.perf_counter() - t0))
    return out


@dataclass
class LoadedModel:
    """A recorded model rebuilt for a run: its events, settings, split and weights."""

    record: dict[str, Any]
    run_id: int
    events: SignedEvents
    train: TrainConfig
    split: TimeSplit
    model: SignedTGN
    config: dict[str, Any]
    device: torch.device


def load_trained(store: Store, model_id: int, run_id: int | None, device: str,
                 adapt: bool | None) -> LoadedModel:
    """Rebuild model ``model_id`` for ``run_id`` (default: the run it was trained on).

    Args:
        store: The open store.
        model_id: Row id in the ``models`` table.
        run_id: Run whose events to load.
        device: ``auto``, ``cpu`` or ``cuda``.
        adapt: Override the prequential adaptation setting (None: as trained).
    """
    rec = load_model_record(store, model_id)
    run = int(rec["run_id"]) if run_id is None else run_id
    dev = resolve_device(device)
    events = load_events(store, run).to(dev)
    train = TrainConfig.from_dict(rec["config"].get("train", {}))
    if adapt is not None:
        train.adapt = adapt
    split = split_by_time(events, train.train_frac, train.val_frac)
    model, config = load_checkpoint(rec["checkpoint"], num_nodes=events.num_nodes, device=dev)
    return LoadedModel(rec, run, events, train, split, model, config, dev)


def evaluate_model(
    db: str | Store,
    model_id: int,
    *,
    device: str = "auto",
    adapt: bool | None = None,
    baselines: bool = True,
    ablations: bool = False,
    progress: bool = True,
    record: bool = True,
) -> EvaluationReport:
    """Evaluate a trained model and the baselines on the model's run.

    Args:
        db: Database path/URL or an open store.
        model_id: Row id in the ``models`` table.
        device: ``auto``, ``cpu`` or ``cuda``.
        adapt: Prequential adaptation (default: as the model was trained).
        baselines: Also run every baseline (the unsigned TGN is trained here).
        ablations: Also train and run the ablations (no balanced aggregation; one memory).
        progress: Show progress bars.
        record: Store the metrics in the model's ``metrics_json``.

    Raises:
        SignsimError: Unknown model, missing checkpoint, unknown device.
    """
    store = db if isinstance(db, Store) else open_store(db, create=False)
    loaded = load_trained(store, model_id, None, device, adapt)
    run_id, events, train, split = loaded.run_id, loaded.events, loaded.train, loaded.split
    model, config = loaded.model, loaded.config
    negatives = make_negatives(events, split, train.batch_size, train.n_neg, train.eval_seed)
    protocol = (f"strict online, batch {train.batch_size}, {train.n_neg} negatives/event, "
                f"{'prequential adaptation' if train.adapt else 'frozen weights'}")
    report = EvaluationReport(model_id=int(model_id), run_id=run_id, protocol=protocol)
    methods: list[tuple[OnlineMethod, float]] = [(NeuralMethod("model", model, train), 0.0)]
    if baselines:
        methods += _baselines(events, split, train, config["model"], ablations, progress)
    for method, fit_seconds in tqdm(methods, disable=not progress, desc="evaluate",
                                    unit="method"):
        t0 = time.perf_counter()
        res = run_protocol(method, events, split, negatives, train.batch_size,
                           adapt=train.adapt)
        report.metrics[method.name] = metrics_from(res)
        report.seconds[method.name] = fit_seconds + time.perf_counter() - t0
    if record:
        metrics = json.loads(loaded.record.get("metrics_json") or "{}")
        metrics["evaluation"] = report.to_dict()
        with store.begin() as conn:
            conn.execute(update(ModelRecord).where(ModelRecord.id == int(model_id))
                         .values(metrics_json=json.dumps(metrics, sort_keys=True)))
    return report
