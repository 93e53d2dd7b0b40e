"""Mesa's own tools on signsim: a DataCollector of signsim's metrics and a sweepable model.

:class:`MesaSocialModel` is a :class:`~sim.engine.model.SocialModel` built from keyword
arguments only (a scenario file and arm, a seed, and overrides such as the population size,
the confidence bound or the share of the arm's interventions), so that
``mesa.batch_run`` can sweep it and Mesa's Solara visualisation can rebuild it. It carries
a ``mesa.DataCollector`` (:func:`make_datacollector`) that the recorder fills at every metric
tick: the model reporters are the values of :func:`sim.engine.metrics.compute_window_metrics` that
the same tick writes to a stored run's ``metrics`` table, the agent reporters are each
agent's opinion, negativity and kind.

One Mesa step is one metric interval (``recording.metric_cadence``, one day by default):
Step ``s`` of the DataCollector is the tick at ``t = s * cadence`` (the last one at the
horizon), Step 0 is collected when the model is built, and the step after the horizon
sets ``running = False``. The clock stops at the same times as a stored run
(:func:`sim.engine.simulate.progress_step`) and the model draws its randomness exactly as
:func:`sim.engine.simulate.run_into_store` does, so a model and a stored run of the same
settings and seed have identical metric values.

Stored runs never get a DataCollector (``SocialModel.datacollector`` is ``None``): the
database is their log. This model keeps no events in memory: only the DataCollector's
rows (one per tick, plus one per agent and tick with ``collect_agents``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import mesa
import numpy as np

from sim.config import SimConfig
from sim.engine.agents import SignedAgent
from sim.engine.metrics import METRIC_NAMES
from sim.engine.model import SocialModel
from sim.engine.recording import Recorder
from sim.engine.simulate import progress_step
from sim.errors import SignsimError
from sim.plugins import learned_dynamics
from sim.scenario import InterventionSpec, build_dataclass

__all__ = ["AGENT_REPORTERS", "MODEL_REPORTERS", "MesaSocialModel", "make_datacollector"]

_WHERE = "model parameters"


def _metric(name: str, model: mesa.Model) -> float:
    """The value of metric ``name`` at the tick being collected (NaN where undefined)."""
    return float(model.recorder.latest_metrics.get(name, math.nan))  # type: ignore[attr-defined]


def _time(model: mesa.Model) -> float:
    return float(model.env.now)  # type: ignore[attr-defined]


def _seed(model: mesa.Model) -> int:
    return int(model.seed)  # type: ignore[attr-defined]


def _opinion(agent: SignedAgent) -> float:
    return agent.opinion


def _negativity(agent: SignedAgent) -> float:
    model = agent.model
    return agent.negativity_at(model.env.now,  # type: ignore[attr-defined]
                               model.config.dynamics.negativity_decay)  # type: ignore[attr-defined]


def _kind(agent: SignedAgent) -> str:
    return agent.kind


#: Model reporters: simulated time ``t`` (days), the seed, and every metric of
#: :data:`sim.engine.metrics.METRIC_NAMES` as computed by the recorder's tick.
MODEL_REPORTERS: dict[str, Any] = {
    "t": _time,
    "seed": _seed,
    **{name: partial(_metric, name) for name in METRIC_NAMES},
}

#: Agent reporters: opinion, negativity (decayed to the tick's time) and kind.
AGENT_REPORTERS: dict[str, Any] = {"opinion": _opinion, "negativity": _negativity, "kind": _kind}


def make_datacollector(collect_agents: bool = True) -> mesa.DataCollector:
    """A DataCollector of signsim's metrics (and, optionally, per-agent state).

    Set it as ``model.datacollector`` of a model whose recorder computes metrics
    (``recording.metric_cadence > 0``); the recorder collects it at every metric tick.

    Args:
        collect_agents: Also collect :data:`AGENT_REPORTERS` (one row per agent and tick).

    Returns:
        The DataCollector.
    """
    return mesa.DataCollector(model_reporters=dict(MODEL_REPORTERS),
                              agent_reporters=dict(AGENT_REPORTERS) if collect_agents else None)


def _load(scenario: str | None, arm: str | None) -> tuple[SimConfig, list[InterventionSpec]]:
    if scenario is None:
        if arm is not None:
            raise SignsimError(f"{_WHERE}: arm '{arm}' needs a scenario file (scenario=...).")
        return SimConfig(), []
    from sim.scenario import load_scenario

    loaded = load_scenario(scenario)
    chosen = loaded.arm(arm or loaded.baseline)
    return chosen.config, list(chosen.interventions)


def _with_share(specs: list[InterventionSpec], share: float) -> list[InterventionSpec]:
    """The arm's interventions with ``share`` set on each one that has a share parameter."""
    out: list[InterventionSpec] = []
    for spec in specs:
        if hasattr(spec.params, "share"):
            params = build_dataclass(type(spec.params), {"share": share}, _WHERE, spec.type,
                                     spec.params)
            spec = InterventionSpec(spec.type, spec.start, spec.end, params)
        out.append(spec)
    if not any(hasattr(s.params, "share") for s in specs):
        names = ", ".join(s.type for s in specs) or "none"
        raise SignsimError(f"{_WHERE}: intervention_share={share!r}: the arm has no intervention "
                           f"with a share (friction, bridging); its interventions: {names}.")
    return out


