"""Engine behaviour: classic models reproduced, exact Poisson activity, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config import SimConfig
from sim.engine.kernel import P
from sim.engine.metrics import balanced_triangle_share
from sim.engine.model import SocialModel
from sim.engine.recording import Recorder
from sim.scenario import parse_scenario
from tests.helpers import deffuant_config, major_clusters, run_memory


@pytest.mark.parametrize("eps,expected", [(0.5, 1), (0.25, 2), (0.15, 3)])
def test_deffuant_bounded_confidence_cluster_count(eps, expected):
    # floor(1 / (2 eps)) major clusters (Deffuant et al. 2000), on every seed
    assert expected == int(np.floor(1 / (2 * eps)))
    for seed in range(5):
        model, _ = run_memory(deffuant_config(eps), seed)
        assert major_clusters(model.population.opinion) == expected, (eps, seed)


def _balance_config() -> SimConfig:
    cfg = SimConfig(horizon=40.0)
    pop, dyn = cfg.population, cfg.dynamics
    pop.n_agents, pop.groups, pop.kinds = 200, 1, {"citizen": 1.0}
    pop.initial_opinion, pop.rate_distribution = "uniform", "constant"
    cfg.network.kind, cfg.network.ws_k, cfg.network.ws_p = "watts_strogatz", 10, 0.1
    dyn.sign_temperature, dyn.base_negativity, dyn.contagion, dyn.balance = 50.0, 0.0, 0.0, 0.0
    dyn.attraction = dyn.repulsion = dyn.p_exposure = dyn.p_reply = 0.0
    dyn.follow_prob = dyn.unfollow_prob = 0.0
    cfg.recording.metric_cadence = 0.0
    return cfg


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balance_dynamics_raise_the_share_of_balanced_triangles(seed):
    # signs are coin flips for 10 days, then structural balance switches on
    rec = Recorder(None, keep_events=True)
    model = SocialModel(_balance_config(), seed, recorder=rec)
    model.call_at(10.0, lambda m: m.params.__setitem__(P.BALANCE, 6.0))
    model.run()
    ev = rec.events()

    def share(until: float) -> float:
        k = ev["t"] < until
        return balanced_triangle_share(ev["src"][k], ev["dst"][k], ev["sign"][k])

    assert abs(share(10.0) - 0.5) < 0.06  # random signs: about half balanced
    assert share(25.0) > share(10.0) + 0.15
    assert share(40.0) > share(25.0)


def _counts_config(n: int = 300, horizon: float = 50.0) -> SimConfig:
    cfg = SimConfig(horizon=horizon)
    cfg.population.n_agents = n
    cfg.population.rate_distribution = "lognormal"
    cfg.population.rate_sigma = 1.5
    cfg.recording.metric_cadence = 0.0
    return cfg


def test_superposed_process_gives_each_agent_its_own_poisson_count():
    model, rec = run_memory(_counts_config(), seed=4)
    counts = np.bincount(rec.events()["src"].astype(np.int64), minlength=model.population.n)
    lam = model.population.rate * model.horizon
    # Pearson dispersion statistic of Poisson counts: mean n, sd sqrt(2n) (approximately)
    stat = float(np.sum((counts - lam) ** 2 / lam))
    n = model.population.n
    assert abs(stat - n) < 4 * np.sqrt(2 * n)
    rates = model.population.rate
    assert rates.max() / np.median(rates) > 10  # heavy-tailed activity


def test_ban_mid_run_changes_the_rate_exactly():
    text = """
    horizon = 40.0
    [population]
    n_agents = 500
    kinds = {citizen = 0.8, troll = 0.2}
    [recording]
    metric_cadence = 0.0
    [[arms]]
    name = "baseline"
    interventions = [{type = "ban", kind = "troll", start = 20.0}]
    """
    arm = parse_scenario(text).arms[0]
    rec = Recorder(None, keep_events=True)
    model = SocialModel(arm.config, 7, interventions=arm.interventions, recorder=rec)
    rates_before = model.population.rate.sum()
    model.run()
    ev = rec.events()
    trolls = np.flatnonzero(model.population.kind == 2)
    late = ev["t"] >= 20.0
    assert not np.isin(ev["src"][late], trolls).any()
    assert not np.isin(ev["dst"][late & (ev["blocked"] == 0)], trolls).any()
    expected_before = rates_before * 20.0
    expected_after = model.population.rate[model.population.kind != 2].sum() * 20.0
    for observed, lam in ((np.count_nonzero(~late), expected_before),
                          (np.count_nonzero(late), expected_after)):
        assert abs(observed - lam) < 4 * np.sqrt(lam)
    assert [r["action"] for r in rec.intervention_rows].count("ban") == trolls.size


def test_moderation_suspends_and_reinstates_on_the_clock():
    text = """
    horizon = 20.0
    [population]
    n_agents = 300
    kinds = {citizen = 0.9, troll = 0.1}
    [recording]
    metric_cadence = 0.0
    [[arms]]
    name = "baseline"
    [[arms.interventions]]
    type = "moderation"
    recall = 1.0
    false_positive_rate = 0.0
    strikes = 2
    suspension_days = 3.0
    start = 1.0
    """
    arm = parse_scenario(text).arms[0]
    rec = Recorder(None, keep_events=True)
    model = SocialModel(arm.config, 2, interventions=arm.interventions, recorder=rec)
    model.run()
    ev = rec.events()
    logs = [r for r in rec.intervention_rows if r["action"] in ("suspend", "reinstate")]
    suspensions = [r for r in logs if r["action"] == "suspend"]
    assert suspensions
    for s in suspensions:
        agent, t0 = s["agent_id"], s["t"]
        acted = ev["t"][(ev["src"] == agent) & (ev["t"] > t0) & (ev["t"] < t0 + 3.0)]
        assert acted.size == 0
    assert any(r["action"] == "reinstate" for r in logs)
    after = ev["t"] > 1.0
    assert np.all(ev["blocked"][after & (ev["sign"] < 0) & (ev["blocked"] != 4)] > 0)


def test_same_seed_same_events_different_seed_different_events():
    cfg = _counts_config(200, 5.0)
    a = run_memory(cfg, 11)[1].events()
    b = run_memory(cfg, 11)[1].events()
    c = run_memory(cfg, 12)[1].events()
    for key in a:
        assert np.array_equal(a[key], b[key])
    assert a["t"].shape != c["t"].shape or not np.array_equal(a["t"], c["t"])


def test_mesa_agents_mirror_the_population():
    model = SocialModel(_counts_config(50, 1.0), 0)
    assert len(model.agents) == 50
    trolls = model.agents.select(lambda a: a.kind == "troll")
    assert len(trolls) == int((model.population.kind == 2).sum())
    agent = model.agent_list[3]
    agent.opinion = 0.25
    assert model.population.opinion[3] == 0.25
    assert agent.rate == model.population.rate[3]
