r"""How opinions move, learned from a simulated run's opinion snapshots.

Between two snapshots an agent's opinion moves by the acts it took part in: towards the
other side after a positive act, away after a negative one. With :math:`d` the other's
opinion minus the agent's (at the earlier snapshot) and :math:`w` the act's weight, the
change is regressed on :math:`X = \sum_{+} s\,d` and :math:`Y = -\sum_{-} s\,d` with
:math:`s = w` or :math:`s = 1` (weight-scaled or not; the better fit is kept), without
intercept and with non-negative coefficients: the attraction and repulsion steps. The
twin then lets the engine move opinions with these steps after each delivered act, and
its sign model reads the opinions as they evolve. Runs without snapshots (imported
networks) get zero steps: their opinions stay as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls

from models.twin.observed import TwinSplit
from sim.contract import KIND_CODES

__all__ = ["fit_opinion_steps"]

_FIXED = (KIND_CODES.index("troll"), KIND_CODES.index("counter_speaker"))


def fit_opinion_steps(split: TwinSplit) -> dict[str, Any]:
    """Attraction and repulsion steps (and weight scaling) from the history's snapshots."""
    obs = split.observed
    ts, node, op, _ = obs.snapshots
    keep = ts <= split.t_split
    times = np.unique(ts[keep])
    none = {"attraction": 0.0, "repulsion": 0.0, "weight_scaled": True, "intervals": 0}
    if times.shape[0] < 2:
        return none
    h = split.history
    n = obs.n_nodes
    movable = ~np.isin(obs.kind, _FIXED)
    rows: dict[bool, list[np.ndarray]] = {True: [], False: []}
    target: list[np.ndarray] = []
    for t0, t1 in zip(times[:-1], times[1:], strict=True):
        before, _ = obs.attributes_at(t0)
        after, _ = obs.attributes_at(t1)
        seen = np.zeros(n, dtype=bool)
        seen[node[(ts == t1)]] = True
        sel = (h.t > t0) & (h.t <= t1)
        src, dst, sign, w = h.src[sel], h.dst[sel], h.sign[sel], h.weight[sel]
        d = before[dst] - before[src]
        for scaled in (True, False):
            s = w if scaled else np.ones_like(w)
            pos, neg = sign > 0, sign < 0
            x = np.bincount(src[pos], weights=(s * d)[pos], minlength=n)
            x -= np.bincount(dst[pos], weights=(s * d)[pos], minlength=n)
            y = -np.bincount(src[neg], weights=(s * d)[neg], minlength=n)
            y += np.bincount(dst[neg], weights=(s * d)[neg], minlength=n)
            rows[scaled].append(np.column_stack([x, y])[seen & movable])
        target.append((after - before)[seen & movable])
    b = np.concatenate(target)
    if b.shape[0] < 2:
        return none
    best: dict[str, Any] = none
    best_res = np.inf
    for scaled in (True, False):
        a = np.vstack(rows[scaled])
        coef, res = nnls(a, b)
        if res < best_res:
            best_res = float(res)
            best = {"attraction": float(coef[0]), "repulsion": float(coef[1]),
                    "weight_scaled": scaled, "intervals": int(times.shape[0] - 1),
                    "residual": best_res, "variance": float(np.sum(b * b))}
    return best
