"""``signsim twin RUN``: fit, generate the held-out span N times per method, report fidelity.

Three generators produce the span after the split from the same history:

* ``twin``: the learned twin (:mod:`models.twin.fit`, :mod:`models.twin.dynamics`);
* ``calibrated``: the mechanistic rules with parameters fitted to the history by
  simulation (:mod:`models.twin.calibrate`);
* ``null``: no learning (empirical rates, a reciprocity probability, in-degree
  attachment, the target's past positive share as the sign probability).

Each generated continuation is stored as a run (scenario ``twin-<name>``, arm = method,
seed k), and :mod:`models.twin.report` compares them statistic by statistic with the real
held-out events. Nothing after the split reaches a generator but the span's length.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from models.data import resolve_run
from models.twin.dynamics import NullDynamics, TwinDynamics, newcomer_slots, twin_population
from models.twin.fit import TwinFit, fit_twin
from models.twin.observed import Stream, TwinSplit, load_observed, split_observed
from sim.config import SimConfig
from sim.engine.dynamics import Dynamics
from sim.engine.simulate import run_into_store
from sim.errors import SignsimError
from sim.store.database import Store, open_store

__all__ = ["METHODS", "TwinResult", "apply_opinion_steps", "generate", "scoreboard_text",
           "stored_stream", "twin_config", "twin_run"]

METHODS = ("twin", "calibrated", "null")


@dataclass
class TwinResult:
    """What ``signsim twin`` produced."""

    run_id: int
    out_dir: Path
    report: Path
    runs: dict[str, list[int]]
    table: pd.DataFrame
    wins: dict[str, int]
    events_per_s: dict[str, float]
    seconds: dict[str, float]
    real: dict[str, Any]
    stats: dict[str, list[dict[str, Any]]]


def scoreboard_text(table: pd.DataFrame) -> str:
    """The ten headline rows as a compact text table: real, then each method's mean (d)."""
    board = table[table["scoreboard"]]
    methods = [str(m) for m in dict.fromkeys(board["method"])]
    rows = []
    for key, group in board.groupby("statistic", sort=False):
        g = group.set_index("method")
        mean, dist = g["mean"].astype(float), g["distance"].astype(float)
        cells = {m: f"{mean[m]:.4g} (d {dist[m]:.3g})" for m in methods}
        rows.append({"statistic": str(key), "real": f"{float(g['real'].iloc[0]):.4g}", **cells})
    return pd.DataFrame(rows).to_string(index=False)


def twin_config(horizon: float, n_agents: int, opinion_steps: dict[str, Any] | None = None
                ) -> SimConfig:
    """Engine settings of a generated span: no network, no metrics, small engine batches.

    ``opinion_steps`` (from :func:`models.twin.opinions.fit_opinion_steps`) sets how the
    engine moves opinions after delivered acts; without it opinions stay put.
    """
    cfg = SimConfig(horizon=horizon)
    cfg.population.n_agents = n_agents
    cfg.network.kind = "none"
    cfg.recording.metric_cadence = 0.0
    cfg.recording.batch_events = 32
    apply_opinion_steps(cfg, opinion_steps or {})
    return cfg


def apply_opinion_steps(cfg: SimConfig, steps: dict[str, Any]) -> None:
    """Use a twin's learned opinion steps (zero when it learned none) in ``cfg``."""
    cfg.dynamics.attraction = min(float(steps.get("attraction", 0.0)), 1.0)
    cfg.dynamics.repulsion = min(float(steps.get("repulsion", 0.0)), 1.0)
    cfg.dynamics.weight_scaled_updates = bool(steps.get("weight_scaled", True))


def learned_generator(fit: TwinFit, method: str) -> tuple[Dynamics, Any, int]:
    """Dynamics, initial population and size of a ``twin`` or ``null`` run."""
    n = fit.split.n_known
    if method == "twin":
        cap = n + newcomer_slots(fit)
        dyn = TwinDynamics(fit, cap)
        return dyn, twin_population(fit, cap, dyn.initial_rates()), cap
    null = NullDynamics(fit, n)
    return null, twin_population(fit, n, fit.null.rates), n


def stored_stream(store: Store, run_id: int, t_split: float, t1: float = math.inf) -> Stream:
    """A generated run's delivered events, shifted to the observed run's clock, up to ``t1``."""
    cols = store.interactions(run_id, delivered_only=True)
    t = cols["t"] + t_split
    keep = t <= t1
    return Stream.from_columns(t[keep], cols["src"][keep], cols["dst"][keep], cols["sign"][keep],
                               cols["weight"][keep])


