"""Resource limits of one run, checked before anything is written.

A scenario can be valid field by field and still describe a run that cannot finish: more
memory than the machine has, more events than a run's ``seq`` column holds, millions of
metric ticks. :func:`check_run_resources` refuses those with a one-paragraph error that
gives the estimate; :func:`check_seed` refuses seeds the ``runs.seed`` column cannot hold.
"""

from __future__ import annotations

import math
import os

from sim.config import SimConfig
from sim.errors import SignsimError

__all__ = [
    "MAX_EVENTS",
    "MAX_HORIZON",
    "MAX_SEED",
    "MAX_TICKS",
    "check_horizon",
    "check_run_resources",
    "check_seed",
    "estimate_events",
    "estimate_memory",
    "machine_memory",
]

#: Most expected events of one run: ``seq`` is a 32-bit INTEGER on PostgreSQL.
MAX_EVENTS = 2**31 - 1

#: Largest seed: ``runs.seed`` is a 32-bit INTEGER on PostgreSQL.
MAX_SEED = 2**31 - 1

#: Longest horizon, in days.
MAX_HORIZON = 1e7

#: Most metric ticks or opinion snapshots of one run (horizon / cadence).
MAX_TICKS = 1_000_000

#: Bytes per agent besides its ties and follows: columnar state, the Mesa agent object,
#: its share of the network build (calibrated above the measured 1.56 GiB peak of a
#: 1M-agent, 10M-event run, README "Performance").
_AGENT_BYTES = 700

#: Bytes of the interpreter, compiled code and the event pipeline.
_BASE_BYTES = 300 * 2**20


def check_seed(seed: object, where: str = "--seed") -> int:
    """Return ``seed`` when it is a whole number in ``[0, MAX_SEED]``; raise otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SignsimError(f"{where}: {seed!r} is not a seed; use a whole number from 0 to "
                           f"{MAX_SEED}.")
    return seed


def check_horizon(horizon: float, where: str = "horizon") -> float:
    """Return ``horizon`` when it is finite and in ``(0, MAX_HORIZON]`` days; raise otherwise."""
    if not (math.isfinite(horizon) and 0 < horizon <= MAX_HORIZON):
        raise SignsimError(f"{where}: {horizon!r} must be a finite number of days greater "
                           f"than 0 and at most {MAX_HORIZON:g}.")
    return float(horizon)


def estimate_events(config: SimConfig) -> float:
    """Expected events of a run: sum of the agents' mean rates times the horizon."""
    pop = config.population
    factor = {"influencer": pop.influencer_rate_factor, "troll": pop.troll_rate_factor}
    mean_factor = sum(share * factor.get(kind, 1.0) for kind, share in pop.kinds.items())
    return pop.n_agents * pop.mean_rate * mean_factor * config.horizon


def estimate_memory(config: SimConfig) -> float:
    """Estimated peak bytes of a run (agents, ties, follows and network build)."""
    pop, net = config.population, config.network
    degree = {"sbm": net.mean_degree, "barabasi_albert": 2.0 * net.ba_m,
              "watts_strogatz": float(net.ws_k), "none": 0.0}.get(net.kind, net.mean_degree)
    per_agent = _AGENT_BYTES + 9 * config.dynamics.ties + 48 * (degree + net.follow_slack)
    batch = 200 * (config.recording.batch_events + config.recording.flush_rows)
    return _BASE_BYTES + pop.n_agents * per_agent + batch


def machine_memory() -> int:
    """Physical memory of this machine in bytes (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def check_run_resources(config: SimConfig, where: str, memory: int | None = None) -> None:
    """Refuse a run whose horizon, event count, ticks or memory are out of bounds.

    Args:
        config: The run's settings.
        where: File (and arm) for the message.
        memory: Bytes the run may use (default: this machine's physical memory).

    Raises:
        SignsimError: Naming the limit, the estimate and the settings to change.
    """
    check_horizon(config.horizon, f"{where}: horizon")
    events = estimate_events(config)
    if events > MAX_EVENTS:
        raise SignsimError(
            f"{where}: the run would draw about {events:.3g} events (n_agents x mean_rate x "
            f"rate factors x horizon), more than the {MAX_EVENTS:,} one run can hold; lower "
            "population.n_agents, population.mean_rate or the horizon."
        )
    rec = config.recording
    for key, cadence in (("metric_cadence", rec.metric_cadence),
                         ("snapshot_cadence", rec.snapshot_cadence)):
        if cadence > 0 and config.horizon / cadence > MAX_TICKS:
            raise SignsimError(
                f"{where}: recording.{key} = {cadence:g} gives {config.horizon / cadence:.3g} "
                f"ticks over the horizon, more than {MAX_TICKS:,}; raise the cadence."
            )
    need = estimate_memory(config)
    have = machine_memory() if memory is None else memory
    if have and need > have:
        raise SignsimError(
            f"{where}: the run needs an estimated {need / 2**30:,.1f} GiB of memory and this "
            f"machine has {have / 2**30:,.1f} GiB; lower population.n_agents, "
            "network.mean_degree, network.follow_slack or dynamics.ties. Nothing was written."
        )
