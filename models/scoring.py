"""Metric functions: ranking (MRR), binary scores, thresholds, weights, 3-class.

All functions take numpy arrays and return plain floats, so results are JSON-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

T = TypeVar("T")

__all__ = [
    "best_sign_threshold",
    "best_three_class_thresholds",
    "compose_three",
    "existence_metrics",
    "mrr",
    "prequential_thresholds",
    "sign_metrics",
    "three_class_labels",
    "three_class_macro_f1",
    "weight_metrics",
]


def mrr(pos: np.ndarray, neg: np.ndarray) -> float:
    """One-vs-many mean reciprocal rank, ties averaged.

    The rank of a positive among its negatives is ``1 + #(neg > pos) + #(neg == pos)/2``.

    Args:
        pos: ``[n]`` scores of the true events.
        neg: ``[n, q]`` scores of their negatives.
    """
    if pos.size == 0:
        return float("nan")
    p = pos.reshape(-1, 1)
    rank = 1.0 + (neg > p).sum(axis=1) + 0.5 * (neg == p).sum(axis=1)
    return float(np.mean(1.0 / rank))


def _safe(fn: object, *args: object) -> float:
    try:
        value = float(fn(*args))  # type: ignore[operator]
    except ValueError:
        return float("nan")
    return value


def existence_metrics(pos: np.ndarray, neg: np.ndarray) -> dict[str, float]:
    """MRR, AP and AUC of positives against all their negatives."""
    y = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    s = np.concatenate([pos.reshape(-1), neg.reshape(-1)])
    return {
        "mrr": mrr(pos, neg),
        "ap": _safe(average_precision_score, y, s),
        "auc": _safe(roc_auc_score, y, s),
    }


def _candidates(score: np.ndarray, k: int = 200) -> np.ndarray:
    uniq = np.unique(score)
    if uniq.size <= k:
        return uniq
    return np.unique(np.quantile(score, np.linspace(0.0, 1.0, k)))


def _macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over classes ``0..n_classes-1`` from integer labels (0 for empty classes)."""
    cm = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes)
    cm = cm.reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(0) + cm.sum(1)
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return float(f1.mean())


