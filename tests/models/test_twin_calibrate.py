import math

import numpy as np
import pytest

from models.twin.calibrate import (
    DISTANCE_CAP,
    FITTED_STATISTICS,
    PARAMETERS,
    calibrate_rules,
    calibration_objective,
)
from models.twin.observed import Stream
from models.twin.stats import stream_statistics
from sim.config import SimConfig
from sim.errors import SignsimError
from tests.helpers import run_memory

TRUE_RATE = 0.8


def _events(cfg: SimConfig, seed: int) -> Stream:
    _, rec = run_memory(cfg, seed)
    ev = rec.events()
    ok = ev["blocked"] == 0
    return Stream.from_columns(ev["t"][ok], ev["src"][ok], ev["dst"][ok], ev["sign"][ok],
                               ev["weight"][ok])


@pytest.fixture(scope="module")
def truth() -> Stream:
    """30 days of 300 citizens under known rules, far from the defaults in negativity."""
    cfg = SimConfig(horizon=30.0)
    pop, dyn = cfg.population, cfg.dynamics
    pop.n_agents, pop.groups, pop.kinds = 300, 1, {"citizen": 1.0}
    pop.initial_opinion, pop.mean_rate, pop.rate_sigma = "uniform", TRUE_RATE, 0.6
    cfg.network.kind, cfg.network.mean_degree = "sbm", 6.0
    dyn.base_negativity, dyn.confidence, dyn.sign_temperature = -1.0, 0.8, 0.3
    dyn.p_reply, dyn.p_exposure = 0.4, 0.5
    cfg.recording.metric_cadence = 0.0
    return _events(cfg, 7)


def test_recovers_negativity_and_rate_of_known_rules(truth, tmp_path):
    cal = calibrate_rules(truth, 300, 10.0, tmp_path, budget=100)
    fit = cal.fit
    assert fit["optimiser"] == "Nelder-Mead" and fit["evaluations"] <= 100
    # window: the last min(10, 0.3 * span) days of the history
    span = float(truth.t[-1] - truth.t[0])
    assert fit["window_days"] == pytest.approx(min(10.0, 0.3 * span))
    target, start, fitted = fit["target"], fit["start_stats"], fit["fitted"]
    # the defaults are far off (about half the acts negative against 8%) ...
    assert abs(start["negative_share"] - target["negative_share"]) > 0.3
    # ... and the fit brings the window statistics close
    assert fit["objective"] < 0.1 * fit["objective_start"]
    assert abs(fitted["negative_share"] - target["negative_share"]) < 0.02
    assert fitted["event_count"] == pytest.approx(target["event_count"], rel=0.10)
    assert cal.params["mean_rate"] == pytest.approx(TRUE_RATE, rel=0.10)
    # the returned settings, run with fresh seeds, behave like the truth's last days
    cfg = cal.config
    assert cfg.horizon == 10.0 and cfg.population.n_agents == 300
    assert cfg.recording.metric_cadence == 0.0 and cfg.recording.snapshot_cadence == 0.0
    for p in PARAMETERS:
        section = cfg.population if p.section == "population" else cfg.dynamics
        assert getattr(section, p.name) == cal.params[p.name]
    runs = [_events(cfg, seed) for seed in (1, 2, 3)]
    neg = np.mean([np.mean(r.sign < 0) for r in runs])
    assert abs(neg - target["negative_share"]) < 0.03
    per_day = np.mean([len(r) for r in runs]) / cfg.horizon
    assert per_day == pytest.approx(target["event_count"] / fit["window_days"], rel=0.10)


