"""Typed settings of one simulation: population, network, dynamics, recording.

Every field has a default, a type, and where it matters a range (``min``, ``max``,
``min_exclusive`` metadata; every number must also be finite); :mod:`sim.scenario`
builds these from TOML tables and reports bad values with the key path, and
:mod:`sim.limits` refuses runs too large for the machine or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sim.errors import SignsimError

__all__ = [
    "AGENT_KINDS",
    "INTERVENTION_PARAMS",
    "BanParams",
    "BridgingParams",
    "CounterSpeechParams",
    "FrictionParams",
    "ModerationParams",
    "RateLimitParams",
    "MAX_AGENTS",
    "MAX_MODEL_CANDIDATES",
    "DynamicsConfig",
    "NetworkConfig",
    "PopulationConfig",
    "RecordingConfig",
    "SimConfig",
    "check_kinds",
]

AGENT_KINDS = ("citizen", "influencer", "troll", "counter_speaker")

#: Most agents of one run (the resource check of :mod:`sim.limits` may refuse fewer).
MAX_AGENTS = 100_000_000

#: Most candidates the learned dynamics scores per act: it draws ``candidates - 1``
#: uniforms from the kernel's columns ``U_TRIES .. NU - 1`` (``sim.engine.kernel``: NU = 16,
#: U_TRIES = 8, so at most 8 draws besides the rule's own proposal).
MAX_MODEL_CANDIDATES = 9


def _kinds_default() -> dict[str, float]:
    return {"citizen": 0.95, "influencer": 0.03, "troll": 0.02}


@dataclass
class PopulationConfig:
    """Who the agents are.

    Attributes:
        n_agents: Number of agents (at least 2).
        groups: Number of groups (communities); agents are split evenly.
        kinds: Share of each agent kind (must sum to 1); kinds are
            citizen, influencer, troll, counter_speaker.
        opinion_range: Bounds of the opinion interval.
        initial_opinion: ``uniform`` over the interval, or ``groups``: group g centred
            at evenly spaced points with normal spread ``opinion_spread`` (clipped).
        opinion_spread: Standard deviation of opinions around a group centre.
        mean_rate: Mean activity rate (acts per day) of a citizen.
        rate_distribution: ``lognormal`` (heavy-tailed), ``pareto`` or ``constant``.
        rate_sigma: Lognormal sigma, or Pareto shape alpha (> 1).
        influencer_rate_factor: Activity multiplier of influencers.
        troll_rate_factor: Activity multiplier of trolls.
        influencer_attraction: How much more likely an influencer is to be followed.
    """

    n_agents: int = field(default=1000, metadata={"min": 2, "max": MAX_AGENTS})
    groups: int = field(default=2, metadata={"min": 1, "max": 1_000_000})
    kinds: dict[str, float] = field(default_factory=_kinds_default)
    opinion_range: list[float] = field(default_factory=lambda: [-1.0, 1.0])
    initial_opinion: Literal["uniform", "groups"] = "groups"
    opinion_spread: float = field(default=0.35, metadata={"min": 0.0, "max": 1e6})
    mean_rate: float = field(default=1.0, metadata={"min_exclusive": 0.0, "max": 1e6})
    rate_distribution: Literal["lognormal", "pareto", "constant"] = "lognormal"
    rate_sigma: float = field(default=1.0, metadata={"min": 0.0, "max": 10.0})
    influencer_rate_factor: float = field(default=5.0, metadata={"min": 0.0, "max": 1e4})
    troll_rate_factor: float = field(default=3.0, metadata={"min": 0.0, "max": 1e4})
    influencer_attraction: float = field(default=20.0, metadata={"min": 0.0, "max": 1e6})


@dataclass
class NetworkConfig:
    """The initial follow network.

    Attributes:
        kind: ``sbm`` (stochastic block model with homophily, degree-corrected so
            influencers gain followers), ``barabasi_albert``, ``watts_strogatz``,
            ``edge_list`` (a file of ``src,dst`` lines) or ``none``.
        mean_degree: Mean number of accounts each agent follows (sbm).
        homophily: Probability that a follow stays inside the agent's group (sbm).
        ba_m: Accounts each new node follows (barabasi_albert).
        ws_k: Ring neighbours followed (watts_strogatz, even).
        ws_p: Rewiring probability (watts_strogatz).
        path: Edge list file (edge_list); relative paths resolve from the scenario file.
        follow_slack: Room for new follows per agent beyond the initial out-degree.
    """

    kind: Literal["sbm", "barabasi_albert", "watts_strogatz", "edge_list", "none"] = "sbm"
    mean_degree: float = field(default=10.0, metadata={"min": 0.0, "max": 10_000.0})
    homophily: float = field(default=0.8, metadata={"min": 0.0, "max": 1.0})
    ba_m: int = field(default=3, metadata={"min": 1, "max": 10_000})
    ws_k: int = field(default=10, metadata={"min": 2, "max": 10_000})
    ws_p: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    path: str = ""
    follow_slack: int = field(default=8, metadata={"min": 0, "max": 1024})


@dataclass
class DynamicsConfig:
    """Mechanistic decision rules (see :mod:`sim.engine.dynamics` for the equations).

    Attributes:
        confidence: Confidence bound epsilon: contacts closer than this lean positive.
        attraction: Step mu toward the other after a positive contact.
        repulsion: Step away from the other after a negative contact.
        p_reply: Probability of replying to whoever last acted on me.
        p_exposure: Probability of acting on a random (non-followed) agent.
        sign_temperature: Softness of the sign rule in opinion units; 0 makes the sign
            deterministic (positive exactly when the distance is below ``confidence``).
        balance: Weight of structural balance over common signed ties.
        contagion: Weight of the actor's own negativity on the odds of a negative act.
        base_negativity: Constant added to the logit of a negative act.
        negativity_gain: Rise of negativity per unit of negative weight received.
        negativity_relief: Fractional fall of negativity per unit of positive weight.
        negativity_decay: Decay time constant of negativity, in days (inertia).
        follow_prob: Probability of following an agent after a positive contact.
        unfollow_prob: Probability of unfollowing after a negative contact.
        troll_negativity: Probability that a troll's act on an out-group agent is negative.
        troll_outgroup: Probability that a troll looks for an out-group target.
        weight_scaled_updates: Scale opinion steps by the interaction weight.
        ties: Signed ties remembered per agent (for structural balance).
        model: Checkpoint of a trained model (``signsim train``) that decides targets,
            signs and weights instead of the rules above (learned dynamics); "" for none.
            Relative paths resolve from the scenario file.
        model_candidates: Targets the learned model scores per act.
        twin: A signed edge list (SNAP format, as ``signsim import`` reads) whose learned
            twin runs the arm instead of the rules: the twin learns the events before
            ``twin_split`` and generates the ``horizon`` days after it, and the
            population is the network's nodes (``population`` settings do not apply).
            Relative paths resolve from the scenario file; "" for none.
        twin_split: Share of the edge list's events the twin learns from.
    """

    confidence: float = field(default=0.5, metadata={"min": 0.0, "max": 1e6})
    attraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    repulsion: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})
    p_reply: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})
    p_exposure: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})
    sign_temperature: float = field(default=0.15, metadata={"min": 0.0, "max": 1e6})
    balance: float = field(default=1.0, metadata={"min": 0.0, "max": 1e6})
    contagion: float = field(default=2.0, metadata={"min": 0.0, "max": 1e6})
    base_negativity: float = field(default=-1.0, metadata={"min": -1e6, "max": 1e6})
    negativity_gain: float = field(default=0.3, metadata={"min": 0.0, "max": 1e6})
    negativity_relief: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    negativity_decay: float = field(default=3.0, metadata={"min": 1e-6, "max": 1e9})
    follow_prob: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})
    unfollow_prob: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})
    troll_negativity: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    troll_outgroup: float = field(default=0.8, metadata={"min": 0.0, "max": 1.0})
    weight_scaled_updates: bool = True
    ties: int = field(default=16, metadata={"min": 1, "max": 256})
    model: str = ""
    model_candidates: int = field(default=8, metadata={"min": 1, "max": MAX_MODEL_CANDIDATES})
    twin: str = ""
    twin_split: float = field(default=0.7, metadata={"min": 0.05, "max": 0.95})


@dataclass
class RecordingConfig:
    """What is written besides interactions.

    Attributes:
        metric_cadence: Days between metric rows (0 turns metrics off).
        metric_window: Sliding window of interactions the metrics look at, in days.
        snapshot_cadence: Days between opinion snapshots (0 turns them off).
        snapshot_sample: Agents per snapshot (0 = all); a fixed seeded sample.
        flush_rows: Interaction rows per database transaction (smaller: shorter pipeline
            latency and less lost on a kill; larger: fewer commits).
        batch_events: Events drawn per engine step. A step never crosses a scheduled
            event, so this changes speed and the random stream, not the model.
    """

    metric_cadence: float = field(default=1.0, metadata={"min": 0.0, "max": 1e7})
    metric_window: float = field(default=1.0, metadata={"min_exclusive": 0.0, "max": 1e7})
    snapshot_cadence: float = field(default=0.0, metadata={"min": 0.0, "max": 1e7})
    snapshot_sample: int = field(default=1000, metadata={"min": 0, "max": MAX_AGENTS})
    flush_rows: int = field(default=20_000, metadata={"min": 1, "max": 1_000_000})
    batch_events: int = field(default=4096, metadata={"min": 1, "max": 1 << 20})


@dataclass
class SimConfig:
    """Everything one run needs besides its seed and interventions."""

    population: PopulationConfig = field(default_factory=PopulationConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    horizon: float = 10.0


# Interventions' settings (the interventions themselves live in sim.engine.interventions).
# A settings class may have a ``check()`` method for combinations of values; scenario
# parsing and the intervention both call it.


def check_kinds(kinds: list[str], where: str) -> None:
    """Refuse agent kinds not in :data:`AGENT_KINDS` (``where`` names the setting)."""
    for k in kinds:
        if k not in AGENT_KINDS:
            raise SignsimError(f"{where}: unknown agent kind '{k}'; use one of: "
                               + ", ".join(AGENT_KINDS) + ".")


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


@dataclass
class FrictionParams:
    """Friction prompt settings.

    Attributes:
        share: Share of would-be negative acts that the author reconsiders and withdraws.
    """

    share: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0})


@dataclass
class BridgingParams:
    """Bridging recommendation settings.

    Attributes:
        share: Share of acts whose target is a recommended out-group agent with the
            most similar opinion among a few random candidates.
    """

    share: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})


@dataclass
class RateLimitParams:
    """Rate limit settings.

    Attributes:
        cap: Acts per calendar day an agent may make; further acts are blocked.
        kinds: Agent kinds the cap applies to (empty: all kinds).
    """

    cap: float = field(default=5.0, metadata={"min_exclusive": 0.0})
    kinds: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Refuse unknown agent kinds."""
        check_kinds(self.kinds, "rate_limit.kinds")


