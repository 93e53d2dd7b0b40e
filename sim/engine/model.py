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
from sim.engine.agents import AGENT_CLASSES, Population, draw_population
from sim.engine.agentset import AgentViews, PopulationAgentSet
from sim.engine.dynamics import Dynamics, MechanisticDynamics, parameter_vector
from sim.engine.kernel import NU, Q
from sim.engine.network import build_network
from sim.engine.sampling import bucket_table, searchsorted_right

if TYPE_CHECKING:
    from sim.engine.interventions import Intervention
    from sim.engine.recording import Recorder
    from sim.scenario import InterventionSpec

__all__ = ["NetState", "SocialModel"]

#: Population size from which actors are drawn through a bucket table.
_BUCKETED_ACTORS = 1 << 16


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
        agents: Mesa's ``AgentSet`` of the people (and of any other agent registered with
            the model), in the people's order; ``agents_by_type`` by class. A person's
            agent is made the first time someone asks for it and kept
            (:mod:`sim.engine.agentset`): building costs no Python object per person.
        agent_list: Person ``i``'s agent by index.
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
        #: Every person's Mesa agent by index, made on first access.
        self.agent_list = AgentViews(self)
        self._all_agents = PopulationAgentSet(self.agent_list, random=self.random)
        # Mesa's sets by type, in the order the people's kinds first appear
        first = {code: int(np.argmax(pop.kind == code)) for code in range(len(AGENT_CLASSES))
                 if np.any(pop.kind == code)}
        self._agents_by_type = {
            AGENT_CLASSES[code]: PopulationAgentSet(self.agent_list, agent_type=AGENT_CLASSES[code],
                                                    random=self.random)
            for code in sorted(first, key=first.__getitem__)
        }
        self.params = parameter_vector(config.dynamics, config.population)
        self.policy = np.zeros(Q.SIZE)
        self.dynamics: Dynamics = dynamics if dynamics is not None else MechanisticDynamics()
        self.recorder = recorder
        self.datacollector: mesa.DataCollector | None = None
        self.events = 0
        self._cum_rates = np.zeros(0)
        self._total_rate = 0.0
        self._rates_dirty = True
        self._actor_table: np.ndarray | None = None
        self._draws_since_refresh = 0
        self._tables_built = 0
        self.interventions: list[Intervention] = []
        self.env.process(self._activity())
        for spec in interventions:
            self._schedule_intervention(spec)
        if recorder is not None:
            recorder.attach(self)

    # -- Mesa's agent registry ---------------------------------------------------------
    @property
    def agents_by_type(self) -> dict[type[mesa.Agent], PopulationAgentSet]:
        """Mesa's sets of agents by class (a kind that appears later gets its set then)."""
        present = np.flatnonzero(np.bincount(self.population.kind, minlength=len(AGENT_CLASSES)))
        for code in present.tolist():
            cls = AGENT_CLASSES[code]
            if cls not in self._agents_by_type:
                self._agents_by_type[cls] = PopulationAgentSet(
                    self.agent_list, agent_type=cls, random=self.random)
        return self._agents_by_type

    @property
    def agent_types(self) -> list[type[mesa.Agent]]:
        """Classes of the model's agents, in the order they first appeared."""
        return list(self.agents_by_type)

    def register_agent(self, agent: mesa.Agent) -> None:
        """Register an agent (Mesa calls this when any other agent is made for the model)."""
        self.agent_list.register(agent)
        cls = type(agent)
        if cls not in self.agents_by_type:
            self._agents_by_type[cls] = PopulationAgentSet(self.agent_list, agent_type=cls,
                                                           random=self.random)
        self._agents_by_type[cls].add(agent)
        self._all_agents.add(agent)

    def deregister_agent(self, agent: mesa.Agent) -> None:
        """Remove an agent from the model's sets (``agent.remove()`` calls this)."""
        self.agent_list.deregister(agent)

    def remove_all_agents(self) -> None:
        """Remove every agent from the model's sets (the people still act; see ``ban``)."""
        self.agent_list.deregister_all()

    # -- rates -------------------------------------------------------------------------
    def rates_changed(self) -> None:
        """Call after changing ``population.rate`` or ``population.active``."""
        self._rates_dirty = True

    def _refresh_rates(self) -> None:
        if self._rates_dirty:
            self._cum_rates = np.cumsum(self.population.effective_rates())
            self._total_rate = float(self._cum_rates[-1]) if self._cum_rates.size else 0.0
            self._rates_dirty = False
            self._actor_table = None
            self._draws_since_refresh = 0

    def _actors(self, draws: np.ndarray) -> np.ndarray:
        """Actor of each draw on ``[0, total rate)``: ``searchsorted`` over the running rates.

        A large population gets the bucket table of :mod:`sim.engine.sampling` (the same
        answers, one memory read per draw instead of a search through 80 MB of sums at
        10M agents): for the rates it starts with at once, and after a change of rates
        once enough draws use them to pay for building it (about the cost of ``n / 32``
        searches), so that rates changing every few acts (moderation) cost no more.
        """
        n = self.population.n
        self._draws_since_refresh += draws.shape[0]
        if (self._actor_table is None and n >= _BUCKETED_ACTORS
                and (self._draws_since_refresh >= n // 32 or not self._tables_built)):
            self._actor_table = np.empty((n + 1, 2), dtype=np.int32)
            bucket_table(self._cum_rates, 0, n, self._actor_table, 0)
            self._tables_built += 1
        if self._actor_table is None:
            return np.minimum(np.searchsorted(self._cum_rates, draws, side="right"),
                              n - 1).astype(np.int64)
        actors = np.empty(draws.shape[0], dtype=np.int64)
        searchsorted_right(self._cum_rates, self._actor_table, draws, actors)
        return actors

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
            actors = self._actors(self.rng.random(keep) * self._total_rate)
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
