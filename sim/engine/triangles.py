"""Signed triangles of an interaction window, counted in compiled code.

The signed graph of a window is undirected: a pair's sign is the sign of its last
interaction in either direction (events in time order), self-loops and zero signs are
left out. Its triangles are counted by their number of negative edges (0, 1, 2, 3); a
triangle is balanced when it has 0 or 2 (Cartwright and Harary, 1956).

One compiled pass (:func:`_census`) does it all in O(n + m) memory for ``n`` node ids and
``m`` events: events are bucketed by their lower endpoint (a stable counting sort, so
the last event of a pair wins), every edge is oriented from the lower- to the
higher-(degree, id) node, and for each node its out-neighbours are marked and the
out-lists of those neighbours scanned, so every triangle is found once, from its
lowest-ranked node, in O(m^1.5) work on any degree distribution. Counts are integers,
so they do not depend on the order of the work. The loop releases the GIL.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["balanced_share", "balanced_triangle_share", "signed_triangle_census",
           "triangle_census"]


@njit(cache=True, nogil=True)
def _census(src: np.ndarray, dst: np.ndarray, negative: np.ndarray, keep: np.ndarray,
            n: int) -> np.ndarray:
    """Triangle counts by negative edges of the window's last-sign graph on ids ``0..n-1``.

    ``keep`` marks the events that count; ``negative`` is 1 for a negative event.
    """
    counts = np.zeros(4, dtype=np.int64)
    # 1. events bucketed by lower endpoint, in time order within a bucket
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(src.shape[0]):
        if keep[i]:
            start[min(src[i], dst[i]) + 1] += 1
    for u in range(n):
        start[u + 1] += start[u]
    fill = start[:-1].copy()
    order = np.empty(start[n], dtype=np.int64)
    for i in range(src.shape[0]):
        if keep[i]:
            lo = min(src[i], dst[i])
            order[fill[lo]] = i
            fill[lo] += 1
    # 2. one edge per pair, with the sign of its last event
    seen = np.full(n, -1, dtype=np.int64)
    slot = np.empty(n, dtype=np.int64)
    e_lo = np.empty(order.shape[0], dtype=np.int64)
    e_hi = np.empty(order.shape[0], dtype=np.int64)
    e_neg = np.empty(order.shape[0], dtype=np.int64)
    m = 0
    for lo in range(n):
        for j in range(start[lo], start[lo + 1]):
            i = order[j]
            hi = max(src[i], dst[i])
            if seen[hi] != lo:
                seen[hi] = lo
                slot[hi] = m
                e_lo[m] = lo
                e_hi[m] = hi
                m += 1
            e_neg[slot[hi]] = negative[i]
    if m < 3:
        return counts
    # 3. orientation by (degree, id) and the out-lists of the oriented edges
    deg = np.zeros(n, dtype=np.int64)
    for e in range(m):
        deg[e_lo[e]] += 1
        deg[e_hi[e]] += 1
    out_start = np.zeros(n + 1, dtype=np.int64)
    for e in range(m):
        a, b = e_lo[e], e_hi[e]
        u = b if deg[b] < deg[a] else a  # e_lo < e_hi breaks degree ties by id
        out_start[u + 1] += 1
    for u in range(n):
        out_start[u + 1] += out_start[u]
    out_fill = out_start[:-1].copy()
    out_v = np.empty(m, dtype=np.int64)
    out_neg = np.empty(m, dtype=np.int64)
    for e in range(m):
        a, b = e_lo[e], e_hi[e]
        u, v = (b, a) if deg[b] < deg[a] else (a, b)
        out_v[out_fill[u]] = v
        out_neg[out_fill[u]] = e_neg[e]
        out_fill[u] += 1
    # 4. triangles a -> b -> c with a -> c, found once from a
    mark = np.full(n, -1, dtype=np.int64)
    mark_neg = np.zeros(n, dtype=np.int64)
    for a in range(n):
        if out_start[a + 1] - out_start[a] < 2:
            continue
        for e in range(out_start[a], out_start[a + 1]):
            mark[out_v[e]] = a
            mark_neg[out_v[e]] = out_neg[e]
        for e in range(out_start[a], out_start[a + 1]):
            b = out_v[e]
            for f in range(out_start[b], out_start[b + 1]):
                c = out_v[f]
                if mark[c] == a:
                    counts[out_neg[e] + out_neg[f] + mark_neg[c]] += 1
    return counts


def triangle_census(src: np.ndarray, dst: np.ndarray, sign: np.ndarray, n: int,
                    events: np.ndarray | None = None) -> np.ndarray:
    """:func:`signed_triangle_census` for node ids known to lie in ``0 .. n - 1``.

    Args:
        src: Source id per interaction.
        dst: Destination id per interaction.
        sign: Sign per interaction (0 leaves the event out).
        n: Bound on the ids.
        events: Optional boolean mask of the interactions that count (all by default).

    Returns:
        ``int64`` counts of length 4: triangles with 0, 1, 2 and 3 negative edges.
    """
    s = np.ascontiguousarray(src, dtype=np.int64)
    d = np.ascontiguousarray(dst, dtype=np.int64)
    sg = np.ascontiguousarray(sign, dtype=np.float64)
    keep = (s != d) & (sg != 0)
    if events is not None:
        keep &= events
    if n > 2 * s.size + 1024:  # few events among many ids: renumber the ids that occur
        s, d, sg = s[keep], d[keep], sg[keep]
        nodes, inv = np.unique(np.concatenate([s, d]), return_inverse=True)
        s, d, n = inv[: s.size], inv[s.size:], nodes.size
        keep = np.ones(s.size, dtype=bool)
    counts: np.ndarray = _census(s, d, (sg < 0).astype(np.int64), keep, int(n))
    return counts


def signed_triangle_census(src: npt.ArrayLike, dst: npt.ArrayLike,
                           signs: npt.ArrayLike) -> np.ndarray:
    """Triangles of the undirected signed graph counted by their number of negative edges.

    Pair signs are as in :func:`balanced_triangle_share` (last interaction in either
    direction, events in time order; self-loops ignored). Ids may be any integers: sparse
    or negative ids are renumbered first.

    Args:
        src: Source id per interaction.
        dst: Destination id per interaction.
        signs: +1 / -1 per interaction.

    Returns:
        ``int64`` counts of length 4: triangles with 0, 1, 2 and 3 negative edges.
    """
    s = np.asarray(src, dtype=np.int64).ravel()
    d = np.asarray(dst, dtype=np.int64).ravel()
    sg = np.sign(np.asarray(signs, dtype=np.float64).ravel())
    if s.size == 0:
        return np.zeros(4, dtype=np.int64)
    lo, hi = int(min(s.min(), d.min())), int(max(s.max(), d.max()))
    if lo < 0 or hi >= 2 * s.size + 1024:  # sparse ids: renumber 0 .. k - 1
        nodes, inv = np.unique(np.concatenate([s, d]), return_inverse=True)
        s, d, hi = inv[: s.size], inv[s.size:], nodes.size - 1
    return triangle_census(s, d, sg, hi + 1)


def balanced_share(census: np.ndarray) -> float:
    """Share of balanced triangles (0 or 2 negative edges) in a census; NaN without any."""
    total = int(census.sum())
    if total == 0:
        return math.nan
    return float(census[0] + census[2]) / total


def balanced_triangle_share(src: npt.ArrayLike, dst: npt.ArrayLike,
                            signs: npt.ArrayLike) -> float:
    """Share of balanced triangles in the window's undirected signed graph.

    The sign of a pair is the sign of its last interaction in either direction (events
    must be given in time order); self-loops are ignored. A triangle is balanced when
    the product of its three signs is positive, i.e. when it has 0 or 2 negative edges
    (counted by :func:`signed_triangle_census`).

    Args:
        src: Source id per interaction.
        dst: Destination id per interaction.
        signs: +1 / -1 per interaction.

    Returns:
        The share in [0, 1]; NaN when the graph has no triangle.
    """
    return balanced_share(signed_triangle_census(src, dst, signs))