@dataclass
class BanParams:
    """Ban settings.

    Attributes:
        kind: Ban every agent of this kind ("" to use ``top_k``).
        top_k: Ban the k agents with the highest negativity at the start time.
    """

    kind: str = ""
    top_k: int = field(default=0, metadata={"min": 0})

    def check(self) -> None:
        """Exactly one of ``kind`` and ``top_k``; a known kind."""
        if bool(self.kind) == bool(self.top_k):
            raise SignsimError("ban: give exactly one of 'kind' or 'top_k'.")
        if self.kind:
            check_kinds([self.kind], "ban.kind")


@dataclass
class CounterSpeechParams:
    """Counter-speech settings.

    Attributes:
        agents: Citizens recruited as counter-speakers at the start.
        rate_factor: Their activity rate is multiplied by this.
    """

    agents: int = field(default=10, metadata={"min": 1})
    rate_factor: float = field(default=3.0, metadata={"min_exclusive": 0.0})


#: Settings class of each intervention, by the name used in scenario files.
INTERVENTION_PARAMS: dict[str, type] = {
    "moderation": ModerationParams,
    "friction": FrictionParams,
    "bridging": BridgingParams,
    "rate_limit": RateLimitParams,
    "ban": BanParams,
    "counter_speech": CounterSpeechParams,
}
