r"""Who acts, when, and who joins: a self- and cross-exciting point process per node.

Node ``i`` acts with intensity

.. math::
    \lambda_i(t) = \mu + \sum_{m} \big( a_m\,O_{i,m}(t) + b_m\,R_{i,m}(t) + c_m\,A_{i,m}(t) \big),

where :math:`O_{i,m}`, :math:`R_{i,m}` and :math:`A_{i,m}` sum the kernel
:math:`\kappa_m(x) = e^{-x/\tau_m}/\tau_m` over the node's own past acts, the acts it
received and its arrival; ``m`` runs over a short (hours to days) and a long (weeks to
months) time scale. Each kernel integrates to one, so :math:`a_m` is the expected number
of further acts one act triggers, and so on (a multivariate Hawkes process with shared
coefficients: the node's own history gives its rate and burstiness; being rated makes a
node answer; newcomers are busy at first). :math:`\mu` applies to present nodes.

Fit: maximum likelihood on the history (the log-likelihood is concave in the
coefficients for fixed time scales; L-BFGS-B with non-negativity bounds), the time scales
chosen from a small grid by likelihood. A node whose first appearance is its own act
"arrives" with that act; those acts are explained by the arrival process (they are left
out of the likelihood), and a newcomer acts at once with probability ``q`` (the share of
arrivals that appeared as actors), through a kernel of half an hour.

Arrivals: a Poisson process whose rate is the arrival count of the last ``W`` days of the
history divided by ``W``; ``W`` is chosen on a validation window (the last part of the
history, predicted from what came before it).

In a generated run the intensity is refreshed every ``step`` days and held at its
average over the coming step, so that the expected number of acts in a step is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from models.twin.answers import AnswerModel
from models.twin.observed import Stream

__all__ = ["ActivityModel", "ActivityTracker", "answer_share", "fit_activity"]

_SHORT = (0.1, 0.5)
_LONG = (20.0, 90.0)
_FIT_SPANS = (math.inf, 365.0, 180.0)
_ARRIVAL_TAU = 0.02
_WINDOWS = (14.0, 30.0, 60.0, 120.0, 240.0, 480.0)
#: Days added to a node's age in its long-run rate (acts so far / (age + offset)).
RATE_OFFSET = 30.0
#: Features: background, own acts (2 scales), positive and negative acts received (2 each),
#: arrival (2), long-run rate, own acts on the slow scale.
N_FEATURES = 11
#: The slow time scale of own acts (days): habits that last for years.
SLOW = 365.0


@dataclass
class ActivityModel:
    """Fitted coefficients of the activity and arrival processes.

    Attributes:
        taus: The two kernel time scales (days).
        mu: Background rate of a present node (acts/day), when it is shared.
        base: Background rate of each known node (zeros when the background is shared).
        own: Coefficients ``a_m`` of own acts.
        received: Coefficients ``b_m`` of received positive acts, then negative ones.
        arrival: Coefficients ``c_m`` of the arrival.
        rate: Coefficient of the node's long-run rate.
        slow: Coefficient of own acts on the slow scale (``SLOW`` days).
        act_at_arrival: Probability ``q`` that a newcomer acts at once.
        arrival_rate: Newcomers per day.
        window: Days of history behind ``arrival_rate``.
        log_likelihood: Per-act log-likelihood of the fit.
        info: Fit diagnostics (grid, validation of the arrival window).
    """

    taus: tuple[float, float]
    mu: float
    base: np.ndarray
    own: tuple[float, float]
    received: tuple[float, float, float, float]
    arrival: tuple[float, float]
    rate: float
    slow: float
    act_at_arrival: float
    arrival_rate: float
    window: float
    log_likelihood: float
    info: dict[str, Any] = field(default_factory=dict)


def _first_appearance(stream: Stream, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrival time of each node and whether it arrived with its own act."""
    arrival = np.full(n, np.inf)
    as_actor = np.zeros(n, dtype=bool)
    both = np.concatenate([stream.src, stream.dst])
    times = np.concatenate([stream.t, stream.t])
    order = np.lexsort((np.r_[np.zeros(len(stream)), np.ones(len(stream))], times))
    nodes = both[order]
    _, first = np.unique(nodes, return_index=True)
    firsts = order[first]
    arrival[both[firsts]] = times[firsts]
    as_actor[both[firsts]] = firsts < len(stream)
    return arrival, as_actor


