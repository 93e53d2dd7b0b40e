r"""The mechanistic rules of :mod:`sim` calibrated to a run's history by simulation.

This is the ``calibrated`` method of ``signsim twin``: the same rules every scenario
runs, with eight parameters fitted so that a simulation of the last part of the history
looks like what happened there. The method:

1. **Calibration window.** The last ``L = min(horizon, 0.3 * span)`` days of the history
   (``span``: first to last history event), ``[t0, t1]`` with ``t1`` the last history
   event. The target is :func:`models.twin.stats.stream_statistics` of the history's
   events in the window, given the history before ``t0``.
2. **Simulator.** A plain :class:`sim.engine.model.SocialModel` of ``n_nodes`` citizens in one
   group (uniform opinions, lognormal activity rates), whose initial follow network is
   the set of directed pairs rated positively before ``t0`` (an ``edge_list`` file in the
   work folder), runs ``L`` days with an in-memory recorder. Its delivered events, shifted
   to start at ``t0`` (agent ids are node ids), get the same statistics with the same
   history.
3. **Objective.** The sum of squared scoreboard distances
   (:data:`models.twin.stats.SCOREBOARD`, the functions every method is scored with) over
   :data:`FITTED_STATISTICS`: event count, negative share, reciprocity, new-pair share,
   balanced-triangle share, in/out-degree KS, mean weight per sign. Each distance is
   capped at :data:`DISTANCE_CAP` (a run without triangles has an infinite distance);
   statistics undefined in the target are left out. Every simulation uses the same seed
   (common random numbers), so the objective changes smoothly with the parameters rather
   than by seed noise.
4. **Parameters** (:data:`PARAMETERS`): ``population.mean_rate`` and ``rate_sigma``,
   ``dynamics.p_reply``, ``p_exposure``, ``base_negativity``, ``sign_temperature``,
   ``confidence`` and ``follow_prob``, each mapped to an unconstrained coordinate by a
   logit of its position between two bounds (on a log scale for the rate, the temperature
   and the confidence), so the optimiser never proposes an invalid value.
5. **Optimiser.** ``scipy.optimize.minimize(method="Nelder-Mead")`` from the defaults of
   :class:`sim.config.DynamicsConfig` and :class:`sim.config.PopulationConfig`, except the
   mean rate, which starts at the moment estimate (window events per node per day), with
   an initial simplex of one unit per coordinate. It may spend ``budget`` simulations in
   all (the start included); the best parameters seen win.

The returned configuration generates ``horizon`` days for agents ``0 .. n_nodes - 1`` from
the follow network of all positive pairs of the history. The mechanistic population is
fixed, so calibrated runs have no newcomers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from tqdm import tqdm

from models.twin.observed import Stream
from models.twin.stats import SCOREBOARD, stream_statistics
from sim.atomic import write_text_atomic
from sim.config import DynamicsConfig, PopulationConfig, SimConfig
from sim.engine.model import SocialModel
from sim.engine.recording import Recorder
from sim.errors import SignsimError

__all__ = [
    "DISTANCE_CAP",
    "FITTED_STATISTICS",
    "PARAMETERS",
    "WINDOW_SHARE",
    "CalibratedRules",
    "Parameter",
    "calibrate_rules",
    "calibration_objective",
    "rules_config",
    "simulate_window",
]

#: Scoreboard statistics (keys of :data:`models.twin.stats.SCOREBOARD`) the fit matches.
FITTED_STATISTICS = ("event_count", "negative_share", "reciprocity", "new_pair_share",
                     "balanced_share", "degree", "weight")

#: Largest distance one statistic contributes (before squaring).
DISTANCE_CAP = 100.0

#: Largest share of the history's span used as the calibration window.
WINDOW_SHARE = 0.3

_BOARD = {s.key: s for s in SCOREBOARD}


@dataclass(frozen=True)
class Parameter:
    """One fitted setting and its bounded transform.

    Attributes:
        name: Field of :class:`sim.config.PopulationConfig` or :class:`DynamicsConfig`.
        section: ``population`` or ``dynamics``.
        low: Lower bound (exclusive).
        high: Upper bound (exclusive).
        log: Place the value between the bounds on a log scale.
        relative: The bounds multiply a data-given scale (the moment estimate of the rate).
    """

    name: str
    section: str
    low: float
    high: float
    log: bool = False
    relative: bool = False

    def limits(self, scale: float) -> tuple[float, float]:
        """The bounds of the value (times ``scale`` when relative)."""
        return (self.low * scale, self.high * scale) if self.relative else (self.low, self.high)

    def bounds(self, scale: float) -> tuple[float, float]:
        """The bounds in the transformed (log or linear) scale."""
        lo, hi = self.limits(scale)
        return (math.log(lo), math.log(hi)) if self.log else (lo, hi)

    def to_free(self, value: float, scale: float) -> float:
        """Unconstrained coordinate of a value (clipped just inside the bounds)."""
        a, b = self.bounds(scale)
        u = math.log(value) if self.log else value
        p = min(max((u - a) / (b - a), 1e-6), 1.0 - 1e-6)
        return math.log(p / (1.0 - p))

    def from_free(self, z: float, scale: float) -> float:
        """Value of an unconstrained coordinate."""
        a, b = self.bounds(scale)
        u = a + (b - a) / (1.0 + math.exp(-min(max(z, -700.0), 700.0)))
        lo, hi = self.limits(scale)
        return min(max(math.exp(u) if self.log else u, lo), hi)  # exp may round past a bound


#: The fitted parameters in optimiser order.
PARAMETERS: tuple[Parameter, ...] = (
    Parameter("mean_rate", "population", 1.0 / 30.0, 30.0, log=True, relative=True),
    Parameter("rate_sigma", "population", 0.05, 4.0),
    Parameter("p_reply", "dynamics", 0.0, 1.0),
    Parameter("p_exposure", "dynamics", 0.0, 1.0),
    Parameter("base_negativity", "dynamics", -10.0, 10.0),
    Parameter("sign_temperature", "dynamics", 0.01, 10.0, log=True),
    Parameter("confidence", "dynamics", 0.01, 4.0, log=True),
    Parameter("follow_prob", "dynamics", 0.0, 1.0),
)


@dataclass
class CalibratedRules:
    """Mechanistic rules fitted to a history.

    Attributes:
        config: Settings that generate ``horizon`` days for agents ``0 .. n_nodes - 1``.
        params: Fitted values by :class:`PopulationConfig` / :class:`DynamicsConfig` name.
        fit: ``target`` and ``fitted`` statistics (scalars shown by the scoreboard),
            ``distances_start`` and ``distances``, ``objective_start`` and ``objective``,
            ``start`` parameters, ``evaluations``, ``seconds``, ``optimiser``, ``window``
            (``[t0, t1]``), ``window_days``, ``seed``.
    """

    config: SimConfig
    params: dict[str, float]
    fit: dict[str, Any]


class _BudgetSpent(Exception):
    """Raised inside the optimiser when the simulation budget is used up."""


def rules_config(n_nodes: int, horizon: float, follow_path: Path,
                 params: Mapping[str, float]) -> SimConfig:
    """Settings of a mechanistic run of the observed nodes with the given parameters.

    Args:
        n_nodes: Agents ``0 .. n_nodes - 1`` (citizens in one group, uniform opinions).
        horizon: Days to simulate.
        follow_path: Edge list of the initial follow network.
        params: Values of (some of) :data:`PARAMETERS` by name; the rest keep defaults.

    Returns:
        A configuration without metrics or snapshots.
    """
    cfg = SimConfig(horizon=float(horizon))
    pop = cfg.population
    pop.n_agents = int(n_nodes)
    pop.groups = 1
    pop.kinds = {"citizen": 1.0}
    pop.initial_opinion = "uniform"
    pop.rate_distribution = "lognormal"
    cfg.network.kind = "edge_list"
    cfg.network.path = str(Path(follow_path).resolve())
    cfg.recording.metric_cadence = 0.0
    cfg.recording.snapshot_cadence = 0.0
    for p in PARAMETERS:
        if p.name in params:
            setattr(pop if p.section == "population" else cfg.dynamics, p.name,
                    float(params[p.name]))
    return cfg


def simulate_window(cfg: SimConfig, seed: int, t0: float) -> Stream:
    """Run ``cfg`` in memory; its delivered events shifted to start at ``t0``."""
    rec = Recorder(None, keep_events=True)
    SocialModel(cfg, seed, recorder=rec).run()
    ev = rec.events()
    ok = ev["blocked"] == 0
    return Stream.from_columns(ev["t"][ok] + t0, ev["src"][ok], ev["dst"][ok],
                               ev["sign"][ok], ev["weight"][ok])


def calibration_objective(generated: Mapping[str, Any], target: Mapping[str, Any]
                          ) -> tuple[float, dict[str, float]]:
    """Sum of squared capped scoreboard distances over :data:`FITTED_STATISTICS`.

    Args:
        generated: :func:`stream_statistics` of a simulated window.
        target: The same statistics of the real window.

    Returns:
        The objective and each statistic's distance (NaN where the target is undefined;
        those are left out of the sum).
    """
    distances = {key: float(_BOARD[key].distance(generated, target)) for key in FITTED_STATISTICS}
    total = sum(min(d, DISTANCE_CAP) ** 2 for d in distances.values() if not math.isnan(d))
    return float(total), distances


def _scalars(stats: Mapping[str, Any]) -> dict[str, float]:
    """The scalar each fitted statistic shows in tables, plus weights per sign."""
    out = {key: float(_BOARD[key].value(stats)) for key in FITTED_STATISTICS}
    out["weight_pos"] = float(stats["weight_pos"])
    out["weight_neg"] = float(stats["weight_neg"])
    return out


def _positive_pairs(s: Stream) -> str:
    """Edge list text of the distinct directed pairs rated positively (no self-pairs)."""
    keep = (s.sign > 0) & (s.src != s.dst)
    pairs = np.unique(np.stack([s.src[keep], s.dst[keep]], axis=1), axis=0)
    lines = [f"{a},{b}" for a, b in pairs.tolist()]
    return "# positive directed pairs (follows)\n" + "\n".join(lines) + "\n"


def _check(history: Stream, n_nodes: int, horizon: float, budget: int) -> None:
    """Refuse inputs the calibration cannot work with."""
    if len(history) < 2:
        raise SignsimError(
            f"Calibrating the mechanistic rules needs a history of at least 2 events; "
            f"got {len(history)}."
        )
    top = int(max(history.src.max(), history.dst.max()))
    low = int(min(history.src.min(), history.dst.min()))
    if low < 0 or top >= n_nodes:
        raise SignsimError(
            f"Calibration: the history's node ids span {low}..{top}, but n_nodes = {n_nodes} "
            f"allows only 0..{n_nodes - 1}; n_nodes must be at least the largest id + 1."
        )
    if not (math.isfinite(horizon) and horizon > 0):
        raise SignsimError(f"Calibration: the horizon must be a positive number of days, "
                           f"got {horizon}.")
    if not 1 <= budget <= 100_000:
        raise SignsimError(f"Calibration: the budget must be 1..100000 simulations, got {budget}.")
    if not float(history.t[-1]) > float(history.t[0]):
        raise SignsimError("Calibration: all history events happen at the same time; the "
                           "rules need a history spanning some time.")


class _Objective:
    """Objective in free coordinates that counts simulations and keeps the best point."""

    def __init__(self, evaluate: Callable[[dict[str, float]], tuple[float, dict[str, Any]]],
                 scale: float, budget: int, bar: Any) -> None:
        self.evaluate, self.scale, self.budget, self.bar = evaluate, scale, budget, bar
        self.evaluations = 0
        self.best: tuple[float, dict[str, float], dict[str, Any]] | None = None
        self.first: tuple[float, dict[str, float], dict[str, Any]] | None = None

    def params(self, z: np.ndarray) -> dict[str, float]:
        return {p.name: p.from_free(float(v), self.scale) for p, v in zip(PARAMETERS, z,
                                                                           strict=True)}

    def __call__(self, z: np.ndarray) -> float:
        if self.evaluations >= self.budget:
            raise _BudgetSpent
        params = self.params(z)
        value, info = self.evaluate(params)
        self.evaluations += 1
        self.bar.update(1)
        if self.first is None:
            self.first = (value, params, info)
        if self.best is None or value < self.best[0]:
            self.best = (value, params, info)
            self.bar.set_postfix(objective=f"{value:.4g}")
        return value


def _defaults() -> dict[str, float]:
    """Default values of the fitted parameters."""
    out: dict[str, float] = {}
    for section in (PopulationConfig(), DynamicsConfig()):
        names = {f.name for f in fields(section)}
        out.update({p.name: float(getattr(section, p.name)) for p in PARAMETERS
                    if p.name in names})
    return out


def calibrate_rules(history: Stream, n_nodes: int, horizon: float, work_dir: Path, *,
                    seed: int = 0, budget: int = 60, progress: bool = False) -> CalibratedRules:
    """Fit the mechanistic rules to the end of ``history`` by simulation (see module doc).

    Args:
        history: Observed events before the split, in time order, node ids ``< n_nodes``.
        n_nodes: Nodes of the generated runs (agents ``0 .. n_nodes - 1``).
        horizon: Days the returned configuration generates.
        work_dir: Folder for the follow-network edge lists (created if missing).
        seed: Seed of every calibration simulation (common random numbers).
        budget: Simulations the fit may spend, the start included.
        progress: Show a progress bar over simulations.

    Returns:
        The configuration, the fitted parameters and a record of the fit.

    Raises:
        SignsimError: An empty history, node ids outside ``0 .. n_nodes - 1``, a history
            at one instant, a horizon that is not a positive number, or a bad budget.
    """
    _check(history, n_nodes, horizon, budget)
    started = time.perf_counter()
    t_first, t1 = float(history.t[0]), float(history.t[-1])
    length = min(float(horizon), WINDOW_SHARE * (t1 - t_first))
    t0 = t1 - length
    k = int(np.searchsorted(history.t, t0, side="left"))
    before, window = history.slice(0, k), history.slice(k, len(history))
    target = stream_statistics(window, before, t0, t1)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    window_follow = write_text_atomic(work / "calibration_follow.csv", _positive_pairs(before))
    final_follow = write_text_atomic(work / "calibrated_follow.csv", _positive_pairs(history))
    scale = max(len(window), 1) / (n_nodes * length)

    def evaluate(params: dict[str, float]) -> tuple[float, dict[str, Any]]:
        sim = simulate_window(rules_config(n_nodes, length, window_follow, params), seed, t0)
        stats = stream_statistics(sim, before, t0, t1)
        value, distances = calibration_objective(stats, target)
        return value, {"stats": _scalars(stats), "distances": distances}

    start = _defaults()
    start["mean_rate"] = scale
    z0 = np.array([p.to_free(start[p.name], scale) for p in PARAMETERS])
    simplex = np.vstack([z0, z0 + np.eye(z0.shape[0])])
    with tqdm(total=budget, desc="calibrating rules", disable=not progress, leave=False) as bar:
        obj = _Objective(evaluate, scale, budget, bar)
        message = "budget spent"
        try:
            res = minimize(obj, z0, method="Nelder-Mead",
                           options={"maxfev": budget, "initial_simplex": simplex,
                                    "xatol": 1e-3, "fatol": 1e-6})
            message = str(res.message)
        except _BudgetSpent:
            pass
    assert obj.best is not None and obj.first is not None
    best_value, params, info = obj.best
    first_value, first_params, first_info = obj.first
    fit: dict[str, Any] = {
        "optimiser": "Nelder-Mead", "message": message, "seed": seed,
        "window": [t0, t1], "window_days": length, "window_events": len(window),
        "target": _scalars(target), "fitted": info["stats"], "start_stats": first_info["stats"],
        "distances_start": first_info["distances"], "distances": info["distances"],
        "objective_start": first_value, "objective": best_value, "start": first_params,
        "evaluations": obj.evaluations, "seconds": time.perf_counter() - started,
    }
    return CalibratedRules(config=rules_config(n_nodes, horizon, final_follow, params),
                           params=params, fit=fit)
