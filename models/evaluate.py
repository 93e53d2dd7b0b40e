"""``signsim evaluate``: a trained model beside every baseline, under one strict protocol.

All methods see the same stream, the same batches, the same fixed negatives and the
same thresholds rules (sign and 3-class thresholds chosen on validation and applied to
test; and prequential thresholds re-chosen before each batch on revealed labels, the
``*_preq`` metrics). See :mod:`models.protocol` for the protocol and
:mod:`models.baselines` for the baselines.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sqlalchemy import update
from tqdm import tqdm

from models.baselines import EdgeBank, FeatureClassifier, ReputationHeuristic, unsigned_tgn
from models.blend import BLEND_NAME, blend_results
from models.data import SignedEvents, TimeSplit, load_events, split_by_time
from models.protocol import (
    PREQUENTIAL_WINDOW,
    EvalNegatives,
    OnlineMethod,
    make_negatives,
    metrics_from,
    run_protocol,
)
from models.signed_tgn import ModelConfig, SignedTGN
from models.train import NeuralMethod, TrainConfig, fit_model, load_checkpoint, resolve_device
from sim.errors import SignsimError
from sim.store.database import Store, open_store
from sim.store.schema import ModelRecord

__all__ = [
    "METRIC_COLUMNS", "EvaluationReport", "LoadedModel", "blend_partner", "build_methods",
    "evaluate_model",
    "load_model_record", "load_trained", "run_methods",
]

METRIC_COLUMNS = (
    ("exist_mrr", "MRR"), ("exist_ap", "AP"), ("exist_auc", "ex.AUC"),
    ("sign_auc", "sg.AUC"), ("sign_macro_f1", "sg.mF1"), ("sign_f1_neg", "F1neg"),
    ("weight_rmse", "w.RMSE"), ("weight_pearson", "w.r"), ("three_class_macro_f1", "3c.mF1"),
    ("sign_macro_f1_preq", "pq.mF1"), ("sign_f1_neg_preq", "pq.F1n"),
    ("three_class_macro_f1_preq", "pq.3c"),
)
"""Table columns: the ``pq.`` ones use prequential thresholds, the others fixed ones."""


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


def build_methods(
    events: SignedEvents, split: TimeSplit, train: TrainConfig, model_cfg: dict[str, Any], *,
    baselines: bool = True, ablations: bool = False, triads: bool | None = None,
    blend: bool = False, progress: bool = False,
) -> list[tuple[OnlineMethod, float]]:
    """Build and fit the baselines and ablations that go beside a model.

    Args:
        events: The stream.
        split: Its chronological split.
        train: Training settings (shared by every trained method).
        model_cfg: The model's :class:`ModelConfig` as a dict (sizes, ``triads``).
        baselines: EdgeBank (two), reputation, logistic regression and gradient boosting
            on the count features, gradient boosting on the count and triad features
            (``gbdt+triads``, see ``triads``), the unsigned TGN.
        ablations: The model's variants with its features: ``no_balance``, one memory,
            triads flipped, activity counts off (when on); and gradient boosting on every
            online feature (features only), with and without triads.
        triads: Include ``gbdt+triads`` (default: when the model reads triad features).
        blend: Include gradient boosting on every online feature with the model's triad
            setting (:func:`blend_partner`), the other half of the blend.
        progress: Show progress bars.

    Returns:
        ``(method, seconds spent fitting it)`` pairs.
    """
    n = events.num_nodes
    model_triads = bool(model_cfg.get("triads", False)) and model_cfg.get("use_features", True)
    clf_triads = model_triads if triads is None else triads
    out: list[tuple[OnlineMethod, float]] = []

    def fitted_clf(kind: str, features: str, with_triads: bool) -> None:
        t0 = time.perf_counter()
        clf = FeatureClassifier(n, kind, seed=train.seed, features=features, triads=with_triads)
        clf.fit(events, split, train.batch_size)
        out.append((clf, time.perf_counter() - t0))

    dims: dict[str, Any] = {k: model_cfg[k] for k in (
        "memory_dim", "time_dim", "msg_dim", "embed_dim", "hidden", "heads", "neighbors")
        if k in model_cfg}
    if baselines:
        window = max(split.val_time - split.train_time, 1e-9)
        out += [(EdgeBank(n), 0.0), (EdgeBank(n, window=window), 0.0),
                (ReputationHeuristic(n), 0.0)]
        for kind in ("logreg", "gbdt"):
            fitted_clf(kind, "counts", False)
        if clf_triads:
            fitted_clf("gbdt", "counts", True)
        t0 = time.perf_counter()
        tgn, _ = unsigned_tgn(events, split, train, dims, progress=progress)
        out.append((tgn, time.perf_counter() - t0))
    if ablations:
        activity = bool(model_cfg.get("activity", False))
        variants = [("ablation_no_balance", "no_balance", model_triads, activity),
                    ("ablation_one_memory", "unsigned", model_triads, activity),
                    ("ablation_no_triads" if model_triads else "ablation_triads", "semba",
                     not model_triads, activity)]
        if activity:
            variants.append(("ablation_no_activity", "semba", model_triads, False))
        for name, variant, with_triads, with_activity in variants:
            t0 = time.perf_counter()
            cfg = ModelConfig(num_nodes=n, variant=variant, use_features=True,
                              triads=with_triads, activity=with_activity, **dims)
            fit = fit_model(events, split, cfg, train, progress=progress, name=name)
            out.append((NeuralMethod(name, fit.model, train), time.perf_counter() - t0))
        for with_triads in (False, True):
            fitted_clf("gbdt", "all", with_triads)
    elif blend:
        fitted_clf("gbdt", "all", model_triads)
    return out


def blend_partner(model_cfg: dict[str, Any]) -> str:
    """Name of the feature classifier the model is blended with (same triad setting)."""
    with_triads = bool(model_cfg.get("triads", False)) and model_cfg.get("use_features", True)
    return "gbdt_all" + ("+triads" if with_triads else "")


def run_methods(
    methods: list[tuple[OnlineMethod, float]], events: SignedEvents, split: TimeSplit,
    negatives: EvalNegatives, train: TrainConfig, progress: bool = False,
    blend: tuple[str, ...] = (),
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, float]]:
    """Run each method under the strict protocol.

    Args:
        methods: ``(method, seconds spent fitting it)`` pairs.
        events: The stream.
        split: Its chronological split.
        negatives: Fixed evaluation negatives.
        train: Training settings (batch size, adaptation).
        progress: Show a progress bar over methods.
        blend: Names of methods to blend (:func:`models.blend.blend_results`), reported
            as ``blend`` when all of them ran.

    Returns:
        ``({method: {part: metrics}}, {method: seconds, fitting included})``.
    """
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    kept: dict[str, tuple[dict[str, dict[str, np.ndarray]], bool]] = {}
    for method, fit_seconds in tqdm(methods, disable=not progress, desc="evaluate",
                                    unit="method"):
        t0 = time.perf_counter()
        res = run_protocol(method, events, split, negatives, train.batch_size,
                           adapt=train.adapt)
        metrics[method.name] = metrics_from(res)
        seconds[method.name] = fit_seconds + time.perf_counter() - t0
        if method.name in blend:
            kept[method.name] = (res, isinstance(method, NeuralMethod))
    if blend and all(name in kept for name in blend):
        metrics[BLEND_NAME] = metrics_from(blend_results([kept[n] for n in blend]))
        seconds[BLEND_NAME] = sum(seconds[n] for n in blend)
    return metrics, seconds


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
    triads: bool | None = None,
    blend: bool = True,
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
        ablations: Also train and run the ablations (no balanced aggregation; one memory;
            triad features flipped; gradient boosting on every feature, with and without
            triads).
        triads: Add gradient boosting on count and triad features (default: when the
            model reads triad features).
        blend: With ``baselines``, also gradient boosting on every online feature
            (``gbdt_all``, ``+triads`` as the model) and the equal-weight blend of the
            model with it (``blend``, :mod:`models.blend`).
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
                f"{'prequential adaptation' if train.adapt else 'frozen weights'}; "
                f"pq. = thresholds re-chosen per batch on the last {PREQUENTIAL_WINDOW} "
                "revealed events")
    report = EvaluationReport(model_id=int(model_id), run_id=run_id, protocol=protocol)
    methods: list[tuple[OnlineMethod, float]] = [(NeuralMethod("model", model, train), 0.0)]
    blend = blend and baselines
    methods += build_methods(events, split, train, config["model"], baselines=baselines,
                             ablations=ablations, triads=triads, blend=blend,
                             progress=progress)
    parts = ("model", blend_partner(config["model"])) if blend else ()
    report.metrics, report.seconds = run_methods(methods, events, split, negatives, train,
                                                 progress, blend=parts)
    if record:
        metrics = json.loads(loaded.record.get("metrics_json") or "{}")
        metrics["evaluation"] = report.to_dict()
        with store.begin() as conn:
            conn.execute(update(ModelRecord).where(ModelRecord.id == int(model_id))
                         .values(metrics_json=json.dumps(metrics, sort_keys=True)))
    return report
