"""The strict online evaluation protocol shared by the model and every baseline.

For each batch of consecutive events, in time order:

1. ``score``: the method scores the batch's true pairs and their negatives from its
   state as it stood before the batch;
2. ``learn`` (only with prequential adaptation): the method may update its parameters
   with the now revealed batch (test-then-train; nothing scored later is affected by
   labels it has not yet been shown);
3. ``observe``: the batch's true events are written into the state. Negatives never
   are.

The training period is replayed through ``observe`` first (warm-up); validation is
scored next (thresholds are chosen there) and then the test period.

Decision thresholds (sign; link and sign of the 3-class task) are reported two ways,
the same rule for every method: **fixed**, chosen once on validation and applied to
test; and **prequential**, re-chosen before each batch on the last
``PREQUENTIAL_WINDOW`` already revealed events of the scored stream (validation, then
test), so that they follow a drifting class prior without seeing any label early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from models.data import EventBatch, SignedEvents, TimeSplit, iter_batches
from models.sampling import evaluation_negatives
from models.scoring import (
    best_sign_threshold,
    best_three_class_thresholds,
    existence_metrics,
    prequential_thresholds,
    sign_metrics,
    three_class_labels,
    three_class_macro_f1,
    weight_metrics,
)

__all__ = [
    "PREQUENTIAL_MIN",
    "PREQUENTIAL_WINDOW",
    "BatchScores",
    "Collected",
    "EvalNegatives",
    "OnlineMethod",
    "make_negatives",
    "metrics_from",
    "prequential_metrics",
    "prequential_schedule",
    "run_protocol",
]

PREQUENTIAL_WINDOW = 2000
"""Revealed events the prequential thresholds are chosen on (ten batches of 200)."""
PREQUENTIAL_MIN = 200
"""Fewest revealed events to choose a prequential threshold on (before: 0.5)."""


@dataclass
class BatchScores:
    """A method's scores for one batch (all on the CPU or any device).

    Attributes:
        exist_pos: ``[b]`` existence scores of the true pairs (any monotone score).
        exist_neg: ``[b, q]`` existence scores of their negatives.
        p_pos: ``[b]`` probability that each true event is positive.
        weight: ``[b]`` predicted signed weight.
        p3_pos: ``[b, 3]`` (no link, positive, negative) probabilities of the true pairs.
        p3_neg: ``[b, 3]`` the same for one negative per event (the 3-class negatives).
    """

    exist_pos: Tensor
    exist_neg: Tensor
    p_pos: Tensor
    weight: Tensor
    p3_pos: Tensor
    p3_neg: Tensor


class OnlineMethod(Protocol):
    """What the protocol needs from a model or a baseline."""

    name: str

    def reset_state(self) -> None:
        """Forget every observed event."""

    def score(self, batch: EventBatch, negatives: Tensor, col3: int) -> BatchScores:
        """Score a batch from the current state.

        ``negatives[:, col3]`` are the negatives of the 3-class task.
        """
        ...

    def learn(self, batch: EventBatch) -> None:
        """Prequential update with a scored, revealed batch (may do nothing)."""

    def observe(self, batch: EventBatch) -> None:
        """Write the batch's true events into the state."""


@dataclass
class EvalNegatives:
    """Fixed negatives of the validation and test periods.

    Attributes:
        val: ``[n_val, q]`` node indices.
        test: ``[n_test, q]`` node indices.
        col3: Column used as the 3-class negative (the first random one).
    """

    val: np.ndarray
    test: np.ndarray
    col3: int


