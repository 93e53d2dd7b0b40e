"""The simulation engine: a Mesa model of agents on a SimPy clock.

:class:`SocialModel` owns the agents, their columnar state and the seeded generator; a
``simpy.Environment`` is the only clock (days). Acts arrive as one superposed Poisson
process: with total rate ``R`` (sum of the active agents' rates) the next act comes after
an exponential gap of mean ``1/R`` and belongs to agent ``i`` with probability
``rate_i / R``. This is exactly the union of one Poisson process per agent.

Exactness under rate changes: the activity process draws a batch of future acts, keeps
only those before the next scheduled SimPy event (an intervention, a metric tick, a
suspension ending) and before the horizon, and discards the rest; an act that suspends
its actor also ends the batch. The process then resumes from the last kept act with the
new rates; by memorylessness the result is the exact process with piecewise-constant
rates.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mesa
import numpy as np
import simpy

from sim.config import SimConfig
from sim.contract import INFLUENCER, EventBatch
from sim.engine.agents import AGENT_CLASSES, Population, SignedAgent, draw_population
from sim.engine.dynamics import Dynamics, MechanisticDynamics, parameter_vector
from sim.engine.kernel import NU, Q
from sim.engine.network import build_network

if TYPE_CHECKING:
    from sim.engine.interventions import Intervention
    from sim.engine.recording import Recorder
    from sim.scenario import InterventionSpec

__all__ = ["NetState", "SocialModel"]


@dataclass
class NetState:
    """Graph and bookkeeping state the kernel updates in place.

    Attributes:
        follow: ``(n, width)`` padded followee lists.
        follow_n: Number of followees of each agent.
        tie_partner: ``(n, ties)`` ring buffer of recent signed-tie partners (-1: empty).
        tie_sign: Sign of each remembered tie.
        tie_next: Next ring slot of each agent.
        strikes: Moderation strikes since the last suspension.
        day_acts: Acts attempted on day ``day_index`` (rate limits).
        day_index: Day the ``day_acts`` counter refers to.
        victims: Ring of recent targets of negative acts (counter-speech).
        vstate: ``[next slot, total victims recorded]``.
    """

    follow: np.ndarray
    follow_n: np.ndarray
    tie_partner: np.ndarray
    tie_sign: np.ndarray
    tie_next: np.ndarray
    strikes: np.ndarray
    day_acts: np.ndarray
    day_index: np.ndarray
    victims: np.ndarray
    vstate: np.ndarray

    @classmethod
    def create(cls, follow: np.ndarray, follow_n: np.ndarray, ties: int) -> NetState:
        """Fresh state around an initial follow network.

        Arrays are filled with ``np.full`` rather than ``np.zeros``: zeroed memory is
        mapped lazily, so its page faults would land on the first events of a large run.
        """
        n = follow.shape[0]
        return cls(
            follow=follow,
            follow_n=follow_n,
            tie_partner=np.full((n, ties), -1, dtype=np.int64),
            tie_sign=np.full((n, ties), 0, dtype=np.int8),
            tie_next=np.full(n, 0, dtype=np.int64),
            strikes=np.full(n, 0, dtype=np.int64),
            day_acts=np.full(n, 0, dtype=np.int64),
            day_index=np.full(n, -1, dtype=np.int64),
            victims=np.full(256, -1, dtype=np.int64),
            vstate=np.zeros(2, dtype=np.int64),
        )


class SocialModel(mesa.Model):
    """A signed social network simulation.

    Args:
        config: Population, network, dynamics and recording settings.
        seed: Seed of the model's generator (all randomness comes from it).
        dynamics: Decision rules (default: :class:`MechanisticDynamics`).
        interventions: Interventions of the arm, scheduled on the SimPy clock.
        recorder: Where events, metrics and snapshots go (``None``: nowhere).
        population: A given initial population (a twin's observed nodes) instead of one
            drawn from ``config.population``; its size must be ``config.population.n_agents``.

    Attributes:
        datacollector: A ``mesa.DataCollector`` that the recorder fills at each metric tick
            (``None``, the default: stored runs keep their log in the database only; see
            :mod:`sim.engine.mesa_tools`).
    """

    def __init__(
        self,
        config: SimConfig,
        seed: int = 0,
        *,
        dynamics: Dynamics | None = None,
        interventions: Sequence[InterventionSpec] = (),
        recorder: Recorder | None = None,
        population: Population | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.config = config
        self.seed = seed
        self.env = simpy.Environment()
        self.horizon = float(config.horizon)
        self.population: Population = (population if population is not None
                                       else draw_population(config.population, self.rng))
        pop = self.population
        attract = np.where(pop.kind == INFLUENCER, config.population.influencer_attraction, 1.0)
        follow, follow_n = build_network(config.network, pop.group, attract, self.rng)
        self.net = NetState.create(follow, follow_n, config.dynamics.ties)
        self.agent_list: list[SignedAgent] = [
            AGENT_CLASSES[int(k)](self, i) for i, k in enumerate(pop.kind)
        ]
        self.params = parameter_vector(config.dynamics, config.population)
        self.policy = np.zeros(Q.SIZE)
        self.dynamics: Dynamics = dynamics if dynamics is not None else MechanisticDynamics()
        self.recorder = recorder
        self.datacollector: mesa.DataCollector | None = None
        self.events = 0
        self._cum_rates = np.zeros(0)
        self._total_rate = 0.0
        self._rates_dirty = True
        self.interventions: list[Intervention] = []
        self.env.process(self._activity())
        for spec in interventions:
            self._schedule_intervention(spec)
        if recorder is not None:
            recorder.attach(self)

    # -- rates -------------------------------------------------------------------------
    def rates_changed(self) -> None:
        """Call after changing ``population.rate`` or ``population.active``."""
        self._rates_dirty = True

    def _refresh_rates(self) -> None:
        if self._rates_dirty:
            self._cum_rates = np.cumsum(self.population.effective_rates())
            self._total_rate = float(self._cum_rates[-1]) if self._cum_rates.size else 0.0
            self._rates_dirty = False

    # -- scheduling --------------------------------------------------------------------
    def _schedule_intervention(self, spec: InterventionSpec) -> None:
        from sim.engine.interventions import REGISTRY

        intervention = REGISTRY[spec.type](spec)
        self.interventions.append(intervention)

        def lifecycle() -> Generator[simpy.Event, Any, None]:
            yield self.env.timeout(spec.start)
            intervention.start(self)
            if spec.end is not None and spec.end < self.horizon:
                yield self.env.timeout(spec.end - spec.start)
                intervention.stop(self)

        self.env.process(lifecycle())

    def call_at(self, t: float, action: Any) -> None:
        """Run ``action(model)`` at simulated time ``t`` (on the SimPy clock)."""

        def proc() -> Generator[simpy.Event, Any, None]:
            yield self.env.timeout(max(t - self.env.now, 0.0))
            action(self)

        self.env.process(proc())

    def log(self, intervention: str, action: str, agent_id: int | None = None,
            count: int = 1, detail: str = "", t: float | None = None) -> None:
        """Record an intervention's action (``interventions`` table) at ``t`` (default: now)."""
        if self.recorder is not None:
            self.recorder.log_intervention(self.env.now if t is None else t, intervention,
                                           action, agent_id, count, detail)

    # -- the activity process ----------------------------------------------------------
    def _activity(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        batch = self.config.recording.batch_events
        while env.now < self.horizon:
            self._refresh_rates()
            limit = min(env.peek(), self.horizon)
            if self._total_rate <= 0.0:
                if limit >= self.horizon:
                    return
                yield env.timeout(limit - env.now)
                continue
            times = env.now + np.cumsum(self.rng.exponential(1.0 / self._total_rate, batch))
            keep = int(np.searchsorted(times, limit, side="left"))
            if keep == 0:
                yield env.timeout(limit - env.now)
                continue
            times = times[:keep]
            draws = self.rng.random(keep) * self._total_rate
            actors = np.minimum(np.searchsorted(self._cum_rates, draws, side="right"),
                                self.population.n - 1).astype(np.int64)
            uniforms = self.rng.random((keep, NU))
            events = self.dynamics.step(self, times, actors, uniforms)
            end = env.now
            if len(events):
                self._emit(events)
                end = float(events.t[-1])
                if events.suspended >= 0:
                    self._suspend(events.suspended, end)
            if events.until > end:  # NaN compares False: resume after the last act
                end = min(float(events.until), limit)
            yield env.timeout(end - env.now)

    def _emit(self, events: EventBatch) -> None:
        self.events += len(events)
        if self.recorder is not None:
            self.recorder.on_events(self, events)

    def _suspend(self, agent: int, t: float) -> None:
        """Moderation suspended ``agent`` at ``t``: schedule its return."""
        self.rates_changed()
        days = float(self.policy[Q.MOD_SUSPEND])
        self.log("moderation", "suspend", agent, 1, f"days={days:g}", t=t)
        if days > 0:

            def restore(model: SocialModel) -> None:
                model.population.active[agent] = True
                model.rates_changed()
                model.log("moderation", "reinstate", agent)

            self.call_at(t + days, restore)

    # -- running -----------------------------------------------------------------------
    def run(self, until: float | None = None) -> None:
        """Advance the clock to ``until`` (default: the horizon)."""
        target = min(until if until is not None else self.horizon, self.horizon)
        if target > self.env.now:
            self.env.run(until=target)
        if self.env.now >= self.horizon and self.recorder is not None:
            self.recorder.close(self)

    def step(self) -> None:
        """Advance one simulated day (Mesa's step interface)."""
        self.run(until=self.env.now + 1.0)
