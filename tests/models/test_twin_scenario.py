"""Twin scenarios: the shipped OTC twin scenario runs (on a slice of the network) and its
report opens with the fidelity table; interventions act on the twin's acts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sim.scenario import load_scenario
from sim.store.database import open_store
from sim.sweep.experiment import run_experiment
from sim.sweep.report import write_report

ROOT = Path(__file__).resolve().parents[2]
OTC = ROOT / "data" / "soc-sign-bitcoinotc.csv"


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3,000 ratings of Bitcoin OTC (about 60 days)."""
    path = tmp_path_factory.mktemp("twin") / "otc-head.csv"
    path.write_text("".join(OTC.read_text().splitlines(keepends=True)[:3000]))
    return path


def test_otc_twin_scenario_runs_and_reports_fidelity_first(small_source: Path, tmp_path: Path
                                                            ) -> None:
    scenario = copy.deepcopy(load_scenario(ROOT / "scenarios" / "otc_twin.toml"))
    assert {a.name for a in scenario.arms} == {"baseline", "moderation", "friction"}
    scenario.seeds = [0, 1]
    scenario.arms = [a for a in scenario.arms if a.name in ("baseline", "moderation")]
    for arm in scenario.arms:
        arm.config.dynamics.twin = str(small_source)
        arm.config.horizon = 20.0
        for spec in arm.interventions:
            spec.start = 5.0
    db = str(tmp_path / "t.db")
    run_experiment(scenario, db, workers=1, progress=False)
    store = open_store(db)
    try:
        text = write_report(store, scenario.name, tmp_path / "rep").read_text()
    finally:
        store.dispose()
    head = text.split("## Runs")[0]
    assert "## How far to trust the twin" in head
    for label in ("event count", "negative share", "reciprocity", "newcomer share"):
        assert f"| {label} |" in head
    store = open_store(db)
    try:
        blocked = store.frame(
            "SELECT r.arm AS arm, i.blocked_by AS by, MIN(i.t) AS first, COUNT(*) AS n, "
            "SUM(CASE WHEN i.sign < 0 THEN 1 ELSE 0 END) AS neg FROM interactions i "
            "JOIN runs r ON r.id = i.run_id WHERE NOT i.delivered GROUP BY r.arm, i.blocked_by")
        causes = set(store.frame("SELECT DISTINCT cause FROM interactions")["cause"])
    finally:
        store.dispose()
    assert causes == {"learned"}
    mod = blocked[(blocked["arm"] == "moderation") & (blocked["by"] == "moderation")]
    assert len(mod) == 1 and mod["n"].iloc[0] > 0
    assert mod["first"].iloc[0] >= 5.0  # nothing is moderated before the intervention starts
    assert blocked[blocked["arm"] == "baseline"].empty


def test_twin_scenario_refuses_a_missing_source(tmp_path: Path) -> None:
    from sim.engine.simulate import simulate
    from sim.errors import SignsimError

    text = (ROOT / "scenarios" / "otc_twin.toml").read_text().replace(
        "../data/soc-sign-bitcoinotc.csv", "no-such-file.csv")
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(SignsimError, match="no-such-file.csv"):
        simulate(str(tmp_path / "x.db"), scenario_path=str(path), seed=0)
