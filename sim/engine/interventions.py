"""Interventions: a registry from the names used in scenario files to their classes.

An intervention starts and stops on the SimPy clock. It acts through the model's policy
vector (read by the kernel at every act), the agents' ``active`` flags and rates, or the
agents' kinds. Every action it takes is logged in the ``interventions`` table; acts it
blocks stay in ``interactions`` with ``delivered = false`` and ``blocked_by`` set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from sim.config import (
    BanParams,
    BridgingParams,
    CounterSpeechParams,
    FrictionParams,
    ModerationParams,
    RateLimitParams,
)
from sim.contract import CITIZEN, COUNTER, KIND_CODES
from sim.engine.kernel import Q

if TYPE_CHECKING:
    from sim.engine.model import SocialModel
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
        check = getattr(self.params, "check", None)
        if check is not None:
            check()

    def start(self, model: SocialModel) -> None:
        """Take effect at ``spec.start``."""
        raise NotImplementedError

    def stop(self, model: SocialModel) -> None:
        """Stop taking effect at ``spec.end``."""
        raise NotImplementedError


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


def _kind_codes(kinds: list[str]) -> list[int]:
    return [KIND_CODES.index(k) for k in kinds] if kinds else list(range(len(KIND_CODES)))


class RateLimit(Intervention):
    """Caps acts per day for the chosen kinds."""

    name = "rate_limit"
    Params = RateLimitParams

    def __init__(self, spec: InterventionSpec) -> None:
        super().__init__(spec)
        self.codes = _kind_codes(self.params.kinds)

    def start(self, model: SocialModel) -> None:  # noqa: D102
        for c in self.codes:
            model.policy[Q.RATE_CAP + c] = self.params.cap
        model.log(self.name, "start", detail=f"cap={self.params.cap}/day kinds={self.codes}")

    def stop(self, model: SocialModel) -> None:  # noqa: D102
        for c in self.codes:
            model.policy[Q.RATE_CAP + c] = 0.0
        model.log(self.name, "stop")


class Ban(Intervention):
    """Removes agents (of a kind, or the top-k by negativity); lifted at ``end`` if given."""

    name = "ban"
    Params = BanParams

    def __init__(self, spec: InterventionSpec) -> None:
        super().__init__(spec)
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


class CounterSpeech(Intervention):
    """Recruits citizens who answer targets of attacks with positive replies."""

    name = "counter_speech"
    Params = CounterSpeechParams

    def start(self, model: SocialModel) -> None:  # noqa: D102
        pop = model.population
        citizens = np.flatnonzero((pop.kind == CITIZEN) & pop.active)
        k = min(self.params.agents, citizens.shape[0])
        self.recruits = np.sort(model.rng.choice(citizens, size=k, replace=False))
        pop.kind[self.recruits] = COUNTER
        pop.rate[self.recruits] *= self.params.rate_factor
        model.rates_changed()
        for i in self.recruits.tolist():
            model.log(self.name, "recruit", i)

    def stop(self, model: SocialModel) -> None:  # noqa: D102
        pop = model.population
        pop.kind[self.recruits] = CITIZEN
        pop.rate[self.recruits] /= self.params.rate_factor
        model.rates_changed()
        model.log(self.name, "stop", count=len(self.recruits))


#: Intervention classes by the name used in scenario files.
REGISTRY: dict[str, type[Intervention]] = {
    cls.name: cls for cls in (Moderation, Friction, Bridging, RateLimit, Ban, CounterSpeech)
}