def _kernel_sums(stream: Stream, arrival: np.ndarray, taus: tuple[float, float], t_end: float,
                 t_start: float = -math.inf) -> tuple[np.ndarray, np.ndarray]:
    """Per act: the actor's features just before it (``N_FEATURES``); their integrals.

    The integrals run over ``[t_start, t_end]`` (each node from its arrival on); the
    features of acts before ``t_start`` are computed too (callers drop those rows).
    """
    n = arrival.shape[0]
    x = np.zeros((len(stream), N_FEATURES))
    x[:, 0] = 1.0
    comp = np.zeros(N_FEATURES)
    fin = arrival[np.isfinite(arrival) & (arrival < t_end)]
    comp[0] = float(np.sum(t_end - np.maximum(fin, t_start)))

    def tails(times: np.ndarray, tau: float) -> np.ndarray:
        """Integral over the window of the kernels of events at ``times`` (before ``t_end``)."""
        times = times[times < t_end]
        return (np.exp(-(np.maximum(times, t_start) - times) / tau)
                - np.exp(-(t_end - times) / tau))

    exp = math.exp
    for m, tau in enumerate(taus):
        own = [0.0] * n
        last_o = [0.0] * n
        rec = [[0.0] * n, [0.0] * n]
        last_r = [[0.0] * n, [0.0] * n]
        xo = [0.0] * len(stream)
        xr = [[0.0] * len(stream), [0.0] * len(stream)]
        for e, (t, u, v, sg) in enumerate(zip(stream.t.tolist(), stream.src.tolist(),
                                              stream.dst.tolist(), stream.sign.tolist(),
                                              strict=True)):
            xo[e] = o = own[u] * exp((last_o[u] - t) / tau)
            own[u] = o + 1.0 / tau
            last_o[u] = t
            for side in (0, 1):
                xr[side][e] = rec[side][u] * exp((last_r[side][u] - t) / tau)
            side = 0 if sg > 0 else 1
            rec[side][v] = rec[side][v] * exp((last_r[side][v] - t) / tau) + 1.0 / tau
            last_r[side][v] = t
        x[:, 1 + m] = xo
        x[:, 3 + m] = xr[0]
        x[:, 5 + m] = xr[1]
        x[:, 7 + m] = np.exp(-(stream.t - arrival[stream.src]) / tau) / tau
        tail = tails(stream.t, tau)
        comp[1 + m] = float(tail.sum())
        before = stream.sign[stream.t < t_end]
        comp[3 + m] = float(tail[before > 0].sum())
        comp[5 + m] = float(tail[before < 0].sum())
        comp[7 + m] = float(tails(fin, tau).sum())
    # Own acts on the slow scale.
    own = [0.0] * n
    last_o = [0.0] * n
    xo = [0.0] * len(stream)
    for e, (t, u) in enumerate(zip(stream.t.tolist(), stream.src.tolist(), strict=True)):
        xo[e] = o = own[u] * exp((last_o[u] - t) / SLOW)
        own[u] = o + 1.0 / SLOW
        last_o[u] = t
    x[:, 10] = xo
    comp[10] = float(tails(stream.t, SLOW).sum())
    # The node's long-run rate: own acts so far / (age + RATE_OFFSET).
    order = np.argsort(stream.src, kind="stable")
    srt = stream.src[order]
    starts = np.searchsorted(srt, srt, side="left")
    count = np.empty(len(stream))
    count[order] = np.arange(len(stream)) - starts
    age = stream.t - arrival[stream.src] + RATE_OFFSET
    x[:, 9] = count / age
    early = stream.t < t_end
    born = arrival[stream.src[early]]
    start_age = np.maximum(stream.t[early], t_start) - born + RATE_OFFSET
    comp[9] = float(np.sum(np.log((t_end - born + RATE_OFFSET) / start_age)))
    return x, comp


