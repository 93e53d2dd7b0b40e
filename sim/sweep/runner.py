"""The ``signsim run`` pipeline: a scenario file -> every arm x seed -> the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sim.scenario import load_scenario
from sim.store.database import Store
from sim.sweep.experiment import ExperimentResult, run_experiment
from sim.sweep.report import write_report

__all__ = ["SweepOutcome", "render_report", "run_scenario_file"]


@dataclass
class SweepOutcome:
    """What ``signsim run`` produced."""

    experiment: ExperimentResult
    report: Path


def render_report(db: str, scenario: str, out_dir: str | Path | None = None,
                  baseline: str | None = None, progress: bool = True) -> Path:
    """Re-render a scenario's report from the database alone (opened read-only).

    Args:
        db: Database path or URL.
        scenario: Scenario name (``runs.scenario``).
        out_dir: Output folder (default ``reports/<scenario>``).
        baseline: Reference arm (default: the baseline named in the stored scenario
            text, else ``baseline``).
        progress: Show a progress bar over the rendering steps.

    Returns:
        Path of ``report.md``.
    """
    store = Store(db, create=False, read_only=True)
    try:
        if baseline is None:
            baseline = _stored_baseline(store, scenario)
        return write_report(store, scenario, out_dir or Path("reports") / scenario, baseline,
                            progress=progress)
    finally:
        store.dispose()


def _stored_baseline(store: Store, scenario: str) -> str:
    from sim.scenario import parse_scenario

    rows = store.frame("SELECT scenario_text FROM runs WHERE scenario = :s AND status = 'complete' "
                       "ORDER BY id DESC LIMIT 1", {"s": scenario})
    if rows.empty or not rows.scenario_text[0]:
        return "baseline"
    return parse_scenario(rows.scenario_text[0], f"stored scenario '{scenario}'").baseline


def run_scenario_file(path: str | Path, db: str, *, workers: int = 1, dask: str | None = None,
                      fresh: bool = False, resume: bool = False,
                      out_dir: str | Path | None = None, progress: bool = True) -> SweepOutcome:
    """Run every arm x seed of a scenario file once, then write its comparison report.

    (Arm, seed) pairs with a complete run of the same scenario text are reused; see
    :func:`sim.sweep.experiment.run_experiment`.

    Args:
        path: Scenario file.
        db: Database path or URL.
        workers: Local worker processes (or Dask workers with ``dask="local"``).
        dask: ``"local"`` or a scheduler address ``tcp://host:port``.
        fresh: Run every pair again (the report uses the newest complete run of each).
        resume: Also mark ``aborted`` the scenario's ``running`` runs no sweep holds.
        out_dir: Report folder (default ``reports/<scenario name>``).
        progress: Show a progress bar.

    Returns:
        The experiment result and the report path.
    """
    scenario = load_scenario(path)
    result = run_experiment(scenario, db, workers=workers, dask=dask, fresh=fresh,
                            resume=resume, progress=progress)
    report = render_report(db, scenario.name, out_dir or Path("reports") / scenario.name,
                           scenario.baseline, progress)
    return SweepOutcome(result, report)
