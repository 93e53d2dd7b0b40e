"""Interventions: a registry from the names used in scenario files to their classes.

An intervention starts and stops on the SimPy clock. It acts through the model's policy
vector (read by the kernel at every act), the agents' ``active`` flags and rates, or the
agents' kinds. Every action it takes is logged in the ``interventions`` table; acts it
blocks stay in ``interactions`` with ``delivered = false`` and ``blocked_by`` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from sim.agents import Citizen, CounterSpeaker
from sim.config import AGENT_KINDS
from sim.errors import SignsimError
from sim.kernel import CITIZEN, COUNTER, KIND_CODES, Q

if TYPE_CHECKING:
    from sim.engine import SocialModel
    from sim.scenario import InterventionSpec

__all__ = [
    "REGISTRY",
    "Ban",
    "Bridging",
    "CounterSpeech",
    "Friction",
    "Intervention",
    "Moderation",
    "RateLimit",
]


class Intervention:
    """Base class: holds the spec; subclasses implement ``start`` and ``stop``."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = object

    def __init__(self, spec: InterventionSpec) -> None:
        self.spec = spec
        self.params = spec.params

    def start(self, model: SocialModel) -> None:
        """Take effect at ``spec.start``."""
        raise NotImplementedError

    def stop(self, model: SocialModel) -> None:
        """Stop taking effect at ``spec.end``."""
        raise NotImplementedError


@dataclass
class ModerationParams:
    """Moderation settings.

    Attributes:
        recall: Share of negative acts detected and blocked.
        false_positive_rate: Share of positive acts wrongly blocked.
        strikes: Blocked acts that get an agent suspended (0: never suspend).
        suspension_days: Length of a suspension.
    """

    recall: float = field(default=0.7, metadata={"min": 0.0, "max": 1.0})
    false_positive_rate: float = field(default=0.01, metadata={"min": 0.0, "max": 1.0})
    strikes: int = field(default=3, metadata={"min": 0})
    suspension_days: float = field(default=2.0, metadata={"min": 0.0})


class Moderation(Intervention):
    """Detects negative acts with a recall and a false-positive rate and blocks them."""

    name = "moderation"
    Params = ModerationParams

    def start(self, model: SocialModel) -> None:  # noqa: D102
        p = self.params
        model.policy[[Q.MOD_ON, Q.MOD_RECALL, Q.MOD_FPR, Q.MOD_STRIKES, Q.MOD_SUSPEND]] = [
            1.0, p.recall, p.false_positive_rate, p.strikes, p.suspension_days]
        model.log(self.name, "start", detail=f"recall={p.recall} fpr={p.false_positive_rate}")

    def stop(self, model: SocialModel) -> None:  # noqa: D102
        model.policy[Q.MOD_ON] = 0.0
        model.log(self.name, "stop")


@dataclass
class FrictionParams:
    """Friction prompt settings.

    Attributes:
        share: Share of would-be negative acts that the author reconsiders and withdraws.
    """

    share: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0})


class Friction(Intervention):
    """A prompt before posting: a share of would-be negative acts are withdrawn."""

    name = "friction"
    Params = FrictionParams

    def start(self, model: SocialModel) -> None:  # noqa: D102
        model.policy[Q.FRICTION] = self.params.share
        model.log(self.name, "start", detail=f"share={self.params.share}")

    def stop(self, model: SocialModel) -> None:  # noqa: D102
        model.policy[Q.FRICTION] = 0.0
        model.log(self.name, "stop")


@dataclass
class BridgingParams:
    """Bridging recommendation settings.

    Attributes:
        share: Share of acts whose target is a recommended out-group agent with the
            most similar opinion among a few random candidates.
    """

    share: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})


class Bridging(Intervention):
    """Recommends out-group agents with similar opinions."""

    name = "bridging"
    Params = BridgingParams

    def start(self, model: SocialModel) -> None:  # noqa: D102
        model.policy[Q.BRIDGING] = self.params.share
        model.log(self.name, "start", detail=f"share={self.params.share}")

    def stop(self, model: SocialModel) -> None:  # noqa: D102
        model.policy[Q.BRIDGING] = 0.0
        model.log(self.name, "stop")


@dataclass
class RateLimitParams:
    """Rate limit settings.

    Attributes:
        cap: Acts per calendar day an agent may make; further acts are blocked.
        kinds: Agent kinds the cap applies to (empty: all kinds).
    """

    cap: float = field(default=5.0, metadata={"min_exclusive": 0.0})
    kinds: list[str] = field(default_factory=list)