def _max_likelihood(x: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, float]:
    """Maximise ``sum log(x @ theta) - comp @ theta`` over ``theta >= 0``."""

    def negll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        lam = np.maximum(x @ theta, 1e-300)
        return float(comp @ theta - np.log(lam).sum()), comp - (x / lam[:, None]).sum(axis=0)

    # A feature that never fires (no negative act received, say) has no data: it stays 0.
    free = (comp > 0) & (x.max(axis=0) > 0)
    start = np.where(free, 0.1, 0.0)
    start[0] = max(x.shape[0] / max(comp[0], 1e-9) * 0.1, 1e-6)
    res = minimize(negll, start, jac=True, method="L-BFGS-B",
                   bounds=[(1e-9, None) if f else (0.0, 0.0) for f in free])
    return res.x, -float(res.fun) / max(x.shape[0], 1)


def _exposure(arrival: np.ndarray, start: float, end: float) -> np.ndarray:
    """Days each node was present within ``[start, end]``."""
    return np.clip(end - np.maximum(arrival, start), 0.0, None)


def _per_node(x: np.ndarray, src: np.ndarray, exposure: np.ndarray, comp: np.ndarray,
              theta: np.ndarray, iterations: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Per-node background rates and shared coefficients by minorise-maximise iterations.

    Intensity of act ``e``: ``base[src_e] + x_e[1:] @ theta[1:]``. Each iteration splits
    every act between its sources in proportion to their share of the intensity and sets
    each coefficient to its share of acts over its integral (the EM algorithm of a
    branching process; the likelihood never decreases).
    """
    theta = theta.copy()
    theta[0] = 0.0
    n = exposure.shape[0]
    counts = np.bincount(src, minlength=n).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.where(exposure > 0, 0.5 * counts / exposure, 0.0)
    live = comp[1:] > 0
    for _ in range(iterations):
        lam = np.maximum(base[src] + x[:, 1:] @ theta[1:], 1e-300)
        share = base[src] / lam
        with np.errstate(divide="ignore", invalid="ignore"):
            base = np.where(exposure > 0, np.bincount(src, weights=share, minlength=n) / exposure,
                            0.0)
        resp = (x[:, 1:] * theta[1:]) / lam[:, None]
        theta[1:] = np.where(live, resp.sum(axis=0) / np.where(live, comp[1:], 1.0), 0.0)
    return base, theta


def _arrival_window(arrival: np.ndarray, t_end: float, horizon: float) -> tuple[float, dict[str, Any]]:
    """Choose ``W`` by predicting the last part of the history from what preceded it."""
    fin = np.sort(arrival[np.isfinite(arrival)])
    t0 = float(fin[0]) if fin.size else 0.0
    val_len = min(horizon, 0.3 * (t_end - t0))
    t_val = t_end - val_len
    actual = float(np.count_nonzero(fin >= t_val))
    errors = {}
    for w in _WINDOWS:
        lo = max(t0, t_val - w)
        if t_val - lo <= 0:
            continue
        rate = np.count_nonzero((fin >= lo) & (fin < t_val)) / (t_val - lo)
        errors[w] = abs(rate * val_len - actual) / max(actual, 1.0)
    best = min(errors, key=lambda w: (errors[w], w)) if errors else t_end - t0
    return float(best), {"validation_days": val_len, "validation_arrivals": actual,
                         "relative_error_by_window": {str(k): v for k, v in errors.items()}}


def _log_lik(theta: np.ndarray, x: np.ndarray, comp: np.ndarray) -> float:
    """Log-likelihood per act of ``x`` (rows) with integrals ``comp``."""
    return float((np.log(np.maximum(x @ theta, 1e-300)).sum() - comp @ theta) / max(len(x), 1))


def fit_activity(history: Stream, n_known: int, t_end: float, horizon: float,
                 explained: np.ndarray | None = None) -> ActivityModel:
    """Fit the activity and arrival processes on ``history`` (nodes ``< n_known``, up to ``t_end``).

    The kernel time scales and the length of the recent past the coefficients are fitted
    on (real networks change: the whole history, or its last 1 or 2 years) are chosen by
    the predictive log-likelihood of a validation window (the history's last part, of
    the length to generate but at most 30% of the history), with coefficients fitted on
    what precedes it; then the chosen setting is refitted up to ``t_end``. Acts marked
    ``explained`` (answers, modelled by :mod:`models.twin.answers`) still excite their
    actor and target but are left out of the likelihood.
    """
    arrival, as_actor = _first_appearance(history, n_known)
    # The arrival act of a node that appeared as an actor is its first act.
    actors, first_idx = np.unique(history.src, return_index=True)
    first_act = np.zeros(len(history), dtype=bool)
    first_act[first_idx[as_actor[actors]]] = True
    if explained is not None:  # acts another process accounts for (answers)
        first_act |= explained
    t0 = float(history.t[0])
    t_val = t_end - min(horizon, 0.3 * (t_end - t0))
    grid: dict[str, float] = {}
    best: tuple[float, tuple[float, float, float, bool]] | None = None
    val = ~first_act & (history.t >= t_val)
    for ts in _SHORT:
        for tl in _LONG:
            xv, cv = _kernel_sums(history, arrival, (ts, tl), t_end, t_val)
            for span in _FIT_SPANS:
                start = t_val - span
                x, comp = _kernel_sums(history, arrival, (ts, tl), t_val, start)
                rows = ~first_act & (history.t >= start) & (history.t < t_val)
                theta, _ = _max_likelihood(x[rows], comp)
                ll = _log_lik(theta, xv[val], cv)
                grid[f"short {ts:g}, long {tl:g}, last {span:g} days, shared background"] = ll
                if best is None or ll > best[0]:
                    best = (ll, (ts, tl, span, False))
                base, th = _per_node(x[rows], history.src[rows],
                                     _exposure(arrival, start, t_val), comp, theta)
                lam = np.maximum(base[history.src[val]] + xv[val, 1:] @ th[1:], 1e-300)
                integral = base @ _exposure(arrival, t_val, t_end) + cv[1:] @ th[1:]
                ll = float((np.log(lam).sum() - integral) / max(int(val.sum()), 1))
                grid[f"short {ts:g}, long {tl:g}, last {span:g} days, per-node background"] = ll
                if ll > best[0]:
                    best = (ll, (ts, tl, span, True))
    assert best is not None
    val_ll, (ts, tl, span, per_node) = best
    x, comp = _kernel_sums(history, arrival, (ts, tl), t_end, t_end - span)
    rows = ~first_act & (history.t >= t_end - span)
    theta, ll = _max_likelihood(x[rows], comp)
    base = np.zeros(n_known)
    if per_node:
        base, theta = _per_node(x[rows], history.src[rows],
                                _exposure(arrival, t_end - span, t_end), comp, theta)
        lam = np.maximum(base[history.src[rows]] + x[rows, 1:] @ theta[1:], 1e-300)
        integral = base @ _exposure(arrival, t_end - span, t_end) + comp[1:] @ theta[1:]
        ll = float((np.log(lam).sum() - integral) / max(int(rows.sum()), 1))
    window, info = _arrival_window(arrival, t_end, horizon)
    fin = arrival[np.isfinite(arrival)]
    lo = max(float(fin.min()), t_end - window)
    rate = float(np.count_nonzero(fin >= lo)) / max(t_end - lo, 1e-9)
    info.update(validation_log_lik=grid, fit_span_days=span, validation_best=val_ll,
                per_node_background=per_node)
    return ActivityModel(
        taus=(ts, tl), mu=float(theta[0]), base=base, own=(float(theta[1]), float(theta[2])),
        received=(float(theta[3]), float(theta[4]), float(theta[5]), float(theta[6])),
        arrival=(float(theta[7]), float(theta[8])), rate=float(theta[9]), slow=float(theta[10]),
        act_at_arrival=float(as_actor[np.isfinite(arrival)].mean()), arrival_rate=rate,
        window=window, log_likelihood=ll, info=info,
    )


def answer_share(model: ActivityModel, history: Stream, n_known: int, t_end: float) -> np.ndarray:
    """Per act of the history: the share of the actor's intensity due to ratings received."""
    arrival, _ = _first_appearance(history, n_known)
    x, _ = _kernel_sums(history, arrival, model.taus, t_end)
    theta = np.array([model.mu, *model.own, *model.received, *model.arrival, model.rate,
                      model.slow])
    lam = model.base[history.src] + x @ theta
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (x[:, 3:7] @ theta[3:7]) / lam
    return np.nan_to_num(share)


class ActivityTracker:
    """Kernel sums of every node during generation, and the rates they imply.

    Args:
        model: The fitted activity model.
        capacity: Number of node slots.
    """

    def __init__(self, model: ActivityModel, capacity: int) -> None:
        self.m = model
        self.taus = np.array([*model.taus, _ARRIVAL_TAU, SLOW])
        self.coef_own = np.array([*model.own, 0.0, model.slow])
        self.coef_pos = np.array([*model.received[:2], 0.0, 0.0])
        self.coef_neg = np.array([*model.received[2:], 0.0, 0.0])
        self.coef_arr = np.array([*model.arrival, model.act_at_arrival, 0.0])
        self.own = np.zeros((4, capacity))
        self.pos = np.zeros((4, capacity))
        self.neg = np.zeros((4, capacity))
        self.arr = np.zeros((4, capacity))
        self.count = np.zeros(capacity)
        self.arrival = np.full(capacity, np.inf)
        self.ref = 0.0
        self.ans_taus = np.ones(2)
        self.ans_coef = np.zeros(2)
        self.ans = np.zeros((2, capacity))
        self.answers: AnswerModel | None = None

    def use_answers(self, answers: AnswerModel) -> None:
        """Add the answer process (pending ratings raise their target's intensity)."""
        self.answers = answers
        self.ans_taus = np.array(answers.taus)
        self.ans_coef = np.array(answers.weights)

    def _answer_kernel(self, s: float, sign: int) -> np.ndarray:
        scale = self.answers.intensity_scale(sign) if self.answers is not None else 0.0
        return scale * np.exp(-(self.ref - s) / self.ans_taus) / self.ans_taus

    def pending(self, node: int, s: float, sign: int) -> None:
        """``node`` received at ``s`` a rating of ``sign`` it has not answered."""
        self.ans[:, node] += self._answer_kernel(s, sign)

    def answered(self, node: int, s: float, sign: int) -> None:
        """``node`` answered (or otherwise rated back) the rating it received at ``s``."""
        self.ans[:, node] = np.maximum(self.ans[:, node] - self._answer_kernel(s, sign), 0.0)

    def answer_term(self, s: float, sign: int, t: float) -> float:
        """Current answer intensity that a rating of ``sign`` received at ``s`` adds."""
        scale = self.answers.intensity_scale(sign) if self.answers is not None else 0.0
        return scale * float(self.ans_coef @ (np.exp(-(t - s) / self.ans_taus) / self.ans_taus))

    def _parts(self, node: int) -> tuple[float, float, float]:
        """``node``'s intensity now: (ratings received, answers pending, everything else)."""
        received = float(self.coef_pos @ self.pos[:, node] + self.coef_neg @ self.neg[:, node])
        answer = float(self.ans_coef @ self.ans[:, node])
        rest = float(self.coef_own @ self.own[:, node] + self.coef_arr @ self.arr[:, node])
        with np.errstate(invalid="ignore"):
            long_run = self.count[node] / (self.ref - self.arrival[node] + RATE_OFFSET)
        base = self.m.base[node] if node < self.m.base.shape[0] else 0.0
        rest += self.m.mu + base + self.m.rate * (long_run if np.isfinite(long_run) else 0.0)
        return received, answer, rest

    def answer_and_total(self, node: int) -> tuple[float, float]:
        """``node``'s answer intensity and total intensity now."""
        received, answer, rest = self._parts(node)
        return answer, answer + received + rest

    def advance(self, t: float) -> None:
        """Decay every sum to time ``t`` (the new reference)."""
        if t > self.ref:
            f = np.exp(-(t - self.ref) / self.taus)[:, None]
            for sums in (self.own, self.pos, self.neg, self.arr):
                sums *= f
            self.ans *= np.exp(-(t - self.ref) / self.ans_taus)[:, None]
            self.ref = t

    def _kick(self, sums: np.ndarray, node: int, t: float) -> None:
        """Add an event at ``t >= ref``: stored at the reference time, it is scaled up."""
        sums[:, node] += np.exp((t - self.ref) / self.taus) / self.taus

    def replay(self, stream: Stream, arrival: np.ndarray) -> None:
        """Load the sums implied by an observed history (arrival times per node)."""
        t_now = float(stream.t[-1]) if len(stream) else 0.0
        cap = self.own.shape[1]
        pos = stream.sign > 0
        for m, tau in enumerate(self.taus):
            decay = np.exp(-(t_now - stream.t) / tau) / tau
            self.own[m] = np.bincount(stream.src, weights=decay, minlength=cap)
            self.pos[m] = np.bincount(stream.dst[pos], weights=decay[pos], minlength=cap)
            self.neg[m] = np.bincount(stream.dst[~pos], weights=decay[~pos], minlength=cap)
            fin = np.flatnonzero(np.isfinite(arrival))
            self.arr[m, fin] = np.exp(-(t_now - arrival[fin]) / tau) / tau
        self.count = np.bincount(stream.src, minlength=cap).astype(np.float64)
        self.arrival[: arrival.shape[0]] = arrival
        self.ref = t_now

    def act(self, u: int, v: int, sign: int, t: float) -> None:
        """Record the delivered act ``u -> v`` of ``sign`` at ``t``."""
        self._kick(self.own, u, t)
        self._kick(self.pos if sign > 0 else self.neg, v, t)
        self.count[u] += 1.0

    def arrive(self, node: int, t: float) -> None:
        """Record an arrival at ``t``."""
        self._kick(self.arr, node, t)
        self.arrival[node] = t

    def answer_share(self, node: int) -> float:
        """Share of ``node``'s intensity now (answers aside) due to ratings it received."""
        received, _, rest = self._parts(node)
        total = received + rest
        return received / total if total > 0 else 0.0

    def rates(self, present: np.ndarray, step: float) -> np.ndarray:
        """Average intensity of each node over the next ``step`` days."""
        avg = self.taus * (1.0 - np.exp(-step / self.taus)) / step
        lam = (self.coef_own * avg) @ self.own + (self.coef_pos * avg) @ self.pos
        lam += (self.coef_neg * avg) @ self.neg + (self.coef_arr * avg) @ self.arr
        ans_avg = self.ans_taus * (1.0 - np.exp(-step / self.ans_taus)) / step
        lam += (self.ans_coef * ans_avg) @ self.ans
        with np.errstate(invalid="ignore"):
            long_run = self.count / (self.ref - self.arrival + RATE_OFFSET)
        lam += self.m.rate * np.where(present, long_run, 0.0)
        k = min(lam.shape[0], self.m.base.shape[0])
        lam[:k] += self.m.base[:k]
        return np.where(present, lam + self.m.mu, 0.0)
