"""Compiled parts of a metric tick, bit for bit the values of the numpy functions.

:func:`sim.engine.metrics.compute_window_metrics` runs at every metric tick of a run; its
numpy version spent most of a tick in many small array passes. Here the passes over the
window's events and the agents' opinions run in numba (GIL released), computing exactly
what numpy computes:

* a sum is numpy's pairwise summation (:func:`pairwise_sum`: blocks of eight partial
  sums below 128 values, halves at multiples of eight above), so a mean or a variance is
  the same float as ``np.mean``/``np.var`` on the same contiguous float64 array;
* per-agent and per-group totals add values in input order, as ``np.bincount`` does;
* counts are integers.

What numba would compute differently is left to numpy: ``d ** 3`` and ``d ** 4`` of the
bimodality coefficient (numpy's ``power`` loop is not the C library's ``pow``) and the
90th percentile.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["group_sums", "interaction_pass", "pairwise_sum", "pairwise_sum_of_squares"]

_BLOCK = 128  # numpy's PW_BLOCKSIZE


@njit(cache=True, nogil=True)
def _block(a: np.ndarray, lo: int, n: int) -> float:
    """Sum at most 128 values as numpy does: eight partial sums, then the rest in order."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    end = n - n % 8
    while i < end:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def _pairwise(a: np.ndarray, lo: int, n: int) -> float:
    """Pairwise sum of ``a[lo:lo + n]`` as numpy does it: halves (multiples of 8), then blocks.

    The recursion ``sum(left half) + sum(right half)`` runs on explicit stacks (numba
    cannot cache a recursive function); the additions happen in the same order.
    """
    frames = np.empty((256, 3), dtype=np.int64)  # (start, length, halves done)
    values = np.empty(256, dtype=np.float64)
    top, nv = 0, 0
    frames[0, 0], frames[0, 1], frames[0, 2] = lo, n, 0
    top = 1
    while top > 0:
        top -= 1
        start, length, stage = frames[top, 0], frames[top, 1], frames[top, 2]
        if length <= _BLOCK:
            values[nv] = _block(a, start, length)
            nv += 1
        elif stage == 0:
            half = length // 2
            half -= half % 8
            frames[top, 2] = 1
            frames[top + 1, 0], frames[top + 1, 1], frames[top + 1, 2] = (
                start + half, length - half, 0)
            frames[top + 2, 0], frames[top + 2, 1], frames[top + 2, 2] = start, half, 0
            top += 3
        else:
            nv -= 1
            values[nv - 1] = values[nv - 1] + values[nv]
    return values[0]


@njit(cache=True, nogil=True)
def pairwise_sum(a: np.ndarray) -> float:
    """``np.add.reduce`` of a contiguous float64 array, with numpy's summation order."""
    return _pairwise(a, 0, a.shape[0])


@njit(cache=True, nogil=True)
def pairwise_sum_of_squares(x: np.ndarray, center: float) -> tuple[float, np.ndarray]:
    """``sum((x - center) ** 2)`` as numpy sums it, and the deviations ``x - center``."""
    d = np.empty_like(x)
    sq = np.empty_like(x)
    for i in range(x.shape[0]):
        d[i] = x[i] - center
        sq[i] = d[i] * d[i]
    return _pairwise(sq, 0, sq.shape[0]), d


@njit(cache=True, nogil=True)
def group_sums(x: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group sums of ``x`` (added in input order) and member counts."""
    sums = np.zeros(n_groups, dtype=np.float64)
    counts = np.zeros(n_groups, dtype=np.int64)
    for i in range(x.shape[0]):
        sums[group[i]] += x[i]
        counts[group[i]] += 1
    return sums, counts


@njit(cache=True, nogil=True)
def interaction_pass(src: np.ndarray, dst: np.ndarray, sign: np.ndarray, weight: np.ndarray,
                     delivered: np.ndarray, group: np.ndarray, n_agents: int
                     ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """One pass over a window's events (ids in ``0 .. n_agents - 1``).

    Returns:
        Delivered events, delivered negative events, each agent's received negative
        ``|weight|`` (added in event order), and the signs of the delivered events within
        a group and between groups, in event order.
    """
    exposure = np.zeros(n_agents, dtype=np.float64)
    same = np.empty(src.shape[0], dtype=np.float64)
    other = np.empty(src.shape[0], dtype=np.float64)
    n_delivered = 0
    n_negative = 0
    n_same = 0
    n_other = 0
    for i in range(src.shape[0]):
        if not delivered[i]:
            continue
        n_delivered += 1
        if sign[i] < 0:
            n_negative += 1
            exposure[dst[i]] += abs(weight[i])
        if group[src[i]] == group[dst[i]]:
            same[n_same] = sign[i]
            n_same += 1
        else:
            other[n_other] = sign[i]
            n_other += 1
    return n_delivered, n_negative, exposure, same[:n_same], other[:n_other]
