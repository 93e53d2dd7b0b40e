"""A fitted twin (or the null) driving the engine through the ``Dynamics`` protocol.

The engine draws who acts and when from the rates the dynamics sets; the dynamics then
decides each act in turn (target, sign, weight), hands it to the compiled kernel, which
applies the arm's interventions (moderation and friction may block it; bans, suspensions
and rate limits act on the actors), and only a delivered act reaches the twin's graph
and activity state. Every decision sees every earlier delivered act.

Time in a generated run starts at 0 at the split; node ids are those of the observed run,
with newcomer slots after the known nodes. Newcomers arrive by the fitted Poisson process
(drawn from the model's generator at the first step) and are scheduled on the SimPy
clock, so each arrival ends the engine's batch and the rates are refreshed exactly then.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from models.twin.activity import ActivityTracker
from models.twin.choice import choose_target
from models.twin.fit import TwinFit, replay
from models.twin.graph import GraphState
from models.twin.signs import pair_features
from sim.contract import CAUSES, EventBatch
from sim.engine.agents import Population
from sim.engine.dynamics import apply_events
from sim.engine.kernel import U_CHOICE, U_PICK, U_SIDE, U_SIGN, U_TRIES, U_WEIGHT

if TYPE_CHECKING:
    from sim.engine.model import SocialModel

__all__ = ["NullDynamics", "TwinDynamics", "newcomer_slots", "slot_sources", "twin_population"]

#: ``interactions.cause`` of acts decided by a twin.
LEARNED = CAUSES.index("learned")
#: Days between refreshes of the learned intensities.
STEP = 0.1


def newcomer_slots(fit: TwinFit, horizon: float | None = None) -> int:
    """Slots kept for newcomers over ``horizon`` days (default: the held-out span).

    A generous upper quantile of the Poisson count of arrivals.
    """
    lam = fit.activity.arrival_rate * (fit.split.horizon if horizon is None else horizon)
    return int(math.ceil(lam + 6.0 * math.sqrt(lam) + 10.0))


def slot_sources(fit: TwinFit, capacity: int) -> np.ndarray:
    """The observed node whose attributes each slot takes.

    A known node's slot takes its own; a newcomer slot takes one of the newest known
    nodes' (ids follow first appearance).
    """
    n = fit.split.n_known
    recent = np.argsort(-np.arange(n))
    return np.concatenate([np.arange(n), recent[np.arange(capacity - n) % n]])


def twin_population(fit: TwinFit, capacity: int, rates: np.ndarray) -> Population:
    """The known nodes' attributes at the split; newcomer slots copy the newest nodes' ones."""
    obs = fit.split.observed
    src = slot_sources(fit, capacity)
    opinion = obs.attributes_at(fit.split.t_split)[0]
    return Population(
        opinion=opinion[src].astype(np.float64), group=obs.group[src].astype(np.int32),
        kind=obs.kind[src].astype(np.int8), rate=rates.astype(np.float64),
        negativity=np.full(capacity, 0.0), neg_time=np.full(capacity, 0.0),
        active=np.ones(capacity, dtype=np.bool_), last_actor=np.full(capacity, -1, dtype=np.int64),
    )


class _GraphDynamics:
    """Shared loop: decide each act, deliver it through the kernel, learn from delivered acts."""

    name = "graph"
    graph: GraphState

    def __init__(self, fit: TwinFit, capacity: int) -> None:
        self.fit = fit
        self.capacity = capacity
        self.kind = np.zeros(capacity, dtype=np.int64)
        self.opinion = np.zeros(capacity)
        self.negativity = np.zeros(capacity)
        self._history: GraphState | None = None
        self.ready = False

    def _replayed(self) -> GraphState:
        """The graph after the whole history, built once (groups as the population's)."""
        if self._history is None:
            group = self.fit.split.observed.group[slot_sources(self.fit, self.capacity)]
            self._history = GraphState(self.capacity, group)
            replay(self.fit.split, self._history)
        return self._history

    def _start(self, model: SocialModel) -> None:
        pop = model.population
        self.kind = pop.kind.astype(np.int64)
        self.opinion = pop.opinion  # live: the engine moves opinions with the learned steps
        n = self.fit.split.n_known
        self.negativity[:n] = self.fit.split.observed.attributes_at(self.fit.split.t_split)[1][:n]
        self.graph = self._replayed()
        self.t0 = self.fit.split.t_split
        self.ready = True

    def decide(self, model: SocialModel, a: int, t: float, u: np.ndarray) -> tuple[int, int, float]:
        """Target, sign and weight of ``a``'s act at absolute time ``t``."""
        raise NotImplementedError

    def delivered(self, t: float, a: int, v: int, sign: int, weight: float) -> None:
        """Learn from a delivered act."""
        self.graph.observe(t, a, v, sign, weight)

    def refresh(self, model: SocialModel, t: float) -> None:
        """Set the agents' rates for the step that starts at engine time ``t``."""

    def step(self, model: SocialModel, times: np.ndarray, actors: np.ndarray,
             uniforms: np.ndarray) -> EventBatch:
        """Decide and deliver the acts up to the next refresh (see ``sim.engine.dynamics.Dynamics``)."""
        now = float(model.env.now)
        if not self.ready:
            self._start(model)
            self.refresh(model, now)
            return _empty(now)
        cut = now + STEP
        k = int(np.searchsorted(times, cut, side="left"))
        parts: list[EventBatch] = []
        for i in range(k):
            a, t = int(actors[i]), float(times[i])
            v, sign, weight = self.decide(model, a, self.t0 + t, uniforms[i])
            forcing = (np.array([v]), np.array([LEARNED], dtype=np.int8),
                       np.array([sign], dtype=np.int8), np.array([weight]))
            ev = apply_events(model, times[i:i + 1], actors[i:i + 1], uniforms[i:i + 1], forcing)
            parts.append(ev)
            if len(ev) and ev.blocked[0] == 0:
                self.delivered(self.t0 + t, a, int(ev.dst[0]), int(ev.sign[0]), float(ev.weight[0]))
            if ev.suspended >= 0:
                break
        batch = _concat(parts) if parts else _empty(now)
        end = float(batch.t[-1]) if len(batch) else now
        if batch.suspended < 0 and k < times.shape[0]:
            batch.until = end = cut
        self.refresh(model, end)
        return batch


def _empty(t: float) -> EventBatch:
    z = np.empty(0)
    return EventBatch(t=z, src=z.astype(np.int64), dst=z.astype(np.int64), sign=z.astype(np.int8),
                      weight=z, blocked=z.astype(np.int8), cause=z.astype(np.int8), until=t)


def _concat(parts: list[EventBatch]) -> EventBatch:
    return EventBatch(
        t=np.concatenate([p.t for p in parts]), src=np.concatenate([p.src for p in parts]),
        dst=np.concatenate([p.dst for p in parts]), sign=np.concatenate([p.sign for p in parts]),
        weight=np.concatenate([p.weight for p in parts]),
        blocked=np.concatenate([p.blocked for p in parts]),
        cause=np.concatenate([p.cause for p in parts]), suspended=parts[-1].suspended,
    )


class TwinDynamics(_GraphDynamics):
    """The learned twin: fitted activity, arrivals, target mixture, sign and weight."""

    name = "twin"

    def __init__(self, fit: TwinFit, capacity: int) -> None:
        super().__init__(fit, capacity)
        self.tracker = ActivityTracker(fit.activity, capacity)
        self._tracker_loaded = False
        self.free = fit.split.n_known

    def _load_tracker(self, graph: GraphState) -> None:
        """Activity and pending answers implied by the history, at the split."""
        split = self.fit.split
        self.tracker = ActivityTracker(self.fit.activity, self.capacity)
        self.tracker.use_answers(self.fit.answers)
        self.tracker.replay(split.history, graph.arrival[: split.n_known])
        for b in range(split.n_known):
            out = graph.out_last[b]
            for x, (s, sign, _) in graph.in_last[b].items():
                if x not in out:
                    self.tracker.pending(b, s, sign)
        self.tracker.advance(split.t_split)
        self._tracker_loaded = True

    def initial_rates(self) -> np.ndarray:
        """Rates at the split implied by the history (before the first step)."""
        g = self._replayed()
        self._load_tracker(g)
        return self.tracker.rates(g.present, STEP)

    def _start(self, model: SocialModel) -> None:
        super()._start(model)
        if not self._tracker_loaded:
            self._load_tracker(self.graph)
        rate = self.fit.activity.arrival_rate
        horizon = model.horizon
        t, slots = 0.0, self.capacity - self.free
        for _ in range(slots):
            t += float(model.rng.exponential(1.0 / rate)) if rate > 0 else math.inf
            if t >= horizon:
                break
            model.call_at(t, self._arrival)

    def _arrival(self, model: SocialModel) -> None:
        node = self.free
        self.free += 1
        t = self.t0 + float(model.env.now)
        self.graph.arrive(node, t)
        self.tracker.advance(t)
        self.tracker.arrive(node, t)
        self.refresh(model, float(model.env.now))

    def decide(self, model: SocialModel, a: int, t: float, u: np.ndarray) -> tuple[int, int, float]:
        """An answer or a target from the mixture; sign from the logistic model; weight."""
        g = self.graph
        v = self._answer(a, t, u[U_SIDE], u[U_PICK])
        if v < 0:
            v = choose_target(g, self.fit.choice, int(self.kind[a]), a, t, u[[U_CHOICE, U_PICK]],
                              self.tracker.answer_share(a), self.opinion)
        if v < 0:
            return -1, 0, math.nan
        x = np.array([pair_features(g, self.kind, self.opinion, self.negativity, t, a, v)])
        sign = 1 if u[U_SIGN] < self.fit.sign.p_positive(x)[0] else -1
        return v, sign, self.fit.weights.sample(g, a, sign, u[U_WEIGHT], u[U_TRIES])

    def _answer(self, a: int, t: float, u_cause: float, u_pick: float) -> int:
        """The rater ``a`` answers now, when the act is an answer (else -1)."""
        ans, total = self.tracker.answer_and_total(a)
        if total <= 0.0 or u_cause >= ans / total:
            return -1
        g = self.graph
        out = g.out_last[a]
        raters = [(x, s, sg) for x, (s, sg, _) in g.in_last[a].items() if x not in out]
        if not raters:
            return -1
        w = np.cumsum([self.tracker.answer_term(s, sg, t) for _, s, sg in raters])
        j = min(int(np.searchsorted(w, u_pick * w[-1], side="right")), len(raters) - 1)
        return raters[j][0]

    def delivered(self, t: float, a: int, v: int, sign: int, weight: float) -> None:
        """Update the graph, the activity sums and the pending answers."""
        g = self.graph
        back = g.in_last[a].get(v)
        if back is not None and v not in g.out_last[a]:
            self.tracker.answered(a, back[0], back[1])  # a rated v back: v's rating is answered
        elif back is None and v not in g.out_last[a]:
            self.tracker.pending(v, t, sign)  # v may answer this first rating
        super().delivered(t, a, v, sign, weight)
        self.tracker.act(a, v, sign, t)

    def refresh(self, model: SocialModel, t: float) -> None:
        """Average learned intensity of each present node over the step from ``t``."""
        self.tracker.advance(self.t0 + t)
        model.population.rate[:] = self.tracker.rates(self.graph.present, STEP)
        model.rates_changed()


class NullDynamics(_GraphDynamics):
    """No learning: empirical rates, reciprocity probability, in-degree attachment, target's sign."""

    name = "null"

    def decide(self, model: SocialModel, a: int, t: float, u: np.ndarray) -> tuple[int, int, float]:
        """Answer an unanswered rater with the history's probability, else attach by in-degree."""
        g = self.graph
        waiting = [x for x in g.in_last[a] if x not in g.out_last[a]]
        if waiting and u[U_CHOICE] < self.fit.null.p_reciprocate:
            v = waiting[min(int(u[U_PICK] * len(waiting)), len(waiting) - 1)]
        else:
            w = (g.in_pos + g.in_neg + 1.0) * g.present
            w[a] = 0.0
            cum = np.cumsum(w)
            if cum[-1] <= 0:
                return -1, 0, math.nan
            v = int(np.searchsorted(cum, u[U_PICK] * cum[-1], side="right"))
        prior = g.neg_prior()
        n_in = g.in_pos[v] + g.in_neg[v]
        p_pos = (g.in_pos[v] + 2.0 * (1.0 - prior)) / (n_in + 2.0)
        sign = 1 if u[U_SIGN] < p_pos else -1
        pool = self.fit.weights.pools[0 if sign > 0 else 1]
        weight = float(pool[min(int(u[U_WEIGHT] * pool.size), pool.size - 1)]) if pool.size else 0.5
        return v, sign, weight
