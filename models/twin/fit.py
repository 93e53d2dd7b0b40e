"""Fit a learned twin (and the statistical null) on the history of a split run.

One pass over the history replays every event into a :class:`GraphState`; before each
event is applied, it is classed as an answer (:mod:`models.twin.answers`) or an
initiation, the choice recorder scores the target of each initiation and the sign
features of the pair are taken, so nothing is learned from an event's own outcome or from later events. The
activity and arrival processes are fitted on the same history. Nothing after the split
reaches the fit but the length of the span to generate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from models.twin.activity import ActivityModel, answer_share, fit_activity
from models.twin.answers import AnswerModel, fit_answers
from models.twin.choice import POOLS, ChoiceParams, ChoiceRecorder
from models.twin.graph import GraphState
from models.twin.observed import TwinSplit
from models.twin.opinions import fit_opinion_steps
from models.twin.signs import SignModel, WeightSampler, pair_features

__all__ = ["NullFit", "TwinFit", "fit_twin", "replay"]


@dataclass
class NullFit:
    """The no-learning null's statistics of the history.

    Attributes:
        rates: Acts per day of each known node over the history.
        p_reciprocate: Share of acts that answered an unanswered rating.
    """

    rates: np.ndarray
    p_reciprocate: float


@dataclass
class TwinFit:
    """Everything a twin learned from the history of ``split``."""

    split: TwinSplit
    activity: ActivityModel
    answers: AnswerModel
    choice: ChoiceParams
    choice_log_lik: float
    sign: SignModel
    weights: WeightSampler
    null: NullFit
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    opinion_steps: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-safe description of the fit, for reports."""
        a = self.activity
        return {
            "activity": {"taus_days": list(a.taus), "mu": a.mu, "own": list(a.own),
                         "received_pos_neg": list(a.received), "arrival": list(a.arrival),
                         "long_run_rate": a.rate, "own_slow": a.slow,
                         "act_at_arrival": a.act_at_arrival, "arrival_rate_per_day": a.arrival_rate,
                         "arrival_window_days": a.window, "log_lik_per_act": a.log_likelihood},
            "answers": {"probability_positive": self.answers.prob,
                        "probability_negative": self.answers.prob_negative,
                        "delay_weights": list(self.answers.weights),
                        "delay_means_days": list(self.answers.taus),
                        "answers_seen": self.answers.n_answers},
            "choice": {"pools": list(POOLS), "mixture_logits_by_kind": self.choice.mix.tolist(),
                       "within_pool": self.choice.theta.tolist(),
                       "same_group_by_kind_and_pool": self.choice.same.tolist(),
                       "already_rated": self.choice.rated.tolist(),
                       "recip_gate_recency_and_answer_share": self.choice.gate.tolist(),
                       "log_lik_per_act": self.choice_log_lik},
            "sign": self.sign.coefficients(),
            "null": {"p_reciprocate": self.null.p_reciprocate},
            "temperature": self.info.get("temperature", {"chosen": 1.0}),
            "opinion_steps": self.opinion_steps,
            "fit_seconds": self.seconds,
        }


def replay(split: TwinSplit, graph: GraphState) -> None:
    """Apply the whole history to ``graph`` (arrivals included)."""
    h = split.history
    for t, u, v, s, w in zip(h.t.tolist(), h.src.tolist(), h.dst.tolist(), h.sign.tolist(),
                             h.weight.tolist(), strict=True):
        graph.observe(t, u, v, s, w)


def fit_twin(split: TwinSplit, *, iterations: int = 60, temperature: bool = True,
             progress: bool = False) -> TwinFit:
    """Fit activity, arrivals, target choice, sign and weight on ``split.history``.

    With ``temperature`` the sharpness of target choices is then calibrated on the
    history's last part (:mod:`models.twin.temperature`).
    """
    started = time.perf_counter()
    obs, h = split.observed, split.history
    n = split.n_known
    kind = obs.kind[:n]
    opinion, negativity = obs.opinion.copy(), np.zeros(obs.n_nodes)
    snap_t, snap_node, snap_op, snap_neg = obs.snapshots
    next_snap = 0
    g = GraphState(n, obs.group[:n])
    rec = ChoiceRecorder()
    feats = np.empty((len(h), len(pair_features(g, kind, opinion, negativity, 0.0, 0, 0))))
    is_answer = np.zeros(len(h), dtype=bool)
    pending: dict[tuple[int, int], int] = {}
    received_at: list[float] = []
    answered_after: list[float] = []
    received_sign: list[int] = []
    rows = zip(h.t.tolist(), h.src.tolist(), h.dst.tolist(), h.sign.tolist(), h.weight.tolist(),
               strict=True)
    for e, (t, u, v, s, w) in enumerate(tqdm(rows, total=len(h), disable=not progress,
                                             desc="replaying the history", leave=False)):
        while next_snap < snap_t.shape[0] and snap_t[next_snap] <= t:
            opinion[snap_node[next_snap]] = snap_op[next_snap]
            negativity[snap_node[next_snap]] = snap_neg[next_snap]
            next_snap += 1
        g.arrive(u, t)
        g.arrive(v, t)
        if v in g.in_last[u] and v not in g.out_last[u]:  # u answers v's rating
            is_answer[e] = True
            k = pending.pop((v, u), -1)
            if k >= 0:
                answered_after[k] = t - received_at[k]
        else:
            rec.record(g, kind, t, u, v, opinion)
            if v not in g.in_last[u] and v not in g.out_last[u]:  # v may answer this one
                pending[(u, v)] = len(received_at)
                received_at.append(t)
                received_sign.append(s)
                answered_after.append(math.nan)
        feats[e] = pair_features(g, kind, opinion, negativity, t, u, v)
        g.observe(t, u, v, s, w)
    answers = fit_answers(np.array(received_at), np.array(received_sign), np.array(answered_after),
                          split.t_split)
    activity = fit_activity(h, n, split.t_split, split.horizon, explained=is_answer)
    rec.set_answer_share(answer_share(activity, h, n, split.t_split)[~is_answer])
    model, ll = rec.fit(iterations=iterations)
    sign = SignModel.fit(feats, h.sign)
    weights = WeightSampler(h.weight[h.sign > 0], h.weight[h.sign < 0])
    span = max(split.t_split - float(h.t[0]), 1e-9)
    null = NullFit(rates=np.bincount(h.src, minlength=n) / span,
                   p_reciprocate=float(is_answer.mean()))
    fit = TwinFit(split=split, activity=activity, answers=answers,
                  choice=ChoiceParams.from_model(model),
                  choice_log_lik=ll, sign=sign, weights=weights, null=null, seconds=0.0,
                  opinion_steps=fit_opinion_steps(split))
    if temperature:
        from models.twin.temperature import calibrate_temperature, scaled

        temp, info = calibrate_temperature(fit)
        fit.choice = scaled(fit.choice, temp)
        fit.info["temperature"] = {"chosen": temp, **info}
    fit.seconds = time.perf_counter() - started
    return fit
