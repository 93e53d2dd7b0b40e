import math
import time

import numpy as np
import pytest
from scipy import stats

from sim.engine import metrics as m

T, F = True, False


def test_opinion_variance():
    assert m.opinion_variance([0, 1, 2, 3]) == pytest.approx(1.25)
    assert math.isnan(m.opinion_variance([]))


def test_bimodality_hand_case():
    # n=6, three 0s and three 1s: g=0; population excess kurtosis -2;
    # G2 = 5/(4*3) * (7*(-2) + 6) = -10/3; correction 3*25/(4*3) = 25/4;
    # b = 1 / (25/4 - 10/3) = 12/35.
    assert m.bimodality_coefficient([0, 0, 0, 1, 1, 1]) == pytest.approx(12 / 35)


def test_bimodality_matches_scipy_and_edge_cases():
    x = np.random.default_rng(1).gamma(2.0, size=50)
    g = stats.skew(x, bias=False)
    k = stats.kurtosis(x, bias=False)
    n = x.size
    expected = (g**2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    assert m.bimodality_coefficient(x) == pytest.approx(expected)
    assert math.isnan(m.bimodality_coefficient([1, 2, 3]))
    assert math.isnan(m.bimodality_coefficient([0.1] * 10))


def test_group_mean_distance():
    assert m.group_mean_distance([1, 3, -1, -3], [0, 0, 1, 1]) == pytest.approx(4.0)
    # three groups: means 0.5, 2.5, 4.5 -> max pairwise distance 4.0
    assert m.group_mean_distance([0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 7, 7]) == pytest.approx(4.0)
    assert math.isnan(m.group_mean_distance([1, 2], [3, 3]))


def test_negative_share():
    assert m.negative_share([1, -1, -1, 1], [T, T, F, T]) == pytest.approx(1 / 3)
    assert m.negative_share([1, -1, -1, 1]) == pytest.approx(0.5)
    assert math.isnan(m.negative_share([1, -1], [F, F]))


def test_toxicity_exposure():
    # exposures: agent0 = 1+2 (the 4 is blocked), agent1 only positive -> 0, agent2 = 1,
    # agent3 nothing -> 0. Sorted [0,0,1,3]: p90 at position 2.7 -> 1 + 0.7*2 = 2.4.
    mean, p90 = m.toxicity_exposure(
        4, [0, 0, 1, 2, 0], [-1, -1, 1, -1, -1], [1, 2, 5, 1, 4], [T, T, T, T, F]
    )
    assert mean == pytest.approx(1.0)
    assert p90 == pytest.approx(2.4)
    assert m.toxicity_exposure(3, [], [], [], []) == (0.0, 0.0)


def test_balanced_triangles_hand_cases():
    assert m.balanced_triangle_share([0, 1, 2], [1, 2, 0], [1, 1, 1]) == 1.0
    assert m.balanced_triangle_share([0, 1, 2], [1, 2, 0], [1, 1, -1]) == 0.0
    assert m.balanced_triangle_share([0, 1, 2], [1, 2, 0], [-1, -1, 1]) == 1.0
    # K4: 01+, 12+, 02+, 03-, 13-, 23+ -> 012 (+++) and 013 (+--) balanced,
    # 023 (+-+) and 123 (++-) unbalanced.
    src, dst, sg = [0, 1, 0, 0, 1, 2], [1, 2, 2, 3, 3, 3], [1, 1, 1, -1, -1, 1]
    assert m.balanced_triangle_share(src, dst, sg) == pytest.approx(0.5)
    # a path has no triangle; self-loops are ignored
    assert math.isnan(m.balanced_triangle_share([0, 1, 2, 2], [1, 2, 3, 2], [1, 1, 1, 1]))


def test_balanced_triangles_last_sign_either_direction():
    # 0->1 was +, then 1->0 is -: the pair's sign is -, so 0-1-2 with 12+, 02+ is unbalanced.
    src, dst, sg = [0, 1, 2, 1], [1, 2, 0, 0], [1, 1, 1, -1]
    assert m.balanced_triangle_share(src, dst, sg) == 0.0
    # and the reverse order makes it positive again
    assert m.balanced_triangle_share(src[::-1], dst[::-1], sg[::-1]) == 1.0


def test_balanced_triangles_match_dense_trace_formula():
    rng = np.random.default_rng(0)
    n = 30
    src = rng.integers(0, n, 400)
    dst = rng.integers(0, n, 400)
    sg = rng.choice([-1, 1], 400, p=[0.3, 0.7])
    a = np.zeros((n, n))
    for s, d, x in zip(src, dst, sg, strict=True):
        if s != d:
            a[s, d] = a[d, s] = x
    t_all = np.trace(np.linalg.matrix_power(np.abs(a), 3)) / 6
    diff = np.trace(np.linalg.matrix_power(a, 3)) / 6
    expected = (t_all + diff) / (2 * t_all)
    assert m.balanced_triangle_share(src, dst, sg) == pytest.approx(expected)


def test_balanced_triangles_fast_on_100k_heavy_tailed_edges():
    rng = np.random.default_rng(0)
    n = 20_000
    p = 1.0 / np.arange(1, n + 1) ** 0.9
    p /= p.sum()
    src = rng.choice(n, 100_000, p=p)
    dst = rng.choice(n, 100_000, p=p)
    sg = rng.choice([-1, 1], 100_000)
    start = time.perf_counter()
    share = m.balanced_triangle_share(src, dst, sg)
    assert time.perf_counter() - start < 3.0
    assert 0.4 < share < 0.6  # random signs: about half balanced


def test_signed_assortativity():
    groups = [0, 0, 1, 1]
    src, dst, sg = [0, 2, 0, 1, 3], [1, 3, 2, 3, 0], [1, -1, -1, -1, 1]
    # within: +1, -1 -> 0; between: -1, -1, +1 -> -1/3
    assert m.signed_assortativity(src, dst, sg, groups) == pytest.approx(1 / 3)
    # the blocked positive between-group act is left out: between -> -1
    got = m.signed_assortativity(src, dst, sg, groups, [T, T, T, T, F])
    assert got == pytest.approx(1.0)
    assert math.isnan(m.signed_assortativity([0], [1], [1], groups))


def test_activity_suspended_negativity():
    assert m.activity(30, 10.0, 3) == pytest.approx(1.0)
    assert math.isnan(m.activity(5, 10.0, 0))
    assert m.suspended_count([T, F, F, T]) == 2
    assert m.mean_negativity([0.2, 0.4]) == pytest.approx(0.3)


def test_compute_window_metrics_and_rows():
    window = {
        # given out of time order: the engine may pass any order with t
        "t": np.array([3.0, 1.0, 2.0, 4.0, 5.0]),
        "src": np.array([1, 0, 1, 2, 3]),
        "dst": np.array([0, 1, 2, 0, 0]),
        "sign": np.array([-1, 1, 1, 1, -1]),
        "weight": np.array([2.0, 1.0, 1.0, 1.0, 9.0]),
        "delivered": np.array([T, T, T, T, F]),
    }
    opinions = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    groups = np.array([0, 0, 0, 1, 1, 1])
    neg = np.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.0])
    active = np.array([T, T, T, F, T, T])
    out = m.compute_window_metrics(window, opinions, groups, neg, active, 5.0)
    assert tuple(out) == m.METRIC_NAMES
    assert set(m.METRIC_DESCRIPTIONS) == set(m.METRIC_NAMES)
    assert out["opinion_variance"] == pytest.approx(0.25)
    assert out["bimodality"] == pytest.approx(12 / 35)
    assert out["group_mean_distance"] == pytest.approx(1.0)
    assert out["negative_share"] == pytest.approx(0.25)
    assert out["toxicity_mean"] == pytest.approx(2 / 6)
    # last sign of 0-1 is - (t=3): triangle 0-1-2 with 12+, 20+ is unbalanced
    assert out["balanced_triangles"] == 0.0
    assert math.isnan(out["signed_assortativity"])  # no delivered between-group act
    assert out["activity"] == pytest.approx(5 / (5.0 * 5))
    assert out["suspended"] == 1.0
    assert out["mean_negativity"] == pytest.approx(0.1)
    rows = m.metric_rows(7, 5.0, out)
    assert {r["name"] for r in rows} == set(m.METRIC_NAMES) - {"signed_assortativity"}
    assert rows[0] == {"run_id": 7, "t": 5.0, "name": "opinion_variance", "value": 0.25}


def test_compute_window_metrics_empty_window():
    empty = {k: np.array([]) for k in ("src", "dst", "sign", "weight", "delivered", "t")}
    out = m.compute_window_metrics(empty, [0.0, 1.0], [0, 1], [0.0, 0.0], [T, T], 1.0)
    assert out["activity"] == 0.0
    assert out["toxicity_mean"] == 0.0
    assert math.isnan(out["negative_share"])
    assert math.isnan(out["balanced_triangles"])
