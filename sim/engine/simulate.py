"""Run one simulation into a database: the library function behind ``signsim simulate``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from sim.config import SimConfig
from sim.contract import KIND_CODES
from sim.engine.agents import Population
from sim.engine.dynamics import Dynamics
from sim.engine.model import SocialModel
from sim.engine.recording import Recorder
from sim.plugins import learned_dynamics, twin_dynamics
from sim.scenario import InterventionSpec
from sim.store.database import Store

__all__ = ["SimResult", "progress_step", "run_into_store", "simulate", "write_agent_rows"]


@dataclass
class SimResult:
    """What one run produced."""

    run_id: int
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        """Throughput of the whole run (rules, recording and database writes)."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def write_agent_rows(store: Store, run_id: int, model: SocialModel) -> None:
    """Write the ``agents`` rows of a freshly built model."""
    pop = model.population
    store.write_agents(run_id, range(pop.n), np.array(KIND_CODES, dtype=object)[pop.kind],
                       pop.group.tolist(), pop.opinion.tolist(), pop.rate.tolist())


def progress_step(horizon: float) -> float:
    """Clock advance between two progress updates of a stored run (1/100 of the horizon).

    Each ``model.run(until=...)`` stop is an event on the SimPy clock, and the activity
    process redraws its batch at every event, so these stops are part of a stored run's
    trajectory: whoever replays a run (``sim.engine.mesa_tools``) stops at the same times.
    """
    return max(horizon / 100.0, 1e-9)


def run_into_store(
    store: Store,
    config: SimConfig,
    *,
    seed: int,
    scenario: str = "adhoc",
    arm: str = "baseline",
    scenario_text: str = "",
    interventions: Sequence[InterventionSpec] = (),
    dynamics: Dynamics | None = None,
    progress: bool = False,
    population: Population | None = None,
) -> SimResult:
    """Simulate one (scenario, arm, seed) and stream it into ``store``.

    The run row is ``running`` while it goes, ``complete`` at the end, ``failed`` (with
    the error) or ``aborted`` (Ctrl-C) otherwise; committed batches are always kept.

    Args:
        store: Destination database.
        config: Simulation settings.
        seed: Seed of the run.
        scenario: Scenario name recorded on the run.
        arm: Arm name recorded on the run.
        scenario_text: Scenario file text recorded on the run (with its hash).
        interventions: The arm's interventions.
        dynamics: Decision rules (default mechanistic).
        progress: Show a progress bar over simulated days.
        population: A given initial population (a twin's nodes) instead of a drawn one.

    Returns:
        Run id, event count and wall time.
    """
    started = time.perf_counter()
    if dynamics is None and config.dynamics.twin:
        dynamics, population, config = twin_dynamics(config)
    if dynamics is None and config.dynamics.model:
        dynamics = learned_dynamics(config)
    run_id = store.create_run(scenario=scenario, arm=arm, seed=seed,
                              scenario_text=scenario_text, horizon=config.horizon)
    try:
        recorder = Recorder(store, run_id)
        model = SocialModel(config, seed, dynamics=dynamics, interventions=interventions,
                            recorder=recorder, population=population)
        write_agent_rows(store, run_id, model)
        with tqdm(total=config.horizon, unit="day", disable=not progress,
                  desc=f"{scenario}/{arm}/seed {seed}", leave=False,
                  bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} days [{elapsed}<{remaining}]"
                  ) as bar:
            step = progress_step(config.horizon)
            while model.env.now < model.horizon:
                model.run(until=min(model.env.now + step, model.horizon))
                bar.update(model.env.now - bar.n)
    except KeyboardInterrupt:
        store.finish_run(run_id, "aborted", "interrupted")
        raise
    except BaseException as exc:
        store.finish_run(run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    store.finish_run(run_id, "complete")
    return SimResult(run_id, model.events, time.perf_counter() - started)


def simulate(
    db: str,
    *,
    scenario_path: str | None = None,
    arm: str | None = None,
    seed: int = 0,
    n_agents: int | None = None,
    horizon: float | None = None,
    network: str | None = None,
    progress: bool = False,
) -> SimResult:
    """One run from a scenario file's settings (or the defaults), with flag overrides.

    Args:
        db: Database path or URL.
        scenario_path: Scenario file; its baseline arm (or ``arm``) is simulated.
        arm: Arm of the scenario to simulate.
        seed: Seed of the run.
        n_agents: Override ``population.n_agents``.
        horizon: Override the horizon (days).
        network: Override ``network.kind``.
        progress: Show a progress bar.

    Returns:
        Run id, event count and wall time.
    """
    from sim.limits import check_horizon, check_run_resources, check_seed
    from sim.scenario import build_dataclass, load_scenario
    from sim.store.database import open_store

    if scenario_path is not None:
        scenario = load_scenario(scenario_path)
        chosen = scenario.arm(arm or scenario.baseline)
        config, specs = chosen.config, chosen.interventions
        name, arm_name, text = scenario.name, chosen.name, scenario.text
    else:
        config, specs, name, arm_name, text = SimConfig(), [], "adhoc", arm or "baseline", ""
    overrides: dict[str, object] = {}
    if n_agents is not None:
        overrides["n_agents"] = n_agents
    config.population = build_dataclass(type(config.population), overrides, "--agents",
                                        "population", config.population)
    if network is not None:
        config.network = build_dataclass(type(config.network), {"kind": network}, "--network",
                                         "network", config.network)
    if horizon is not None:
        config.horizon = check_horizon(horizon, "--horizon")
    check_seed(seed)
    check_run_resources(config, scenario_path or "the default settings")
    store = open_store(db)
    try:
        return run_into_store(store, config, seed=seed, scenario=name, arm=arm_name,
                              scenario_text=text, interventions=specs, progress=progress)
    finally:
        store.dispose()
