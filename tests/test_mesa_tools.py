"""Mesa's own tools on signsim models: DataCollector, batch_run, the keyword-only model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mesa.batchrunner import batch_run

from sim.config import SimConfig
from sim.contract import KIND_CODES
from sim.engine.mesa_tools import MODEL_REPORTERS, MesaSocialModel
from sim.engine.metrics import METRIC_NAMES
from sim.engine.model import SocialModel
from sim.engine.recording import Recorder
from sim.errors import SignsimError
from sim.scenario import load_scenario
from sim.store.database import Store
from sim.sweep.experiment import run_experiment

CONFIDENCE = (0.3, 0.6)
SHARE = (0.1, 0.4)
SEEDS = (0, 1)
HORIZON = 6.0


def _arm(confidence: float, share: float) -> str:
    return f"c{confidence}_s{share}"


def _sweep_scenario(path) -> str:
    """A scenario whose four arms are the 2 x 2 grid (confidence x friction share)."""
    arms = "".join(
        f'\n[[arms]]\nname = "{_arm(c, s)}"\ndynamics = {{ confidence = {c} }}\n'
        f'interventions = [{{ type = "friction", start = 2.0, share = {s} }}]\n'
        for c in CONFIDENCE for s in SHARE)
    path.write_text(
        f'name = "mesa_grid"\nhorizon = {HORIZON}\nseeds = {len(SEEDS)}\n'
        f'baseline = "{_arm(CONFIDENCE[0], SHARE[0])}"\n'
        "[population]\nn_agents = 120\n[network]\nmean_degree = 6.0\n"
        "[recording]\nmetric_cadence = 1.0\nmetric_window = 2.0\n" + arms)
    return str(path)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The same 2 x 2 x 2 seeds question answered by batch_run and by signsim's sweep."""
    tmp = tmp_path_factory.mktemp("grid")
    scenario = _sweep_scenario(tmp / "grid.toml")
    rows = batch_run(
        MesaSocialModel,
        parameters={"scenario": scenario, "arm": _arm(CONFIDENCE[0], SHARE[0]),
                    "confidence": list(CONFIDENCE), "intervention_share": list(SHARE),
                    "seed": list(SEEDS), "collect_agents": False},
        data_collection_period=1, max_steps=100, display_progress=False)
    db = str(tmp / "grid.db")
    result = run_experiment(load_scenario(scenario), db, workers=1, progress=False)
    assert len(result.runs) == 8 and all(r.ok for r in result.runs)
    store = Store(db, create=False, read_only=True)
    try:
        stored = store.frame(
            "SELECT r.arm, r.seed, m.t, m.name, m.value FROM metrics m "
            "JOIN runs r ON r.id = m.run_id WHERE r.scenario = 'mesa_grid'")
    finally:
        store.dispose()
    return pd.DataFrame(rows), stored


def test_batch_run_gives_the_metric_values_of_the_stored_runs(grid):
    batch, stored = grid
    assert len(batch) == 8 * (int(HORIZON) + 1)  # 8 runs, ticks at days 0..6
    values = {(r.arm, int(r.seed), float(r.t), r.name): float(r.value)
              for r in stored.itertuples()}
    compared = 0
    for row in batch.itertuples():
        arm = _arm(row.confidence, row.intervention_share)
        assert row.t == float(row.Step)
        for name in METRIC_NAMES:
            key = (arm, int(row.seed), float(row.t), name)
            value = getattr(row, name)
            if math.isnan(value):
                assert key not in values  # undefined: no stored row
            else:
                assert values.pop(key) == value, key
                compared += 1
    assert not values  # every stored row was matched by a batch_run value
    assert compared > 8 * 7 * 8  # most metrics are defined at most ticks


def test_the_swept_parameters_reach_the_model(grid):
    batch, _ = grid
    final = batch[batch.t == HORIZON].set_index(["confidence", "intervention_share", "seed"])
    assert len(final) == 8
    # Every combination gives its own trajectory (the overrides are applied) ...
    assert final[list(METRIC_NAMES)].round(12).drop_duplicates().shape[0] == 8
    # ... and the pre-intervention days are common to both friction shares of a confidence.
    early = batch[batch.t == 1.0].set_index(["confidence", "seed", "intervention_share"])
    for c in CONFIDENCE:
        for s in SEEDS:
            a, b = early.loc[(c, s, SHARE[0])], early.loc[(c, s, SHARE[1])]
            assert a.negative_share == b.negative_share


