r"""Answers: a rating received makes its target rate the rater back, after a delay.

In rating networks most pairs are rated both ways (a trade is rated by both sides). An
*answer* is an act ``b -> a`` when ``a`` rated ``b`` before and ``b`` had not rated
``a``. The twin models answers as their own process, beside the initiations that the
activity and choice models describe: each unanswered rating is answered with
probability :math:`\rho` (one for positive, one for negative ratings), after a delay
drawn from a mixture of two exponentials.

Fit (on the history): the delays of the answers seen are fitted by EM for the mixture;
:math:`\rho` is the share of ratings answered, counting only ratings received long
enough before the split (the 90th percentile of the delays) that their answer had time
to come.

Generation: a pending rating adds :math:`\rho' f(d)` to its target's intensity, with
``f`` the delay density, ``d`` the time since the rating and
:math:`\rho' = -\ln(1 - \rho)`, and stops when the target rates the rater (for any
reason): the rating is then answered with probability exactly :math:`\rho`. When the
target acts, the act is an answer with probability (answer intensity) / (total
intensity), aimed at a pending rater chosen in proportion to its current term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AnswerModel", "fit_answers"]


@dataclass
class AnswerModel:
    """Probability and delay distribution of answers.

    Attributes:
        prob: Probability that an unanswered positive rating is answered.
        prob_negative: The same for a negative rating (people rarely answer scammers' victims'
            complaints, and those rated negatively often leave).
        weights: Mixture weights of the two delay scales.
        taus: Mean delays (days) of the two scales.
        n_answers: Answers seen in the history.
    """

    prob: float
    prob_negative: float
    weights: tuple[float, float]
    taus: tuple[float, float]
    n_answers: int

    def intensity_scale(self, sign: int) -> float:
        r""":math:`\rho' = -\ln(1-\rho)` for a rating of ``sign`` (answered with probability rho)."""
        return -math.log(max(1.0 - (self.prob if sign > 0 else self.prob_negative), 1e-9))


def _two_exponentials(d: np.ndarray, iterations: int = 200) -> tuple[tuple[float, float],
                                                                     tuple[float, float]]:
    """EM for a mixture of two exponential distributions of ``d`` (days, > 0)."""
    d = np.maximum(d, 1e-6)
    tau = np.array([max(float(np.quantile(d, 0.25)), 1e-3), max(float(np.quantile(d, 0.9)), 1e-2)])
    w = np.array([0.5, 0.5])
    for _ in range(iterations):
        dens = w[None, :] * np.exp(-d[:, None] / tau[None, :]) / tau[None, :]
        resp = dens / np.maximum(dens.sum(axis=1, keepdims=True), 1e-300)
        mass = resp.sum(axis=0)
        w = mass / mass.sum()
        tau = np.maximum((resp * d[:, None]).sum(axis=0) / np.maximum(mass, 1e-12), 1e-6)
    order = np.argsort(tau)
    return (float(w[order[0]]), float(w[order[1]])), (float(tau[order[0]]), float(tau[order[1]]))


def fit_answers(received_at: np.ndarray, sign: np.ndarray, answered_after: np.ndarray,
                t_end: float) -> AnswerModel:
    """Fit from every answerable rating of the history.

    Args:
        received_at: Time of each rating that its target had not rated back yet.
        sign: Its sign.
        answered_after: Delay until the target rated the rater back (NaN: not in the history).
        t_end: End of the history.
    """
    delays = answered_after[np.isfinite(answered_after)]
    if delays.shape[0] < 2:
        return AnswerModel(prob=0.0, prob_negative=0.0, weights=(1.0, 0.0), taus=(1.0, 1.0),
                           n_answers=0)
    weights, taus = _two_exponentials(delays)
    cutoff = t_end - float(np.quantile(delays, 0.9))
    old = received_at <= cutoff

    def share(mask: np.ndarray) -> float:
        sel = old & mask
        return min(float(np.isfinite(answered_after[sel]).mean()), 0.999) if sel.any() else 0.0

    return AnswerModel(prob=share(sign > 0), prob_negative=share(sign < 0), weights=weights,
                       taus=taus, n_answers=int(delays.shape[0]))
