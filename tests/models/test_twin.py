"""The learned twin: hand-written events with exact expected features, likelihoods and runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.twin.activity import (
    N_FEATURES,
    RATE_OFFSET,
    SLOW,
    ActivityTracker,
    _first_appearance,
    _kernel_sums,
    fit_activity,
)
from models.twin.choice import POOLS, ChoiceModel, ChoiceRecorder, small_pools
from models.twin.fit import fit_twin
from models.twin.graph import POP_TAU, GraphState
from models.twin.observed import Observed, Stream, split_observed
from models.twin.run import generate
from sim.contract import KIND_CODES
from sim.errors import SignsimError
from sim.store.database import open_store

E = math.exp


def _stream(rows: list[tuple[float, int, int, int]]) -> Stream:
    t, s, d, g = (np.array(c) for c in zip(*rows, strict=True))
    return Stream.from_columns(t, s, d, g, np.full(len(rows), 0.5))


def test_activity_features_and_integrals_are_exact() -> None:
    s = _stream([(0.0, 0, 1, 1), (1.0, 1, 0, 1), (3.0, 0, 1, -1)])
    x, comp = _kernel_sums(s, np.array([0.0, 0.0]), (1.0, 10.0), 4.0)
    assert x.shape == (3, N_FEATURES)
    expected = np.zeros((3, N_FEATURES))
    expected[:, 0] = 1.0
    expected[0, 7:9] = [1.0, 0.1]
    expected[1, 3:5] = [E(-1), E(-0.1) / 10]  # node 1 was rated positively at t = 0
    expected[1, 7:9] = [E(-1), E(-0.1) / 10]
    expected[2, 1:3] = [E(-3), E(-0.3) / 10]  # node 0's own act at t = 0
    expected[2, 3:5] = [E(-2), E(-0.2) / 10]  # rated positively by node 1 at t = 1
    expected[2, 7:9] = [E(-3), E(-0.3) / 10]
    expected[2, 9] = 1.0 / (3.0 + RATE_OFFSET)
    expected[2, 10] = E(-3 / SLOW) / SLOW
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-15)
    tails1 = [1 - E(-4), 1 - E(-3), 1 - E(-1)]
    tails10 = [1 - E(-0.4), 1 - E(-0.3), 1 - E(-0.1)]
    want = [8.0, sum(tails1), sum(tails10), sum(tails1[:2]), sum(tails10[:2]), tails1[2],
            tails10[2], 2 * (1 - E(-4)), 2 * (1 - E(-0.4)),
            math.log(34 / 30) + math.log(34 / 31) + math.log(34 / 33),
            sum(1 - E(-(4 - t) / SLOW) for t in (0.0, 1.0, 3.0))]
    np.testing.assert_allclose(comp, want, rtol=1e-12)


def test_activity_fit_recovers_a_poisson_rate() -> None:
    rng = np.random.default_rng(3)
    n, span, rate = 40, 400.0, 0.2
    rows = []
    for u in range(n):
        for t in np.cumsum(rng.exponential(1 / rate, 200)):
            if t < span:
                rows.append((float(t), u, (u + 1 + int(rng.integers(n - 1))) % n, 1))
    s = _stream(rows)
    m = fit_activity(s, n, span, 100.0)
    # The maximum-likelihood fit integrates to the number of acts it explains (all acts
    # but the nodes' first ones, which the arrival process explains)...
    arrival, as_actor = _first_appearance(s, n)
    x, comp = _kernel_sums(s, arrival, m.taus, span)
    theta = np.array([m.mu, *m.own, m.received[0], m.received[1], m.received[2],
                      m.received[3], *m.arrival, m.rate, m.slow])
    assert comp @ theta == pytest.approx(len(s) - as_actor.sum(), rel=1e-3)
    # ... and at the end of a homogeneous Poisson stream it predicts the true rate.
    tracker = ActivityTracker(m, n)
    tracker.replay(s, arrival)
    tracker.advance(span)
    assert tracker.rates(np.ones(n, dtype=bool), 0.1).mean() == pytest.approx(rate, rel=0.1)


def _triangle() -> GraphState:
    g = GraphState(3, np.zeros(3, dtype=np.int64))
    g.observe(0.0, 0, 1, 1, 0.5)
    g.observe(1.0, 1, 2, -1, 0.5)
    g.observe(2.0, 2, 0, 1, 0.5)
    return g


def test_graph_two_hop_and_pools_on_a_triangle() -> None:
    g = _triangle()
    assert g.two_hop(0) == {1: (1, -1), 2: (1, -1)}
    pools = small_pools(g, 0, 5.0)
    members = [m for m, _ in pools]
    assert members == [[2], [1], [1, 2], [2, 1]]
    np.testing.assert_allclose(pools[0][1], [[math.log1p(3.0), 1.0]])
    np.testing.assert_allclose(pools[1][1], [[math.log1p(5.0), 0.0]])
    np.testing.assert_allclose(pools[2][1], [[0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(pools[3][1], [[math.log1p(4.0), 0.0], [math.log1p(5.0), 1.0]])
    f = g.sign_features(5.0, 0, 2)
    # 2 rated 0 positively; 2 received one negative act (prior 1/4 * 2 smoothed over 3).
    prior = (1 + 0.15) / 4.0
    assert f[:4] == pytest.approx([1.0, 0.0, (1 + 2 * prior) / 3.0, math.log(2.0)])


def test_choice_likelihood_with_zero_weights_is_the_uniform_mixture() -> None:
    g = _triangle()
    rec = ChoiceRecorder()
    rec.record(g, np.zeros(3, dtype=np.int64), 5.0, 0, 1)
    ll = float(rec.log_likelihood(ChoiceModel()).detach()[0])
    w1, w2 = 1.0, E(1.0 / POP_TAU)  # in-weights of nodes 1 (rated at t=0) and 2 (t=1)
    p = (0.0 + 1.0 + 0.5 + 0.5 + w1 / (w1 + w2) + 0.5) / 6.0
    assert ll == pytest.approx(math.log(p), rel=1e-12)


def _simulated(seed: int = 0) -> Observed:
    """A mechanistic run with trolls that attack the other group (no database)."""
    from sim.config import SimConfig
    from tests.helpers import run_memory

    cfg = SimConfig(horizon=40.0)
    cfg.population.n_agents = 120
    cfg.population.groups = 2
    cfg.population.kinds = {"citizen": 0.8, "troll": 0.2}
    cfg.population.mean_rate = 0.5
    cfg.dynamics.troll_outgroup = 1.0
    cfg.dynamics.troll_negativity = 1.0
    cfg.recording.metric_cadence = 0.0
    model, rec = run_memory(cfg, seed)
    e = rec.events()
    ok = e["blocked"] == 0
    s = Stream.from_columns(e["t"][ok], e["src"][ok], e["dst"][ok], e["sign"][ok], e["weight"][ok])
    pop = model.population
    from models.twin.observed import _renumber

    src, dst, orig = _renumber(s.src, s.dst)
    return Observed(run_id=0, name="sim", stream=Stream(s.t, src, dst, s.sign, s.weight),
                    node_ids=orig, kind=pop.kind[orig], group=pop.group[orig],
                    opinion=pop.opinion[orig], span=40.0)


def _generated_rows(db: str, observed: Observed, seed: int = 0) -> str:
    cut = split_observed(observed, 0.7)
    fit = fit_twin(cut, iterations=20)
    store = open_store(db)
    try:
        ids, _, events = generate(store, fit, "twin", 1, scenario="twin-test")
        assert events > 0
        return store.table_hash(ids[0])
    finally:
        store.dispose()


def test_generated_runs_ignore_the_held_out_events(tmp_path) -> None:
    obs = _simulated()
    cut = split_observed(obs, 0.7)
    k = len(cut.history)
    changed = Observed(**{**obs.__dict__})
    s = obs.stream
    sign, dst, weight = s.sign.copy(), s.dst.copy(), s.weight.copy()
    sign[k:] = -sign[k:]
    dst[k:-1] = dst[k:-1][::-1]
    weight[k:] *= 0.5
    changed.stream = Stream(s.t.copy(), s.src.copy(), dst, sign, weight)
    a = _generated_rows(str(tmp_path / "a.db"), obs)
    b = _generated_rows(str(tmp_path / "b.db"), changed)
    c = _generated_rows(str(tmp_path / "c.db"), obs)
    assert a == b == c
    # The comparison is sensitive: a change before the split changes the generated rows.
    sign[:k] = -sign[:k]
    changed.stream = Stream(s.t.copy(), s.src.copy(), dst, sign, weight)
    assert _generated_rows(str(tmp_path / "d.db"), changed) != a


def test_twin_learns_that_trolls_attack_the_other_group() -> None:
    obs = _simulated()
    fit = fit_twin(split_observed(obs, 0.7), iterations=40, temperature=False)
    troll, citizen = KIND_CODES.index("troll"), KIND_CODES.index("citizen")
    # Trolls look for the other group when they pick at random; citizens do not.
    uniform = POOLS.index("uniform")
    assert fit.choice.same[troll, uniform] < -1.0 < fit.choice.same[citizen, uniform]
    coef = fit.sign.coefficients()
    assert coef["troll_out_group"] < 0  # out-group acts of trolls are negative


def test_split_refuses_bad_fractions() -> None:
    obs = _simulated()
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(SignsimError, match="split"):
            split_observed(obs, bad)


def test_interventions_act_on_twin_acts_and_blocked_acts_never_reach_the_twin() -> None:
    from models.twin.run import learned_generator, twin_config
    from sim.engine.model import SocialModel
    from sim.engine.recording import Recorder
    from sim.scenario import parse_scenario

    obs = _simulated()
    fit = fit_twin(split_observed(obs, 0.7), iterations=20, temperature=False)
    arms = parse_scenario(
        'name = "x"\nhorizon = 10.0\nseeds = 1\nbaseline = "a"\n[[arms]]\nname = "a"\ninterventions = [\n'
        '  { type = "friction", start = 2.0, share = 1.0 },\n'
        '  { type = "ban", start = 4.0, kind = "troll" },\n]\n').arms
    dyn, pop, cap = learned_generator(fit, "twin")
    rec = Recorder(None, keep_events=True)
    model = SocialModel(twin_config(12.0, cap, fit.opinion_steps), 0, dynamics=dyn, recorder=rec,
                        population=pop, interventions=arms[0].interventions)
    negatives_before = int((fit.split.history.sign < 0).sum())
    model.run()
    e = rec.events()
    late = e["t"] >= 2.0
    # Friction withdraws every negative act from day 2 on; none reaches the twin's graph.
    assert np.all(e["blocked"][late & (e["sign"] < 0)] > 0)
    assert np.count_nonzero(late & (e["sign"] < 0)) > 0
    delivered_neg = int(np.count_nonzero((e["blocked"] == 0) & (e["sign"] < 0)))
    assert dyn.graph.n_neg == negatives_before + delivered_neg
    assert dyn.graph.n_events == len(fit.split.history) + int(np.count_nonzero(e["blocked"] == 0))
    # Banned trolls act no more after day 4.
    troll = KIND_CODES.index("troll")
    assert not np.any(pop.kind[e["src"][e["t"] > 4.0]] == troll)
    assert np.any(pop.kind[e["src"][e["t"] < 4.0]] == troll)


def test_attributes_at_takes_the_last_snapshot_at_or_before_t() -> None:
    s = _stream([(0.0, 0, 1, 1), (1.0, 1, 2, 1)])
    snaps = (np.array([0.5, 0.5, 2.0]), np.array([0, 2, 0]), np.array([0.1, 0.2, 0.3]),
             np.array([0.0, 0.4, 0.9]))
    obs = Observed(0, "x", s, np.arange(3), np.zeros(3, np.int8), np.zeros(3, np.int32),
                   np.array([1.0, 2.0, 3.0]), 2.0, snaps)
    op, neg = obs.attributes_at(0.4)
    assert op.tolist() == [1.0, 2.0, 3.0] and neg.tolist() == [0.0, 0.0, 0.0]
    op, neg = obs.attributes_at(1.0)
    assert op.tolist() == [0.1, 2.0, 0.2] and neg.tolist() == [0.0, 0.0, 0.4]
    op, neg = obs.attributes_at(2.0)
    assert op.tolist() == [0.3, 2.0, 0.2] and neg.tolist() == [0.9, 0.0, 0.4]


def test_answer_fit_counts_only_ratings_old_enough_to_be_answered() -> None:
    from models.twin.answers import fit_answers

    m = fit_answers(np.array([0.0, 1.0, 2.0, 3.0, 99.0]), np.array([1, 1, 1, -1, 1]),
                    np.array([0.5, 1.5, np.nan, np.nan, np.nan]), 100.0)
    # Cut-off: 100 - 90th percentile of the delays (1.4): the rating at day 99 is too recent.
    assert m.prob == pytest.approx(2 / 3) and m.prob_negative == 0.0 and m.n_answers == 2
    assert sum(m.weights) == pytest.approx(1.0)
    assert m.intensity_scale(1) == pytest.approx(-math.log(1 / 3))


def test_answered_ratings_leave_the_answer_intensity() -> None:
    from models.twin.answers import AnswerModel

    obs = _simulated()
    fit = fit_twin(split_observed(obs, 0.7), iterations=5, temperature=False)
    tr = ActivityTracker(fit.activity, 5)
    tr.use_answers(AnswerModel(0.5, 0.1, (1.0, 0.0), (0.1, 5.0), 10))
    tr.advance(1.0)
    tr.pending(2, 1.0, 1)
    tr.pending(2, 1.0, -1)
    ans, total = tr.answer_and_total(2)
    scale_pos, scale_neg = -math.log(0.5), -math.log(0.9)
    assert ans == pytest.approx((scale_pos + scale_neg) * (1.0 / 0.1 + 0.0 / 5.0))
    assert total >= ans
    tr.answered(2, 1.0, 1)
    assert tr.answer_and_total(2)[0] == pytest.approx(scale_neg * 10.0)
    assert tr.answer_term(1.0, -1, 1.0) == pytest.approx(scale_neg * 10.0)


def test_opinion_steps_are_learned_from_snapshots(tmp_path) -> None:
    from models.twin.observed import load_observed
    from models.twin.opinions import fit_opinion_steps
    from sim.config import SimConfig
    from sim.engine.simulate import run_into_store

    cfg = SimConfig(horizon=30.0)
    cfg.population.n_agents = 150
    cfg.population.kinds = {"citizen": 1.0}
    cfg.population.mean_rate = 1.0
    cfg.dynamics.attraction = 0.2
    cfg.dynamics.repulsion = 0.05
    cfg.recording.metric_cadence = 0.0
    cfg.recording.snapshot_cadence = 1.0
    cfg.recording.snapshot_sample = 0
    store = open_store(str(tmp_path / "s.db"))
    try:
        run = run_into_store(store, cfg, seed=2).run_id
        steps = fit_opinion_steps(split_observed(load_observed(store, run), 0.7))
    finally:
        store.dispose()
    assert steps["intervals"] >= 15 and steps["weight_scaled"] is True
    assert steps["attraction"] == pytest.approx(0.2, rel=0.25)
    # Opinions stuck at the interval's ends cannot be pushed further: repulsion is seen
    # smaller than set, never larger.
    assert 0.0 < steps["repulsion"] <= 0.05 * 1.1


def test_imported_networks_learn_no_opinion_steps() -> None:
    from models.twin.opinions import fit_opinion_steps

    obs = _simulated()
    assert fit_opinion_steps(split_observed(obs, 0.7))["attraction"] == 0.0
