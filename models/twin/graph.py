"""The twin's online view of the signed graph: who rated whom, when, with which sign.

One :class:`GraphState` is replayed over the observed history when a twin is fitted and
then keeps following the acts the twin generates, so every feature is computed the same
way in both phases and only from events that already happened. Node ``i`` is *present*
from its arrival (first appearance) on; only present nodes can be chosen as targets.
"""

from __future__ import annotations

import math
from itertools import islice

import numpy as np

__all__ = ["POP_TAU", "RECENT", "GraphState"]

#: Time scale (days) of the decayed in-degree behind preferential attachment.
POP_TAU = 30.0
#: Recent neighbours followed per node for partners of partners (triadic closure).
RECENT = 12
_REBASE = 40.0


class GraphState:
    """Signed adjacency, counts and decayed popularity of up to ``capacity`` nodes.

    Args:
        capacity: Largest node id + 1.
        group: Group per node (length ``capacity``).
    """

    def __init__(self, capacity: int, group: np.ndarray) -> None:
        self.capacity = capacity
        self.group = np.asarray(group, dtype=np.int64)
        self.n_groups = int(self.group.max()) + 1 if capacity else 1
        self.present = np.zeros(capacity, dtype=bool)
        self.arrival = np.full(capacity, np.inf)
        self.out_last: list[dict[int, tuple[float, int, float]]] = [{} for _ in range(capacity)]
        self.in_last: list[dict[int, tuple[float, int, float]]] = [{} for _ in range(capacity)]
        self.recent: list[dict[int, int]] = [{} for _ in range(capacity)]
        self.in_pos = np.zeros(capacity)
        self.in_neg = np.zeros(capacity)
        self.out_pos = np.zeros(capacity)
        self.out_neg = np.zeros(capacity)
        self.out_weights: list[tuple[list[float], list[float]]] = [([], []) for _ in range(capacity)]
        self.pop_w = np.zeros(capacity)
        self.pop_ref = 0.0
        self.group_pop = np.zeros(self.n_groups)
        self.group_count = np.zeros(self.n_groups)
        self.arrivals: list[tuple[float, int]] = []
        self.n_events = 0
        self.n_neg = 0

    # -- updates ---------------------------------------------------------------------
    def arrive(self, node: int, t: float) -> None:
        """Make ``node`` present from time ``t`` (no-op when it already is)."""
        if self.present[node]:
            return
        self.present[node] = True
        self.arrival[node] = t
        self.group_count[self.group[node]] += 1.0
        self.arrivals.append((t, node))

    def _rebase(self, t: float) -> None:
        if (t - self.pop_ref) / POP_TAU > _REBASE:
            factor = math.exp(-(t - self.pop_ref) / POP_TAU)
            self.pop_w *= factor
            self.group_pop *= factor
            self.pop_ref = t

    def observe(self, t: float, u: int, v: int, sign: int, weight: float) -> None:
        """Record the delivered act ``u -> v`` (both become present)."""
        self.arrive(u, t)
        self.arrive(v, t)
        self.out_last[u][v] = (t, sign, weight)
        self.in_last[v][u] = (t, sign, weight)
        for a, b in ((u, v), (v, u)):
            rec = self.recent[a]
            rec.pop(b, None)
            rec[b] = sign
            if len(rec) > 4 * RECENT:
                for old in list(islice(rec, len(rec) - RECENT)):
                    del rec[old]
        if sign > 0:
            self.in_pos[v] += 1
            self.out_pos[u] += 1
            self.out_weights[u][0].append(weight)
        else:
            self.in_neg[v] += 1
            self.out_neg[u] += 1
            self.out_weights[u][1].append(weight)
            self.n_neg += 1
        self.n_events += 1
        self._rebase(t)
        inc = math.exp((t - self.pop_ref) / POP_TAU)
        self.pop_w[v] += inc
        self.group_pop[self.group[v]] += inc

    # -- features --------------------------------------------------------------------
    def neg_prior(self) -> float:
        """Negative share of all acts so far (0.15 before any)."""
        return (self.n_neg + 0.15) / (self.n_events + 1.0)

    def recent_neighbors(self, a: int) -> list[int]:
        """The ``RECENT`` most recent partners of ``a`` (either direction), newest first."""
        return list(islice(reversed(self.recent[a]), RECENT))

    def tie_sign(self, a: int, b: int) -> int:
        """Last sign between ``a`` and ``b`` in either direction (0: none)."""
        return self.recent[a].get(b, 0)

    def two_hop(self, u: int) -> dict[int, tuple[int, int]]:
        """Partners of ``u``'s recent partners: ``{node: (paths, sum of sign products)}``."""
        out: dict[int, tuple[int, int]] = {}
        for x in self.recent_neighbors(u):
            s_ux = self.recent[u][x]
            for z in self.recent_neighbors(x):
                if z == u:
                    continue
                paths, bal = out.get(z, (0, 0))
                out[z] = (paths + 1, bal + s_ux * self.recent[x][z])
        return out

    def sign_features(self, t: float, u: int, v: int) -> list[float]:
        """Features of the sign of ``u -> v`` at ``t`` (before the act)."""
        prior = self.neg_prior()
        back = self.out_last[v].get(u)
        n_in = self.in_pos[v] + self.in_neg[v]
        n_out = self.out_pos[u] + self.out_neg[u]
        paths, bal = 0, 0
        for x in self.recent_neighbors(u):
            s_xv = self.recent[x].get(v, 0)
            if s_xv:
                paths += 1
                bal += self.recent[u][x] * s_xv
        age_v = t - self.arrival[v] if self.present[v] else 0.0
        age_u = t - self.arrival[u] if self.present[u] else 0.0
        return [
            1.0 if back is not None and back[1] > 0 else 0.0,
            1.0 if back is not None and back[1] < 0 else 0.0,
            (self.in_neg[v] + 2.0 * prior) / (n_in + 2.0),
            math.log1p(n_in),
            (self.out_neg[u] + 2.0 * prior) / (n_out + 2.0),
            math.log1p(n_out),
            math.log1p(age_v),
            math.log1p(age_u),
            bal / (1.0 + paths),
            math.log1p(paths),
        ]


SIGN_FEATURES = (
    "rated_back_pos", "rated_back_neg", "target_neg_share", "target_log_in", "actor_neg_share",
    "actor_log_out", "target_log_age", "actor_log_age", "balance", "log_common",
)