def _kind_codes(kinds: list[str], where: str) -> list[int]:
    for k in kinds:
        if k not in AGENT_KINDS:
            raise SignsimError(f"{where}: unknown agent kind '{k}'; use one of: "
                               + ", ".join(AGENT_KINDS) + ".")
    return [KIND_CODES.index(k) for k in kinds] if kinds else list(range(len(KIND_CODES)))


class RateLimit(Intervention):
    """Caps acts per day for the chosen kinds."""

    name = "rate_limit"
    Params = RateLimitParams

    def __init__(self, spec: InterventionSpec) -> None:
        super().__init__(spec)
        self.codes = _kind_codes(self.params.kinds, "rate_limit.kinds")

    def start(self, model: SocialModel) -> None:  # noqa: D102
        for c in self.codes:
            model.policy[Q.RATE_CAP + c] = self.params.cap
        model.log(self.name, "start", detail=f"cap={self.params.cap}/day kinds={self.codes}")

    def stop(self, model: SocialModel) -> None:  # noqa: D102
        for c in self.codes:
            model.policy[Q.RATE_CAP + c] = 0.0
        model.log(self.name, "stop")


@dataclass
class BanParams:
    """Ban settings.

    Attributes:
        kind: Ban every agent of this kind ("" to use ``top_k``).
        top_k: Ban the k agents with the highest negativity at the start time.
    """

    kind: str = ""
    top_k: int = field(default=0, metadata={"min": 0})


class Ban(Intervention):
    """Removes agents (of a kind, or the top-k by negativity); lifted at ``end`` if given."""

    name = "ban"
    Params = BanParams

    def __init__(self, spec: InterventionSpec) -> None:
        super().__init__(spec)
        p = self.params
        if bool(p.kind) == bool(p.top_k):
            raise SignsimError("ban: give exactly one of 'kind' or 'top_k'.")
        if p.kind:
            _kind_codes([p.kind], "ban.kind")
        self.banned = np.zeros(0, dtype=np.int64)

    def start(self, model: SocialModel) -> None:  # noqa: D102
        pop = model.population
        if self.params.kind:
            chosen = np.flatnonzero((pop.kind == KIND_CODES.index(self.params.kind)) & pop.active)
        else:
            neg = pop.negativity * np.exp(-(model.env.now - pop.neg_time)
                                          / model.config.dynamics.negativity_decay)
            order = np.lexsort((np.arange(pop.n), -neg))
            chosen = np.sort(order[: self.params.top_k])
        pop.active[chosen] = False
        self.banned = chosen
        model.rates_changed()
        for agent in chosen.tolist():
            model.log(self.name, "ban", agent)

    def stop(self, model: SocialModel) -> None:  # noqa: D102
        model.population.active[self.banned] = True
        model.rates_changed()
        model.log(self.name, "unban", count=len(self.banned))


@dataclass
class CounterSpeechParams:
    """Counter-speech settings.

    Attributes:
        agents: Citizens recruited as counter-speakers at the start.
        rate_factor: Their activity rate is multiplied by this.
    """

    agents: int = field(default=10, metadata={"min": 1})
    rate_factor: float = field(default=3.0, metadata={"min_exclusive": 0.0})


class CounterSpeech(Intervention):
    """Recruits citizens who answer targets of attacks with positive replies."""

    name = "counter_speech"
    Params = CounterSpeechParams

    def start(self, model: SocialModel) -> None:  # noqa: D102
        pop = model.population
        citizens = np.flatnonzero((pop.kind == CITIZEN) & pop.active)
        k = min(self.params.agents, citizens.shape[0])
        self.recruits = np.sort(model.rng.choice(citizens, size=k, replace=False))
        for i in self.recruits.tolist():
            model.agent_list[i].remove()
            model.agent_list[i] = CounterSpeaker(model, i)
        pop.kind[self.recruits] = COUNTER
        pop.rate[self.recruits] *= self.params.rate_factor
        model.rates_changed()
        for i in self.recruits.tolist():
            model.log(self.name, "recruit", i)

    def stop(self, model: SocialModel) -> None:  # noqa: D102
        pop = model.population
        for i in self.recruits.tolist():
            model.agent_list[i].remove()
            model.agent_list[i] = Citizen(model, i)
        pop.kind[self.recruits] = CITIZEN
        pop.rate[self.recruits] /= self.params.rate_factor
        model.rates_changed()
        model.log(self.name, "stop", count=len(self.recruits))


#: Intervention classes by the name used in scenario files.
REGISTRY: dict[str, type[Intervention]] = {
    cls.name: cls for cls in (Moderation, Friction, Bridging, RateLimit, Ban, CounterSpeech)
}