def test_default_batch_run_reports_the_horizon_and_max_steps_the_tick():
    full = batch_run(MesaSocialModel, parameters={"n_agents": 60, "horizon": 3.5, "seed": 4},
                     display_progress=False)
    # Ticks 0, 1, 2, 3 then the horizon (Step 4): one row per agent at the horizon.
    assert {(r["Step"], r["t"]) for r in full} == {(4, 3.5)}
    assert sorted(r["AgentID"] for r in full) == list(range(1, 61))
    short = batch_run(MesaSocialModel, parameters={"n_agents": 60, "horizon": 10.0, "seed": 4,
                                                   "collect_agents": False},
                      max_steps=3, display_progress=False)
    assert [(r["Step"], r["t"]) for r in short] == [(3, 3.0)]


def test_agent_reporters_are_the_population_state():
    model = MesaSocialModel(n_agents=80, horizon=4.0, seed=2)
    model.run_model()
    assert model.steps == 5 and not model.running
    agents = model.datacollector.get_agent_vars_dataframe()
    assert sorted(agents.index.get_level_values("Step").unique()) == [0, 1, 2, 3, 4]
    last = agents.xs(4, level="Step").sort_index()
    pop = model.population
    np.testing.assert_array_equal(last.opinion.to_numpy(), pop.opinion)
    decayed = pop.negativity * np.exp(-(4.0 - pop.neg_time) / model.config.dynamics.negativity_decay)
    np.testing.assert_allclose(last.negativity.to_numpy(), decayed, rtol=0, atol=1e-15)
    assert last.kind.tolist() == [KIND_CODES[k] for k in pop.kind]
    first = agents.xs(0, level="Step").sort_index()
    assert not np.array_equal(first.opinion.to_numpy(), pop.opinion)  # opinions moved


def test_model_keeps_only_the_datacollector_rows():
    model = MesaSocialModel(n_agents=60, horizon=5.0, seed=1, collect_agents=False)
    model.run_model()
    assert model.events > 0
    assert model.recorder.batches == [] and model.recorder.metric_rows == []
    frame = model.datacollector.get_model_vars_dataframe()
    assert frame.t.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert list(frame.columns) == list(MODEL_REPORTERS)
    assert model.datacollector._agent_records == {}


def test_stored_runs_have_no_datacollector():
    cfg = SimConfig(horizon=3.0)
    cfg.population.n_agents = 50
    recorder = Recorder(None)
    model = SocialModel(cfg, 0, dynamics=None, interventions=(), recorder=recorder, population=None)
    model.run()
    assert model.datacollector is None
    assert len(recorder.latest_metrics) == len(METRIC_NAMES)


def test_a_drawn_seed_is_kept_and_reproduces_the_run():
    first = MesaSocialModel(n_agents=60, horizon=3.0, collect_agents=False)
    first.run_model()
    again = MesaSocialModel(n_agents=60, horizon=3.0, seed=first.seed, collect_agents=False)
    again.run_model()
    a = first.datacollector.get_model_vars_dataframe()
    b = again.datacollector.get_model_vars_dataframe()
    assert (a.seed == first.seed).all()
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_agents": 1}, "model parameters: population.n_agents: 1 is below the minimum 2."),
    ({"confidence": -0.5}, "dynamics.confidence: -0.5 is below the minimum"),
    ({"horizon": 0.0}, "horizon: 0.0 must be greater than 0 days"),
    ({"horizon": math.inf}, "horizon: inf must be greater than 0 days (and finite)"),
    ({"seed": -1}, "seed: -1 is not a seed"),
    ({"seed": 1.5}, "seed: 1.5 is not a seed"),
    ({"intervention_share": 0.2}, "the arm has no intervention with a share"),
    ({"arm": "friction"}, "arm 'friction' needs a scenario file"),
    ({"scenario": "no/such/file.toml"}, "no/such/file.toml"),
])
def test_bad_parameters_get_a_one_paragraph_error(kwargs, message):
    with pytest.raises(SignsimError) as err:
        MesaSocialModel(**kwargs)
    assert message in str(err.value)
    assert "\n\n" not in str(err.value)


def test_unknown_arm_and_zero_cadence_are_refused(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n[recording]\nmetric_cadence = 0.0\n')
    with pytest.raises(SignsimError, match="metric_cadence is 0"):
        MesaSocialModel(scenario=str(path))
    with pytest.raises(SignsimError, match="has no arm 'nope'"):
        MesaSocialModel(scenario=str(path), arm="nope")
