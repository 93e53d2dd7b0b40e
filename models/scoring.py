"""Metric functions: ranking (MRR), binary scores, thresholds, weights, 3-class.

All functions take numpy arrays and return plain floats, so results are JSON-safe.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

__all__ = [
    "best_sign_threshold",
    "best_three_class_thresholds",
    "compose_three",
    "existence_metrics",
    "mrr",
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


def best_sign_threshold(positive: np.ndarray, p_pos: np.ndarray) -> float:
    """Threshold on ``p_pos`` (predict positive when ``>=``) maximising macro-F1.

    Args:
        positive: ``[n]`` True where the true sign is +1.
        p_pos: ``[n]`` scores for the positive sign.
    """
    if p_pos.size == 0:
        return 0.5
    best, best_t = -1.0, 0.5
    y = positive.astype(np.int64)
    for th in _candidates(p_pos):
        f = _macro_f1(y, (p_pos >= th).astype(np.int64), 2)
        if f > best:
            best, best_t = f, float(th)
    return best_t


def sign_metrics(positive: np.ndarray, p_pos: np.ndarray, threshold: float) -> dict[str, float]:
    """Sign AUC, macro-F1 and negative-class F1 at ``threshold``."""
    pred = p_pos >= threshold
    return {
        "auc": _safe(roc_auc_score, positive, p_pos),
        "macro_f1": float(f1_score(positive, pred, average="macro", zero_division=0)),
        "f1_neg": float(f1_score(~positive, ~pred, zero_division=0)),
        "threshold": float(threshold),
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


def three_class_labels(p3: np.ndarray, link_th: float, sign_th: float) -> np.ndarray:
    """Decide classes: no link (0) below ``link_th``, else positive (1) / negative (2)."""
    p_link = 1.0 - p3[:, 0]
    p_pos = p3[:, 1] / np.maximum(p3[:, 1] + p3[:, 2], 1e-12)
    return np.where(p_link < link_th, 0, np.where(p_pos >= sign_th, 1, 2))


def best_three_class_thresholds(p3: np.ndarray, y: np.ndarray, k: int = 30) -> tuple[float, float]:
    """Grid-search ``(link_th, sign_th)`` maximising 3-class macro-F1 on ``(p3, y)``."""
    if y.size == 0:
        return 0.5, 0.5
    p_link = 1.0 - p3[:, 0]
    p_pos = p3[:, 1] / np.maximum(p3[:, 1] + p3[:, 2], 1e-12)
    best, arg = -1.0, (0.5, 0.5)
    for lt in _candidates(p_link, k):
        for st in _candidates(p_pos, k):
            f = three_class_macro_f1(y, three_class_labels(p3, float(lt), float(st)))
            if f > best:
                best, arg = f, (float(lt), float(st))
    return arg


def three_class_macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 over the classes (no link, positive, negative)."""
    if y.size == 0:
        return float("nan")
    return _macro_f1(np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64), 3)