def _macro_f1_many(y: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 of each row of ``preds`` (``[k, n]`` integer labels) against ``y``."""
    k = preds.shape[0]
    codes = (np.arange(k)[:, None] * n_classes * n_classes + y[None, :] * n_classes + preds)
    cm = np.bincount(codes.ravel(), minlength=k * n_classes * n_classes)
    cm = cm.reshape(k, n_classes, n_classes)
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(float)
    denom = cm.sum(1) + cm.sum(2)
    f1 = np.divide(2 * tp, denom, out=np.zeros((k, n_classes)), where=denom > 0)
    return f1.mean(1)


def best_sign_threshold(positive: np.ndarray, p_pos: np.ndarray) -> float:
    """Threshold on ``p_pos`` (predict positive when ``>=``) maximising macro-F1.

    Candidates are the distinct scores (at most 200 quantiles); ties go to the lowest.

    Args:
        positive: ``[n]`` True where the true sign is +1.
        p_pos: ``[n]`` scores for the positive sign.
    """
    if p_pos.size == 0:
        return 0.5
    cand = _candidates(p_pos)
    y = positive.astype(np.int64)
    preds = (p_pos[None, :] >= cand[:, None]).astype(np.int64)
    return float(cand[int(np.argmax(_macro_f1_many(y, preds, 2)))])


def sign_metrics(
    positive: np.ndarray, p_pos: np.ndarray, threshold: float | np.ndarray
) -> dict[str, float]:
    """Sign AUC, macro-F1 and negative-class F1 at ``threshold``.

    ``threshold`` is one value or one per event (``threshold`` in the result: its mean).
    """
    pred = p_pos >= threshold
    return {
        "auc": _safe(roc_auc_score, positive, p_pos),
        "macro_f1": float(f1_score(positive, pred, average="macro", zero_division=0)),
        "f1_neg": float(f1_score(~positive, ~pred, zero_division=0)),
        "threshold": float(np.mean(threshold)) if np.size(threshold) else float("nan"),
    }


def weight_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE and Pearson correlation of signed weights."""
    rmse = float(np.sqrt(np.mean((true - pred) ** 2))) if true.size else float("nan")
    if true.size < 2 or np.std(true) == 0 or np.std(pred) == 0:
        pearson = float("nan")
    else:
        pearson = float(np.corrcoef(true, pred)[0, 1])
    return {"rmse": rmse, "pearson": pearson}


def compose_three(p_link: np.ndarray, p_pos: np.ndarray) -> np.ndarray:
    """3-class probabilities (no link, positive, negative) from link and sign scores."""
    e = 0.01 + 0.98 * np.clip(p_link, 0.0, 1.0)
    p = np.clip(p_pos, 0.0, 1.0)
    return np.stack([1.0 - e, e * p, e * (1.0 - p)], axis=-1)


def three_class_labels(
    p3: np.ndarray, link_th: float | np.ndarray, sign_th: float | np.ndarray
) -> np.ndarray:
    """Decide classes: no link (0) below ``link_th``, else positive (1) / negative (2).

    Thresholds are single values or one per row of ``p3``.
    """
    p_link = 1.0 - p3[:, 0]
    p_pos = p3[:, 1] / np.maximum(p3[:, 1] + p3[:, 2], 1e-12)
    return np.where(p_link < link_th, 0, np.where(p_pos >= sign_th, 1, 2))


def best_three_class_thresholds(p3: np.ndarray, y: np.ndarray, k: int = 30) -> tuple[float, float]:
    """Grid-search ``(link_th, sign_th)`` maximising 3-class macro-F1 on ``(p3, y)``.

    Ties go to the first pair in (link, sign) order of increasing thresholds.
    """
    if y.size == 0:
        return 0.5, 0.5
    y = np.asarray(y, dtype=np.int64)
    p_link = 1.0 - p3[:, 0]
    p_pos = p3[:, 1] / np.maximum(p3[:, 1] + p3[:, 2], 1e-12)
    sign_cand = _candidates(p_pos, k)
    sign_lab = np.where(p_pos[None, :] >= sign_cand[:, None], 1, 2)
    best, arg = -1.0, (0.5, 0.5)
    for lt in _candidates(p_link, k):
        preds = np.where(p_link[None, :] < lt, 0, sign_lab)
        f = _macro_f1_many(y, preds, 3)
        j = int(np.argmax(f))
        if f[j] > best:
            best, arg = float(f[j]), (float(lt), float(sign_cand[j]))
    return arg


def prequential_thresholds(
    batch: np.ndarray, fit: Callable[[np.ndarray], T], window: int, min_events: int, default: T,
) -> list[T]:
    """Thresholds that follow the stream: one per batch, from revealed events only.

    Before batch ``k`` is scored, ``fit`` gets the indices of the last ``window`` events of
    the batches before ``k`` (their labels are revealed by then); with fewer than
    ``min_events`` such events the batch gets ``default``. Nothing of batch ``k`` or later
    reaches the threshold of batch ``k``.

    Args:
        batch: ``[n]`` non-decreasing batch number of each event, in stream order.
        fit: Chooses a threshold from event indices (e.g. a closure over labels, scores).
        window: Revealed events used.
        min_events: Fewest revealed events to fit on.
        default: Threshold used before that.

    Returns:
        One threshold per distinct batch number, in order.
    """
    starts = np.flatnonzero(np.r_[True, batch[1:] != batch[:-1]]) if batch.size else batch
    out = []
    for s in starts:
        lo = max(0, int(s) - window)
        out.append(fit(np.arange(lo, int(s))) if s - lo >= min_events else default)
    return out


def three_class_macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 over the classes (no link, positive, negative)."""
    if y.size == 0:
        return float("nan")
    return _macro_f1(np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64), 3)

