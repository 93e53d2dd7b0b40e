"""Agents: Mesa agent types over the population's columnar state.

Each simulated person is a :class:`mesa.Agent` (so users get Mesa's ``AgentSet``
selection, grouping and shuffling), but its state lives in the numpy arrays of
:class:`Population`, which the compiled kernel updates in place. An agent is therefore a
typed view: ``agent.opinion`` reads and writes ``population.opinion[agent.index]``.
The model makes a person's agent when someone first asks for it
(:mod:`sim.engine.agentset`), so building a population costs no Python object per person.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import mesa
import numpy as np

from sim.config import PopulationConfig
from sim.contract import KIND_CODES

if TYPE_CHECKING:
    from sim.engine.model import SocialModel

__all__ = [
    "AGENT_CLASSES",
    "AgentViews",
    "Citizen",
    "CounterSpeaker",
    "Influencer",
    "Population",
    "SignedAgent",
    "Troll",
    "draw_population",
]


@dataclass
class Population:
    """Columnar state of all agents (index = agent id).

    Attributes:
        opinion: Opinion on the configured interval.
        group: Group (community) index.
        kind: Kind code (index into ``sim.contract.KIND_CODES``).
        rate: Base activity rate (acts per day).
        negativity: Affect level in [0, 1] as of ``neg_time`` (decays after it).
        neg_time: Time of the last negativity update.
        active: False while banned or suspended (acts at rate 0, receives nothing).
        last_actor: Who last acted on the agent (-1: nobody yet), for replies.
    """

    opinion: np.ndarray
    group: np.ndarray
    kind: np.ndarray
    rate: np.ndarray
    negativity: np.ndarray
    neg_time: np.ndarray
    active: np.ndarray
    last_actor: np.ndarray

    @property
    def n(self) -> int:
        """Number of agents."""
        return int(self.opinion.shape[0])

    def effective_rates(self) -> np.ndarray:
        """Rates of the superposed Poisson process (0 for inactive agents)."""
        return np.where(self.active, self.rate, 0.0)


def _rates(cfg: PopulationConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    if cfg.rate_distribution == "constant":
        return np.full(n, cfg.mean_rate)
    if cfg.rate_distribution == "lognormal":
        sigma = cfg.rate_sigma
        return cfg.mean_rate * rng.lognormal(-0.5 * sigma * sigma, sigma, n)
    alpha = max(cfg.rate_sigma, 1.01)
    xm = cfg.mean_rate * (alpha - 1.0) / alpha
    return xm * (1.0 + rng.pareto(alpha, n))


def draw_population(cfg: PopulationConfig, rng: np.random.Generator) -> Population:
    """Draw kinds, groups, opinions and heavy-tailed activity rates.

    Args:
        cfg: Population settings.
        rng: The model's generator (all randomness comes from it).

    Returns:
        The initial population state.
    """
    n = cfg.n_agents
    shares = np.array([cfg.kinds.get(k, 0.0) for k in KIND_CODES])
    counts = np.floor(shares * n).astype(np.int64)
    counts[0] += n - counts.sum()
    kind = rng.permutation(np.repeat(np.arange(len(KIND_CODES), dtype=np.int8), counts))
    group = (np.arange(n) % cfg.groups).astype(np.int32)
    lo, hi = cfg.opinion_range
    if cfg.initial_opinion == "uniform" or cfg.groups == 1:
        opinion = rng.uniform(lo, hi, n)
    else:
        centres = lo + (hi - lo) * (np.arange(cfg.groups) + 0.5) / cfg.groups
        opinion = np.clip(centres[group] + cfg.opinion_spread * rng.standard_normal(n), lo, hi)
    rate = _rates(cfg, n, rng)
    rate[kind == 1] *= cfg.influencer_rate_factor
    rate[kind == 2] *= cfg.troll_rate_factor
    return Population(
        opinion=opinion.astype(np.float64),
        group=group,
        kind=kind,
        rate=rate.astype(np.float64),
        negativity=np.full(n, 0.0),  # np.full writes its pages now (np.zeros would
        neg_time=np.full(n, 0.0),  # leave page faults to the first events)
        active=np.ones(n, dtype=np.bool_),
        last_actor=np.full(n, -1, dtype=np.int64),
    )


class SignedAgent(mesa.Agent):
    """A person in the signed network; a typed view into :class:`Population`.

    The model's agent registry (``model.agent_list``, :mod:`sim.engine.agentset`) makes
    these views and registers them, one per person; ``unique_id`` is ``index + 1`` (Mesa
    numbers agents from 1, in the order they were made: here, the people's order).

    Args:
        model: The model.
        index: The person's row in the population arrays.
    """

    kind: ClassVar[str] = "citizen"

    def __init__(self, model: SocialModel, index: int) -> None:
        # Not mesa.Agent.__init__: that draws an id and registers the agent with the model,
        # which the registry does for every person at once.
        self.model = model
        self._index = int(index)
        self.pos = None

    @property
    def index(self) -> int:
        """The person's row in the population arrays (agent id in the database)."""
        return self._index

    @property
    def unique_id(self) -> int:  # type: ignore[override]
        """Mesa's id: ``index + 1``."""
        return self._index + 1

    @property
    def _pop(self) -> Population:
        return self.model.population  # type: ignore[attr-defined, no-any-return]

    @property
    def opinion(self) -> float:
        """Current opinion."""
        return float(self._pop.opinion[self.index])

    @opinion.setter
    def opinion(self, value: float) -> None:
        self._pop.opinion[self.index] = value

    @property
    def group(self) -> int:
        """Group index."""
        return int(self._pop.group[self.index])

    @property
    def rate(self) -> float:
        """Base activity rate (acts per day)."""
        return float(self._pop.rate[self.index])

    @property
    def active(self) -> bool:
        """False while banned or suspended."""
        return bool(self._pop.active[self.index])

    def negativity_at(self, t: float, decay: float) -> float:
        """Negativity at time ``t`` given the decay time constant (days)."""
        pop = self._pop
        return float(pop.negativity[self.index] * np.exp(-(t - pop.neg_time[self.index]) / decay))


class Citizen(SignedAgent):
    """An ordinary user: acts on followees, replies, sometimes strangers."""

    kind = "citizen"


class Influencer(SignedAgent):
    """A highly active account that many agents follow."""

    kind = "influencer"


class Troll(SignedAgent):
    """Seeks out-group targets and acts mostly negatively; never changes its opinion."""

    kind = "troll"


class CounterSpeaker(SignedAgent):
    """Replies positively to recent targets of negative acts (counter-speech)."""

    kind = "counter_speaker"


_NO_KEYS = np.zeros(0, dtype=np.int64)

#: Agent class of each kind code.
AGENT_CLASSES: tuple[type[SignedAgent], ...] = (Citizen, Influencer, Troll, CounterSpeaker)


class AgentViews:
    """Every person's agent by index, made on first access; the model's agent registry.

    Args:
        model: The model whose ``population`` the agents view.
    """

    def __init__(self, model: SocialModel) -> None:
        self.model = model
        self.population = model.population
        self.n = self.population.n
        self.n_registered = self.n
        #: ``None`` while every person is registered (no removal yet).
        self.registered: np.ndarray | None = None
        #: Other Mesa agents registered with the model, by (negative) key, in order.
        self.extras: dict[int, mesa.Agent] = {}
        self._extra_key: dict[mesa.Agent, int] = {}
        self._cache: dict[int, SignedAgent] = {}
        self._next_uid = self.n + 1

    def __len__(self) -> int:
        """Number of people."""
        return self.n

    def __getitem__(self, i: int) -> SignedAgent:
        """Person ``i``'s agent (negative indices count from the end)."""
        i = operator.index(i)
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"agent index {i} out of range 0..{self.n - 1}")
        return self.view(i)

    def __iter__(self) -> Iterator[SignedAgent]:
        """Every person's agent, in index order."""
        return map(self.view, range(self.n))

    def view(self, i: int) -> SignedAgent:
        """Person ``i``'s agent, of the class of its current kind (made once, then kept)."""
        cls = AGENT_CLASSES[self.population.kind[i]]
        agent = self._cache.get(i)
        if agent is None or type(agent) is not cls:
            agent = cls(self.model, i)
            self._cache[i] = agent
        return agent

    def agent(self, key: int) -> mesa.Agent:
        """The agent of a key (a person's index, or a negative key of another agent)."""
        return self.view(key) if key >= 0 else self.extras[key]

    def key_of(self, agent: Any) -> int | None:
        """The key of a current member of the model (``None`` for anything else)."""
        if isinstance(agent, SignedAgent):
            i = agent.index
            if (agent.model is self.model and 0 <= i < self.n and self._cache.get(i) is agent
                    and type(agent) is AGENT_CLASSES[self.population.kind[i]]
                    and self.alive(i)):
                return i
            return None
        return self._extra_key.get(agent)

    def alive(self, key: int) -> bool:
        """Whether a key's agent is registered with the model."""
        if key < 0:
            return key in self.extras
        return self.registered is None or bool(self.registered[key])

    def alive_mask(self, keys: np.ndarray) -> np.ndarray | None:
        """Which keys are registered (``None``: all of them)."""
        people = keys >= 0
        everyone = bool(people.all())
        if self.registered is None and everyone:
            return None
        ok = np.ones(keys.shape[0], dtype=np.bool_)
        if self.registered is not None:
            ok[people] = self.registered[keys[people]]
        if not everyone:
            others = ~people
            ok[others] = np.isin(keys[others], np.fromiter(self.extras, np.int64, len(self.extras)))
        return ok

    def live_keys(self, agent_type: type | None = None) -> np.ndarray:
        """Keys of the registered agents (of exactly ``agent_type``), in model order."""
        reg = self.registered
        if agent_type is None:
            people = np.arange(self.n, dtype=np.int64) if reg is None else np.flatnonzero(reg)
        elif agent_type in AGENT_CLASSES:
            mask = self.population.kind == AGENT_CLASSES.index(agent_type)
            people = np.flatnonzero(mask if reg is None else mask & reg)
        else:
            people = _NO_KEYS
        others = [k for k, a in self.extras.items() if agent_type is None or type(a) is agent_type]
        return np.concatenate((people, np.array(others, dtype=np.int64))) if others else people

    def type_mask(self, keys: np.ndarray, agent_type: type) -> np.ndarray:
        """Which keys' agents are instances of ``agent_type``."""
        by_code = np.array([issubclass(cls, agent_type) for cls in AGENT_CLASSES])
        people = keys >= 0
        ok = np.zeros(keys.shape[0], dtype=np.bool_)
        ok[people] = by_code[self.population.kind[keys[people]]]
        for j in np.flatnonzero(~people).tolist():
            ok[j] = isinstance(self.extras.get(int(keys[j])), agent_type)
        return ok

    def kind_shadowed(self) -> bool:
        """Whether a user set an instance attribute ``kind`` on some agent."""
        return any("kind" in vars(a) for a in self._cache.values())

    # -- registration (Mesa's Model.register_agent / deregister_agent) ----------------
    def register(self, agent: mesa.Agent) -> None:
        """Register a person's agent again, or another Mesa agent (a new key and id)."""
        if isinstance(agent, SignedAgent) and agent.model is self.model:
            i = agent.index
            if self.registered is not None and not self.registered[i]:
                self.registered[i] = True
                self.n_registered += 1
            self._cache[i] = agent
            return
        if agent in self._extra_key:
            return
        key = -1 - len(self._extra_key)
        while key in self.extras:
            key -= 1
        agent.unique_id = self._next_uid  # ids 1..n are the people's
        self._next_uid += 1
        self.extras[key] = agent
        self._extra_key[agent] = key

    def deregister(self, agent: mesa.Agent) -> None:
        """Remove an agent from the model's sets (``KeyError`` if it is not in them).

        A person's agent leaves Mesa's sets only: the person still acts in the
        simulation (ban it through ``population.active`` to stop that).
        """
        key = self.key_of(agent)
        if key is None:
            raise KeyError(agent)
        if key < 0:
            del self.extras[key]
            del self._extra_key[agent]
            return
        if self.registered is None:
            self.registered = np.ones(self.n, dtype=np.bool_)
        self.registered[key] = False
        self.n_registered -= 1
        del self._cache[key]

    def deregister_all(self) -> None:
        """Remove every agent (Mesa's ``Model.remove_all_agents``)."""
        self.registered = np.zeros(self.n, dtype=np.bool_)
        self.n_registered = 0
        self._cache.clear()
        for agent in list(self.extras.values()):
            agent.remove()