def _settings(
    scenario: str | None, arm: str | None, n_agents: int | None, horizon: float | None,
    confidence: float | None, intervention_share: float | None,
) -> tuple[SimConfig, list[InterventionSpec]]:
    """Settings of a scenario arm (or the defaults) with the keyword overrides applied."""
    config, specs = _load(scenario, arm)
    if n_agents is not None:
        config.population = build_dataclass(type(config.population), {"n_agents": n_agents},
                                             _WHERE, "population", config.population)
    if confidence is not None:
        config.dynamics = build_dataclass(type(config.dynamics), {"confidence": confidence},
                                          _WHERE, "dynamics", config.dynamics)
    if horizon is not None:
        if not (math.isfinite(horizon) and horizon > 0):
            raise SignsimError(f"{_WHERE}: horizon: {horizon!r} must be greater than 0 days "
                               "(and finite).")
        config.horizon = float(horizon)
    if intervention_share is not None:
        specs = _with_share(specs, intervention_share)
    if not config.recording.metric_cadence > 0:
        raise SignsimError(f"{_WHERE}: recording.metric_cadence is 0; a Mesa model collects at "
                           "the metric cadence, so it must be greater than 0 days.")
    return config, specs


class MesaSocialModel(SocialModel):
    """A :class:`~sim.engine.model.SocialModel` with a DataCollector, built from keywords only.

    Every argument is keyword-only with a default, so ``mesa.batch_run`` can sweep any of
    them and Mesa's Solara visualisation can rebuild the model from its parameters.

    Args:
        scenario: Scenario file; ``None``: the defaults of :mod:`sim.config`.
        arm: Arm of the scenario (default: its baseline arm).
        seed: Seed of the run; ``None`` draws one (kept in ``model.seed`` and reported).
        n_agents: Override ``population.n_agents``.
        horizon: Override the horizon (days).
        confidence: Override ``dynamics.confidence`` (the bounded-confidence distance).
        intervention_share: Set the ``share`` of every intervention of the arm that has
            one (friction, bridging).
        collect_agents: Also collect opinion, negativity and kind of every agent at every
            tick.

    Raises:
        SignsimError: On a bad file, an unknown arm or an out-of-range value.
    """

    def __init__(
        self,
        *,
        scenario: str | None = None,
        arm: str | None = None,
        seed: int | None = None,
        n_agents: int | None = None,
        horizon: float | None = None,
        confidence: float | None = None,
        intervention_share: float | None = None,
        collect_agents: bool = True,
    ) -> None:
        config, specs = _settings(scenario, arm, n_agents, horizon, confidence, intervention_share)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        elif isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise SignsimError(f"{_WHERE}: seed: {seed!r} is not a seed; use a whole number >= 0.")
        dynamics = learned_dynamics(config) if config.dynamics.model else None
        recorder = Recorder(None)
        recorder.keep_events = False  # the DataCollector is this model's log
        super().__init__(config, int(seed), dynamics=dynamics, interventions=specs,
                         recorder=recorder)
        self.datacollector = make_datacollector(collect_agents)
        self._stop_step = progress_step(self.horizon)
        self._next_stop = min(self._stop_step, self.horizon)
        while not recorder.latest_metrics:  # the events at t = 0, up to the first tick
            self.env.step()

    def _advance(self, target: float) -> None:
        """Run the clock through a stored run's stops that lie before ``target``."""
        while self._next_stop < target:
            self.run(until=self._next_stop)
            self._next_stop = min(self._next_stop + self._stop_step, self.horizon)

    def step(self) -> None:
        """Advance to the next metric tick (or the horizon) and collect it."""
        if self.env.now >= self.horizon:
            self.running = False
            return
        cadence = self.config.recording.metric_cadence
        if self.env.now + cadence < self.horizon - 1e-9:  # the recorder ticks at now + cadence
            # Created after the recorder's own timeout for that tick, so processed right
            # after it: the step ends with the tick collected, before any later act.
            tick = self.env.timeout(cadence)
            self._advance(self.env.now + cadence)
            self.env.run(until=tick)
        else:
            self._advance(self.horizon)
            self.run(until=self.horizon)