def test_follow_network_is_the_positive_pairs_of_the_history(tmp_path):
    history = Stream.from_columns(
        np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), np.array([0, 1, 1, 2, 3, 0]),
        np.array([1, 0, 0, 2, 0, 1]), np.array([1, 1, 1, 1, -1, 1]), np.full(6, 0.5))
    cal = calibrate_rules(history, 5, 2.0, tmp_path, budget=3)
    text = open(cal.config.network.path, encoding="utf-8").read()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    # 2->2 is a self-pair, 3->0 is negative, repeats count once
    assert lines == ["0,1", "1,0"]
    assert cal.config.network.kind == "edge_list"
    # the calibration window is [3.5, 5]; its follow network is the pairs before 3.5
    before = (tmp_path / "calibration_follow.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert before == ["0,1", "1,0"]
    assert cal.fit["window"] == pytest.approx([3.5, 5.0])
    assert cal.fit["evaluations"] == 3


def test_same_inputs_and_seed_give_identical_parameters(truth, tmp_path):
    a = calibrate_rules(truth, 300, 10.0, tmp_path / "a", budget=15, seed=3)
    b = calibrate_rules(truth, 300, 10.0, tmp_path / "b", budget=15, seed=3)
    assert a.params == b.params
    assert a.fit["objective"] == b.fit["objective"]
    c = calibrate_rules(truth, 300, 10.0, tmp_path / "c", budget=15, seed=4)
    assert c.fit["objective_start"] != a.fit["objective_start"]


def test_parameter_transforms_round_trip_and_stay_inside_bounds():
    for p in PARAMETERS:
        lo, hi = p.limits(2.0)
        assert (lo, hi) == ((p.low * 2.0, p.high * 2.0) if p.relative else (p.low, p.high))
        mid = math.sqrt(lo * hi) if p.log else 0.5 * (lo + hi)
        assert p.to_free(mid, 2.0) == pytest.approx(0.0, abs=1e-12)
        for value in (lo + 0.1 * (hi - lo), mid, hi - 0.1 * (hi - lo)):
            assert p.from_free(p.to_free(value, 2.0), 2.0) == pytest.approx(value, rel=1e-9)
        assert lo <= p.from_free(-1e6, 2.0) <= p.from_free(1e6, 2.0) <= hi


def test_objective_leaves_out_undefined_targets_and_caps_infinite_distances():
    history = Stream.from_columns(np.array([0.0]), np.array([0]), np.array([1]),
                                  np.array([1]), np.array([0.5]))
    real = Stream.from_columns(np.array([1.0, 2.0]), np.array([0, 1]), np.array([1, 2]),
                               np.array([1, -1]), np.array([0.2, 0.8]))
    gen = Stream.from_columns(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 0]),
                              np.array([0, 2, 2]), np.array([1, 1, 1]), np.array([0.3, 0.4, 0.5]))
    target = stream_statistics(real, history, 1.0, 3.0)
    value, d = calibration_objective(stream_statistics(gen, history, 1.0, 3.0), target)
    assert set(d) == set(FITTED_STATISTICS)
    assert math.isnan(d["balanced_share"])  # no triangle in the target
    assert d["weight"] == math.inf  # no negative event generated
    assert d["event_count"] == pytest.approx(0.5)
    assert d["negative_share"] == pytest.approx(1.0)
    assert d["reciprocity"] == math.inf  # 1->0 reverses history's 0->1; no real pair reversed
    assert d["new_pair_share"] == pytest.approx((2 / 3 - 1 / 2) / (1 / 2))
    assert d["degree"] == pytest.approx(0.5)  # KS of [1, 2] against [1, 1], in and out
    finite = 0.5**2 + 1.0**2 + (1 / 3) ** 2 + 0.5**2
    assert value == pytest.approx(finite + 2 * DISTANCE_CAP**2)


@pytest.mark.parametrize("case, pattern", [
    ("empty", "at least 2 events"),
    ("small_n", "n_nodes must be at least the largest id"),
    ("negative_id", "node ids span -1"),
    ("horizon", "positive number of days"),
    ("budget", "budget must be"),
    ("instant", "same time"),
])
def test_bad_input_is_refused_before_anything_is_written(case, pattern, tmp_path):
    ok = Stream.from_columns(np.array([0.0, 1.0, 2.0]), np.array([0, 1, 2]),
                             np.array([1, 2, 0]), np.array([1, -1, 1]), np.full(3, 0.5))
    history, n, horizon, budget = ok, 3, 5.0, 4
    if case == "empty":
        history = ok.slice(0, 0)
    elif case == "small_n":
        n = 2
    elif case == "negative_id":
        history = Stream(ok.t, ok.src - 1, ok.dst, ok.sign, ok.weight)
    elif case == "horizon":
        horizon = float("nan")
    elif case == "budget":
        budget = 0
    else:
        history = Stream(np.zeros(3), ok.src, ok.dst, ok.sign, ok.weight)
    work = tmp_path / "work"
    with pytest.raises(SignsimError, match=pattern):
        calibrate_rules(history, n, horizon, work, budget=budget)
    assert not work.exists()
