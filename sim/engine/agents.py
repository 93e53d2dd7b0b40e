"""Agents: Mesa agent types over the population's columnar state.

Each simulated person is a :class:`mesa.Agent` (so users get Mesa's ``AgentSet``
selection, grouping and shuffling), but its state lives in the numpy arrays of
:class:`Population`, which the compiled kernel updates in place. An agent is therefore a
typed view: ``agent.opinion`` reads and writes ``population.opinion[agent.index]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import mesa
import numpy as np

from sim.config import PopulationConfig
from sim.contract import KIND_CODES

if TYPE_CHECKING:
    from sim.engine.model import SocialModel

__all__ = [
    "AGENT_CLASSES",
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
    """A person in the signed network; a typed view into :class:`Population`."""

    kind: ClassVar[str] = "citizen"

    def __init__(self, model: SocialModel, index: int) -> None:
        super().__init__(model)
        self.index = index

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


#: Agent class of each kind code.
AGENT_CLASSES: tuple[type[SignedAgent], ...] = (Citizen, Influencer, Troll, CounterSpeaker)