def generate(store: Store, fit: TwinFit, method: str, seeds: int, *, calibrated: Any = None,
             scenario: str = "twin", progress: bool = False) -> tuple[list[int], float, int]:
    """Store ``seeds`` generated spans of one method; returns run ids, seconds, events."""
    split = fit.split
    ids, events, started = [], 0, time.perf_counter()
    text = json.dumps({"twin_of_run": split.observed.run_id, "method": method,
                       "t_split": split.t_split, "horizon": split.horizon}, sort_keys=True)
    for seed in tqdm(range(seeds), desc=f"generating ({method})", disable=not progress,
                     leave=False):
        if method == "calibrated":
            res = run_into_store(store, calibrated.config, seed=seed, scenario=scenario,
                                 arm=method, scenario_text=text)
        else:
            dyn, pop, cap = learned_generator(fit, method)
            res = run_into_store(store, twin_config(split.horizon, cap, fit.opinion_steps),
                                 seed=seed,
                                 scenario=scenario, arm=method, scenario_text=text,
                                 dynamics=dyn, population=pop)
        ids.append(res.run_id)
        events += res.events
    return ids, time.perf_counter() - started, events


def _statistics(split: TwinSplit, stream: Stream) -> dict[str, Any]:
    from models.twin.stats import stream_statistics

    return stream_statistics(stream, split.history, split.t_split, split.t_end)


def twin_run(db: str, run: str, *, split: float = 0.7, seeds: int = 5, out: Path | None = None,
             methods: tuple[str, ...] = METHODS, budget: int = 60,
             progress: bool = True) -> TwinResult:
    """Fit every method on the run's history, generate its held-out span, report fidelity.

    Args:
        db: Database path or URL.
        run: Run id or name (an imported network is named after its file).
        split: Share of the run's events the generators learn from.
        seeds: Generated spans per method.
        out: Report folder (default ``reports/twin-<run id>``).
        methods: Which of ``twin``, ``calibrated``, ``null`` to run.
        budget: Simulations the calibration of the mechanistic rules may spend.
        progress: Show progress bars.

    Raises:
        SignsimError: Unknown run or method, too few events, bad split or seed count.
    """
    if not 1 <= seeds <= 100:
        raise SignsimError(f"--seeds must be between 1 and 100, got {seeds}.")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SignsimError(f"Unknown twin method(s) {unknown}; choose from {', '.join(METHODS)}.")
    store = open_store(db)
    try:
        run_id = resolve_run(store, run)
        observed = load_observed(store, run_id)
        cut = split_observed(observed, split)
        out_dir = Path(out) if out is not None else Path("reports") / f"twin-{run_id}"
        out_dir.mkdir(parents=True, exist_ok=True)
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        fit = fit_twin(cut, progress=progress)
        seconds["fit twin"] = time.perf_counter() - started
        (out_dir / "twin_fit.json").write_text(json.dumps(fit.summary(), indent=1, default=float))
        calibrated = None
        if "calibrated" in methods:
            from models.twin.calibrate import calibrate_rules

            started = time.perf_counter()
            calibrated = calibrate_rules(cut.history, cut.n_known, cut.horizon, out_dir,
                                         budget=budget, progress=progress)
            seconds["calibrate rules"] = time.perf_counter() - started
            (out_dir / "calibration.json").write_text(
                json.dumps({"params": calibrated.params, "fit": calibrated.fit}, indent=1,
                           default=float))
        scenario = f"twin-{observed.name}"
        runs: dict[str, list[int]] = {}
        stats: dict[str, list[dict[str, Any]]] = {}
        speed: dict[str, float] = {}
        for method in methods:
            ids, secs, events = generate(store, fit, method, seeds, calibrated=calibrated,
                                         scenario=scenario, progress=progress)
            runs[method] = ids
            seconds[f"generate {method}"] = secs
            speed[method] = events / secs if secs > 0 else float("nan")
            stats[method] = [_statistics(cut, stored_stream(store, i, cut.t_split)) for i in ids]
        real = _statistics(cut, cut.future)
    finally:
        store.dispose()
    from models.twin.report import write_fidelity_report
    from models.twin.stats import compare, wins

    table = compare(real, stats)
    meta = {"run": f"{run_id} ({observed.name})", "split": split, "t_split": cut.t_split,
            "horizon_days": cut.horizon, "history_events": len(cut.history),
            "held_out_events": len(cut.future), "seeds": seeds, "runs": runs,
            "seconds": seconds, "events_per_s": speed}
    report = write_fidelity_report(out_dir, f"Twin fidelity: {observed.name}", real, stats, meta)
    return TwinResult(run_id=run_id, out_dir=out_dir, report=report, runs=runs, table=table,
                      wins=wins(table), events_per_s=speed, seconds=seconds, real=real,
                      stats=stats)