def make_negatives(
    events: SignedEvents, split: TimeSplit, batch_size: int, n_neg: int = 100, seed: int = 0
) -> EvalNegatives:
    """Seeded negatives for validation and test (histories aligned with the batches)."""
    a, b = split.range("val")
    c, d = split.range("test")
    val = evaluation_negatives(events, a, b, batch_size, n_neg, seed)
    test = evaluation_negatives(events, c, d, batch_size, n_neg, seed + 1)
    return EvalNegatives(val=val, test=test, col3=n_neg // 2 if n_neg > 1 else 0)


@dataclass
class Collected:
    """Everything a method produced over one scored period."""

    exist_pos: list[np.ndarray] = field(default_factory=list)
    exist_neg: list[np.ndarray] = field(default_factory=list)
    p_pos: list[np.ndarray] = field(default_factory=list)
    weight: list[np.ndarray] = field(default_factory=list)
    p3_pos: list[np.ndarray] = field(default_factory=list)
    p3_neg: list[np.ndarray] = field(default_factory=list)
    sign: list[np.ndarray] = field(default_factory=list)
    signed_weight: list[np.ndarray] = field(default_factory=list)
    batch: list[np.ndarray] = field(default_factory=list)

    def add(self, s: BatchScores, batch: EventBatch) -> None:
        """Append one batch (numbered in order within the period)."""
        def np_(x: Tensor) -> np.ndarray:
            return x.detach().double().cpu().numpy()

        self.exist_pos.append(np_(s.exist_pos))
        self.exist_neg.append(np_(s.exist_neg))
        self.p_pos.append(np_(s.p_pos))
        self.weight.append(np_(s.weight))
        self.p3_pos.append(np_(s.p3_pos))
        self.p3_neg.append(np_(s.p3_neg))
        self.sign.append(np_(batch.sign))
        self.signed_weight.append(np_(batch.signed_weight))
        self.batch.append(np.full(len(batch), len(self.batch), dtype=np.int64))

    def arrays(self) -> dict[str, np.ndarray]:
        """Concatenated arrays."""
        out = {}
        for key, parts in self.__dict__.items():
            out[key] = np.concatenate(parts) if parts else np.zeros(0)
        return out


def _score_range(
    method: OnlineMethod, events: SignedEvents, start: int, end: int, negatives: np.ndarray,
    col3: int, batch_size: int, adapt: bool,
) -> Collected:
    out = Collected()
    device = events.device
    for batch in iter_batches(events, start, end, batch_size):
        a = batch.start - start
        neg = torch.from_numpy(negatives[a:a + len(batch)]).to(device)
        out.add(method.score(batch, neg, col3), batch)
        if adapt:
            method.learn(batch)
        method.observe(batch)
    return out


def run_protocol(
    method: OnlineMethod,
    events: SignedEvents,
    split: TimeSplit,
    negatives: EvalNegatives,
    batch_size: int,
    *,
    adapt: bool = False,
    parts: tuple[str, ...] = ("val", "test"),
    warmup: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Run the strict online protocol.

    Args:
        method: The model or baseline.
        events: The whole stream.
        split: Its chronological split.
        negatives: Fixed evaluation negatives.
        batch_size: Events per batch.
        adapt: Prequential adaptation (call ``learn`` after scoring each batch).
        parts: ``("val",)`` or ``("val", "test")``.
        warmup: Reset the state and replay the training period first; when False the
            method's state must already be at the end of training.

    Returns:
        Per part, the collected arrays (see :class:`Collected`).
    """
    if warmup:
        method.reset_state()
        for batch in iter_batches(events, *split.range("train"), batch_size):
            method.observe(batch)
    results = {}
    for part in parts:
        start, end = split.range(part)
        negs = negatives.val if part == "val" else negatives.test
        results[part] = _score_range(
            method, events, start, end, negs, negatives.col3, batch_size, adapt
        ).arrays()
    return results


def _three_class_data(r: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of the 3-class task: true pairs first, then negatives."""
    positive = r["sign"] > 0
    y3 = np.concatenate([np.where(positive, 1, 2), np.zeros(len(positive), int)])
    return y3, np.concatenate([r["p3_pos"], r["p3_neg"]])


def _stream(results: dict[str, dict[str, np.ndarray]]) -> tuple[list[str], np.ndarray]:
    """The scored parts in stream order and one batch number per event across them."""
    parts: list[str] = [p for p in ("val", "test") if p in results]
    batch, offset = [], 0
    for part in parts:
        b = results[part]["batch"]
        batch.append(b + offset)
        offset += int(b.max()) + 1 if b.size else 0
    return parts, np.concatenate(batch) if batch else np.zeros(0, np.int64)


def prequential_schedule(
    results: dict[str, dict[str, np.ndarray]], window: int = PREQUENTIAL_WINDOW,
    min_events: int = PREQUENTIAL_MIN,
) -> dict[str, np.ndarray]:
    """The thresholds each event is judged with when thresholds follow the stream.

    The scored parts are taken in stream order (validation, then test) as one sequence
    of batches; before each batch the sign threshold and the 3-class thresholds are
    re-chosen, with the same rules as the fixed ones, on the last ``window`` events of
    the earlier batches (their labels are revealed by then); 0.5 before ``min_events``
    events are revealed.

    Returns:
        Per event of the concatenated parts: ``sign``, ``link`` and ``sign3`` thresholds.
    """
    parts, bid = _stream(results)
    positive = np.concatenate([results[p]["sign"] > 0 for p in parts])
    p_pos = np.concatenate([results[p]["p_pos"] for p in parts])
    p3_pos = np.concatenate([results[p]["p3_pos"] for p in parts])
    p3_neg = np.concatenate([results[p]["p3_neg"] for p in parts])
    y3_pos = np.where(positive, 1, 2)

    def fit_sign(idx: np.ndarray) -> float:
        return best_sign_threshold(positive[idx], p_pos[idx])

    def fit_three(idx: np.ndarray) -> tuple[float, float]:
        y = np.concatenate([y3_pos[idx], np.zeros(idx.size, int)])
        return best_three_class_thresholds(np.concatenate([p3_pos[idx], p3_neg[idx]]), y)

    sign_th = np.asarray(prequential_thresholds(bid, fit_sign, window, min_events, 0.5))
    three_th = np.asarray(prequential_thresholds(bid, fit_three, window, min_events,
                                                 (0.5, 0.5))).reshape(-1, 2)
    first = np.flatnonzero(np.r_[True, bid[1:] != bid[:-1]]) if bid.size else bid
    which = np.searchsorted(first, np.arange(bid.size), side="right") - 1
    return {"sign": sign_th[which], "link": three_th[which, 0], "sign3": three_th[which, 1]}


def prequential_metrics(
    results: dict[str, dict[str, np.ndarray]], window: int = PREQUENTIAL_WINDOW,
    min_events: int = PREQUENTIAL_MIN,
) -> dict[str, dict[str, float]]:
    """Sign and 3-class metrics under :func:`prequential_schedule`'s thresholds.

    Returns:
        Per part: ``sign_macro_f1_preq``, ``sign_f1_neg_preq``,
        ``three_class_macro_f1_preq`` and ``sign_threshold_preq_mean``.
    """
    parts, _ = _stream(results)
    sched = prequential_schedule(results, window, min_events)
    out: dict[str, dict[str, float]] = {}
    lo = 0
    for part in parts:
        r = results[part]
        n = len(r["sign"])
        sl = slice(lo, lo + n)
        lo += n
        sg = sign_metrics(r["sign"] > 0, r["p_pos"], sched["sign"][sl])
        y3, p3 = _three_class_data(r)
        link, sign3 = sched["link"][sl], sched["sign3"][sl]
        pred = three_class_labels(p3, np.concatenate([link, link]),
                                  np.concatenate([sign3, sign3]))
        out[part] = {
            "sign_macro_f1_preq": sg["macro_f1"], "sign_f1_neg_preq": sg["f1_neg"],
            "three_class_macro_f1_preq": three_class_macro_f1(y3, pred),
            "sign_threshold_preq_mean": sg["threshold"],
        }
    return out


def metrics_from(results: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Metrics per scored part.

    Fixed thresholds (sign, 3-class) are chosen on validation and applied to every part;
    the ``*_preq`` metrics use thresholds that follow the stream
    (:func:`prequential_metrics`).
    """
    val = results["val"]
    positive_val = val["sign"] > 0
    sign_th = best_sign_threshold(positive_val, val["p_pos"])
    y3_val, p3_val = _three_class_data(val)
    link_th, sign3_th = best_three_class_thresholds(p3_val, y3_val)
    preq = prequential_metrics(results)
    out: dict[str, dict[str, float]] = {}
    for part, r in results.items():
        positive = r["sign"] > 0
        ex = existence_metrics(r["exist_pos"], r["exist_neg"])
        sg = sign_metrics(positive, r["p_pos"], sign_th)
        wt = weight_metrics(r["signed_weight"], r["weight"])
        y3, p3 = _three_class_data(r)
        f3 = three_class_macro_f1(y3, three_class_labels(p3, link_th, sign3_th))
        out[part] = {
            "exist_mrr": ex["mrr"], "exist_ap": ex["ap"], "exist_auc": ex["auc"],
            "sign_auc": sg["auc"], "sign_macro_f1": sg["macro_f1"], "sign_f1_neg": sg["f1_neg"],
            "weight_rmse": wt["rmse"], "weight_pearson": wt["pearson"],
            "three_class_macro_f1": f3, "sign_threshold": sign_th,
            "n_events": float(len(positive)), **preq[part],
        }
    return out
