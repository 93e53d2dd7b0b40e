"""The sign of an act, then its weight given the sign.

Sign: a logistic regression on features of the pair as the graph stood before the act
(:meth:`models.twin.graph.GraphState.sign_features`: whether and how the target rated the
actor, the target's received and the actor's given negative shares, ages, balance over
common partners) plus the actors' attributes (kind, same group, opinion distance), fitted
on the history.

Weight given the sign: the actor's own past weights of that sign when it has some (it is
picked from them with probability ``k / (k + 2)`` for ``k`` past weights: people keep
their rating habits), otherwise the history's weights of that sign. So negative acts get
negative acts' magnitudes, which a regression on the signed weight would average away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from models.twin.graph import SIGN_FEATURES, GraphState
from sim.contract import KIND_CODES

__all__ = ["ATTRIBUTE_FEATURES", "SignModel", "WeightSampler", "pair_features"]

ATTRIBUTE_FEATURES = (*(f"actor_{k}" for k in KIND_CODES), "same_group",
                      "troll_out_group", "opinion_distance", "actor_negativity")


def pair_features(g: GraphState, kind: np.ndarray, opinion: np.ndarray, negativity: np.ndarray,
                  t: float, u: int, v: int) -> list[float]:
    """Sign features of ``u -> v`` at ``t``: graph features then attribute features.

    ``opinion`` and ``negativity`` are the nodes' values as last recorded (a simulated
    run's snapshots; zeros for an imported network).
    """
    onehot = [0.0] * len(KIND_CODES)
    onehot[int(kind[u])] = 1.0
    same = float(g.group[u] == g.group[v])
    troll = float(KIND_CODES[int(kind[u])] == "troll")
    return [*g.sign_features(t, u, v), *onehot, same, troll * (1.0 - same),
            abs(float(opinion[u]) - float(opinion[v])), float(negativity[u])]


@dataclass
class SignModel:
    """Standardised logistic regression of ``P(sign = +1)``."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    constant: float = float("nan")

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> SignModel:
        """Fit on features ``x`` and signs ``y`` (+1/-1)."""
        pos = y > 0
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        if pos.all() or not pos.any():
            return cls(np.zeros(x.shape[1]), 0.0, mean, scale, constant=float(pos.mean()))
        reg = LogisticRegression(C=1.0, max_iter=2000)
        reg.fit((x - mean) / scale, pos)
        return cls(reg.coef_[0].copy(), float(reg.intercept_[0]), mean, scale)

    def p_positive(self, x: np.ndarray) -> np.ndarray:
        """``P(sign = +1)`` of feature rows ``x``."""
        if np.isfinite(self.constant):
            return np.full(x.shape[0], self.constant)
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def coefficients(self) -> dict[str, float]:
        """Standardised coefficients by feature name."""
        return dict(zip((*SIGN_FEATURES, *ATTRIBUTE_FEATURES), self.coef.tolist(), strict=True))


class WeightSampler:
    """Weights given the sign: the actor's own habit, else the history's distribution.

    Args:
        pos: Weights of the history's positive acts.
        neg: Weights of its negative acts.
        prior: Pseudo-count of the history's distribution against the actor's own.
    """

    def __init__(self, pos: np.ndarray, neg: np.ndarray, prior: float = 2.0) -> None:
        self.pools = (np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64))
        self.prior = prior

    def sample(self, g: GraphState, u: int, sign: int, u1: float, u2: float) -> float:
        """A weight for ``u``'s act of ``sign`` from two uniforms."""
        side = 0 if sign > 0 else 1
        own = g.out_weights[u][side]
        k = len(own)
        if k and u1 < k / (k + self.prior):
            return float(own[min(int(u2 * k), k - 1)])
        pool = self.pools[side]
        if pool.size == 0:
            pool = self.pools[1 - side]
        return float(pool[min(int(u2 * pool.size), pool.size - 1)])
