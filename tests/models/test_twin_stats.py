import math
import re

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from models.twin.observed import Stream
from models.twin.report import FIGURES, fidelity_markdown, write_fidelity_report
from models.twin.stats import (
    EXTRAS,
    SCOREBOARD,
    compare,
    gini,
    interval,
    ks_distance,
    relative_error,
    stream_statistics,
    top_share,
    total_variation,
    wins,
)
from sim.engine.metrics import balanced_triangle_share, signed_triangle_census
from sim.errors import SignsimError


def stream(rows):
    t, src, dst, sign, weight = (np.array(c) for c in zip(*rows, strict=True)) if rows else [[]] * 5
    return Stream.from_columns(np.asarray(t, float), np.asarray(src, np.int64),
                               np.asarray(dst, np.int64), np.asarray(sign), np.asarray(weight, float))


# history over nodes {0, 1, 2}; the window adds node 3.
HISTORY = stream([(1, 0, 1, 1, 0.2), (2, 1, 2, -1, 0.8), (3, 2, 0, 1, 0.4)])
WINDOW = stream([
    (11, 1, 0, 1, 0.5),   # new pair, reverses history's 0->1 (+): agree
    (12, 2, 1, -1, 1.0),  # new pair, reverses history's 1->2 (-)
    (14, 0, 3, -1, 0.6),  # new pair, newcomer 3, reversed by 3->0 below
    (16, 3, 0, 1, 0.3),   # new pair, newcomer
    (18, 2, 1, 1, 0.1),   # repeated pair: last sign of 2->1 becomes +, disagrees with 1->2 (-)
    (20, 1, 3, -1, 0.9),  # new pair, newcomer, never reversed
])


def test_stream_statistics_hand_computed():
    s = stream_statistics(WINDOW, HISTORY, 10.0, 20.0, windows=10)
    assert s["event_count"] == 6
    assert s["negative_share"] == 0.5
    # bins of one day: events at 11, 12, 14, 16, 18, 20 (t1 = 20 falls in the last bin, alone)
    expected_series = [math.nan, 0, 1, math.nan, 1, math.nan, 0, math.nan, 0, 1]
    np.testing.assert_array_equal(s["negative_share_series"], expected_series)
    np.testing.assert_array_equal(s["series_edges"], np.arange(10.0, 21.0))
    # window pairs 1->0, 2->1, 0->3, 3->0, 1->3: all but 1->3 reversed somewhere
    assert s["reciprocity"] == 4 / 5
    # 1->0 (+) vs 0->1 (+) agree; 2->1 (+) vs 1->2 (-), 0->3 (-) vs 3->0 (+) and back disagree
    assert s["sign_agreement"] == 1 / 4
    assert s["new_pair_share"] == 5 / 6
    assert s["newcomer_share"] == 3 / 6
    # last signs: {0,1} +, {1,2} +, {0,3} +, {1,3} -: one triangle 0-1-3 with one negative edge
    np.testing.assert_array_equal(s["triad_census"], [0, 1, 0, 0])
    assert s["balanced_share"] == 0.0
    # received: node 0 twice, node 1 twice, node 3 twice; sent: 0 once, 1 twice, 2 twice, 3 once
    np.testing.assert_array_equal(s["in_degree"], [2, 2, 2])
    np.testing.assert_array_equal(s["out_degree"], [1, 2, 2, 1])
    assert s["in_degree"].dtype == np.int64
    assert s["in_gini"] == 0.0
    assert s["out_gini"] == pytest.approx(1 / 6, abs=1e-15)  # sum|xi-xj| / (2 n^2 mean) = 8/48
    assert s["in_top1"] == pytest.approx(2 / 6, abs=1e-15)  # top node of 3 (at least one node)
    assert s["out_top1"] == pytest.approx(2 / 6, abs=1e-15)
    assert (s["in_max"], s["out_max"]) == (2, 2)
    assert s["weight_pos"] == pytest.approx((0.5 + 0.3 + 0.1) / 3, abs=1e-15)
    assert s["weight_neg"] == pytest.approx((1.0 + 0.6 + 0.9) / 3, abs=1e-15)


def test_window_order_matters_for_last_signs():
    # the last sign of {0,3} decides balance: reversed order makes it negative -> (+, -, -)
    late_neg = stream([(11, 0, 1, 1, 1), (12, 1, 3, -1, 1), (13, 3, 0, 1, 1), (14, 0, 3, -1, 1)])
    s = stream_statistics(late_neg, HISTORY, 10.0, 15.0, windows=5)
    np.testing.assert_array_equal(s["triad_census"], [0, 0, 1, 0])
    assert s["balanced_share"] == 1.0
    # pairs 0->1 (its reverse never occurs), 1->3 (neither), 3->0 and 0->3 (each other's)
    assert s["reciprocity"] == 2 / 4
    assert s["sign_agreement"] == 0.0  # 3->0 (+) vs 0->3 (-), both ways
    assert s["new_pair_share"] == 3 / 4  # 0->1 already occurred in the history


def test_empty_window_and_self_loops():
    empty = stream([])
    s = stream_statistics(empty, HISTORY, 10.0, 20.0, windows=3)
    assert s["event_count"] == 0
    for key in ("negative_share", "reciprocity", "sign_agreement", "new_pair_share",
                "newcomer_share", "balanced_share", "weight_pos", "weight_neg", "in_gini",
                "in_top1"):
        assert math.isnan(s[key]), key
    assert np.isnan(s["negative_share_series"]).all() and np.isnan(s["triad_census"]).all()
    assert s["in_degree"].shape == (0,) and s["in_max"] == 0
    loop = stream_statistics(stream([(12, 5, 5, 1, 0.4)]), HISTORY, 10.0, 20.0)
    assert math.isnan(loop["reciprocity"])  # a self-pair is not its own reverse
    assert loop["new_pair_share"] == 1.0 and loop["newcomer_share"] == 1.0


def test_signed_triangle_census_and_balance_agree():
    # K4: 012 (+++) 0 negative, 013 (+--) 2, 023 (+-+) 1, 123 (++-) 1
    src, dst, sg = [0, 1, 0, 0, 1, 2], [1, 2, 2, 3, 3, 3], [1, 1, 1, -1, -1, 1]
    np.testing.assert_array_equal(signed_triangle_census(src, dst, sg), [1, 2, 1, 0])
    np.testing.assert_array_equal(signed_triangle_census([0, 1, 2], [1, 2, 0], [-1, -1, -1]),
                                  [0, 0, 0, 1])
    np.testing.assert_array_equal(signed_triangle_census([0, 1], [1, 2], [1, 1]), [0, 0, 0, 0])
    rng = np.random.default_rng(3)
    n = 25
    src, dst = rng.integers(0, n, 300), rng.integers(0, n, 300)
    sg = rng.choice([-1, 1], 300, p=[0.4, 0.6])
    a = np.zeros((n, n))
    for s, d, x in zip(src, dst, sg, strict=True):
        if s != d:
            a[s, d] = a[d, s] = x
    census = signed_triangle_census(src, dst, sg)
    # brute force over all node triples
    expected = np.zeros(4, dtype=np.int64)
    for i in range(n):
        for j in range(i + 1, n):
            for k in range(j + 1, n):
                e = (a[i, j], a[j, k], a[i, k])
                if all(e):
                    expected[sum(x < 0 for x in e)] += 1
    np.testing.assert_array_equal(census, expected)
    assert balanced_triangle_share(src, dst, sg) == (expected[0] + expected[2]) / expected.sum()


def test_gini_and_top_share():
    assert gini(np.array([5, 5, 5])) == 0.0
    assert gini(np.array([0, 0, 0, 4])) == pytest.approx(3 / 4)  # (n-1)/n for one holder
    assert math.isnan(gini(np.array([])))
    x = np.array([1.0] * 248 + [10.0, 20.0])  # 250 entries -> top 2
    assert top_share(x) == pytest.approx(30 / 278)
    assert top_share(np.array([1.0] * 98 + [3.0])) == pytest.approx(3 / 101)  # 99 -> top 1


def full_stats(**over):
    base = {
        "event_count": 100, "negative_share": 0.2, "reciprocity": 0.5, "sign_agreement": 0.8,
        "balanced_share": 0.9, "new_pair_share": 0.6, "newcomer_share": 0.4,
        "in_degree": np.array([1, 2, 3]), "out_degree": np.array([1, 1, 4]),
        "weight_pos": 0.2, "weight_neg": 0.8, "triad_census": np.array([0.5, 0.2, 0.2, 0.1]),
        "in_gini": 0.3, "out_gini": 0.4, "in_top1": 0.1, "out_top1": 0.2, "in_max": 10,
        "out_max": 20, "negative_share_series": np.array([0.1, 0.3]),
        "series_edges": np.array([0.0, 1.0, 2.0]),
    }
    base.update(over)
    return base


def test_scoreboard_distances_hand_made():
    real = full_stats()
    gen = full_stats(event_count=110, negative_share=0.3, sign_agreement=0.6, balanced_share=0.45,
                     new_pair_share=0.9, newcomer_share=0.2, in_degree=np.array([1, 2, 3, 4]),
                     weight_pos=0.3, weight_neg=0.6, triad_census=np.array([0.4, 0.3, 0.2, 0.1]))
    got = {s.key: s.distance(gen, real) for s in SCOREBOARD}
    expected = {"event_count": 0.1, "negative_share": 0.5, "reciprocity": 0.0,
                "sign_agreement": 0.25, "balanced_share": 0.5, "new_pair_share": 0.5,
                "newcomer_share": 0.5,
                "degree": 0.125,  # KS in: max |F| gap 1/4 at x=3; out identical: 0
                "weight": 0.375,  # (0.5 + 0.25) / 2
                "triad_census": 0.1}
    assert list(got) == list(expected) and len(SCOREBOARD) == 10
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert all(s.distance(real, real) == 0.0 for s in SCOREBOARD)


def test_distance_helpers_edge_cases():
    rng = np.random.default_rng(0)
    a, b = rng.poisson(3, 200), rng.poisson(4, 150)
    assert ks_distance(a, b) == pytest.approx(sps.ks_2samp(a, b).statistic)
    assert ks_distance(np.array([]), a) == 1.0 and math.isnan(ks_distance(np.array([]), []))
    assert relative_error(0.0, 0.0) == 0.0 and relative_error(1.0, 0.0) == math.inf
    assert relative_error(math.nan, 0.5) == math.inf and math.isnan(relative_error(0.5, math.nan))
    nan4 = np.full(4, np.nan)
    assert total_variation(nan4, np.array([1.0, 0, 0, 0])) == 1.0
    assert math.isnan(total_variation(nan4, nan4))


def test_interval_percentile_and_t():
    mean, lo, hi, kind = interval([90, 100, 110, 120, 130])
    assert (mean, kind) == (110.0, "percentile")
    assert (lo, hi) == pytest.approx((91.0, 129.0))  # linear interpolation at 0.1 and 3.9
    mean, lo, hi, kind = interval([90, 100, 110, math.nan])
    t2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # closed-form t quantile with 2 degrees of freedom
    assert kind == "t" and mean == 100.0
    assert (lo, hi) == pytest.approx((100 - t2 * 10 / math.sqrt(3), 100 + t2 * 10 / math.sqrt(3)))
    assert math.isnan(interval([1.0])[1])


def test_compare_rows_and_wins():
    real = full_stats()
    five = [full_stats(event_count=c) for c in (90, 100, 110, 120, 130)]
    three = [full_stats(event_count=c, negative_share=0.2) for c in (90, 100, 110)]
    table = compare(real, {"twin": five, "null": three})
    assert len(table) == 2 * (len(SCOREBOARD) + len(EXTRAS))
    row = table[(table["statistic"] == "event_count") & (table["method"] == "twin")].iloc[0]
    assert (row["real"], row["mean"], row["interval"], row["seeds"]) == (100, 110, "percentile", 5)
    assert row["rel_error"] == pytest.approx(0.1)
    assert row["distance"] == pytest.approx((0.1 + 0 + 0.1 + 0.2 + 0.3) / 5)
    null = table[(table["statistic"] == "event_count") & (table["method"] == "null")].iloc[0]
    assert null["interval"] == "t" and null["distance"] == pytest.approx(0.2 / 3)
    assert null["rel_error"] == 0.0
    # every other statistic ties at 0: only event count has a strictly closest method
    assert wins(table) == {"twin": 0, "null": 1}
    assert table.loc[~table["scoreboard"], "statistic"].tolist()[:2] == ["in_gini", "in_gini"]


def test_wins_strict_ties_and_undefined():
    table = pd.DataFrame({
        "statistic": ["a", "a", "a", "b", "b", "b", "c", "c", "c", "x", "x", "x"],
        "scoreboard": [True] * 9 + [False] * 3,
        "method": ["twin", "calibrated", "null"] * 4,
        "distance": [0.1, 0.2, 0.3, 0.5, 0.5, 0.9, math.nan, math.inf, 2.0, 0.0, 1.0, 1.0],
    })
    assert wins(table) == {"twin": 1, "calibrated": 0, "null": 1}


def random_window(seed, n_events=400, n_nodes=40, neg=0.2, t0=10.0, t1=20.0):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n_nodes, n_events)
    dst = (src + rng.integers(1, n_nodes, n_events)) % n_nodes
    sign = np.where(rng.random(n_events) < neg, -1, 1)
    return Stream.from_columns(rng.uniform(t0, t1, n_events), src, dst, sign,
                               rng.random(n_events))


def report_inputs():
    history = random_window(100, n_nodes=30, t0=0.0, t1=10.0)
    real = stream_statistics(random_window(0), history, 10.0, 20.0)
    runs = {m: [stream_statistics(random_window(10 * i + s, neg=neg), history, 10.0, 20.0)
                for s in range(5)]
            for i, (m, neg) in enumerate([("twin", 0.2), ("calibrated", 0.3), ("null", 0.5)])}
    return real, runs


def test_fidelity_report_written(tmp_path):
    real, runs = report_inputs()
    meta = {"run": "1 (toy)", "t_split": 10.0, "seeds": 5, "seconds": {"fit twin": 1.5},
            "events_per_s": {"twin": 1000.0, "calibrated": 2000.0, "null": 3000.0}}
    path = write_fidelity_report(tmp_path / "rep", "Twin fidelity: toy", real, runs, meta)
    assert path == tmp_path / "rep" / "fidelity.md"
    text = path.read_text()
    table = compare(real, runs)
    assert text.startswith("# Twin fidelity: toy\n")
    assert "- events/s of generation per method: twin 1000, calibrated 2000, null 3000" in text
    assert "| statistic | real | twin | calibrated | null | closest |" in text
    rows = [line for line in text.splitlines() if re.match(r"\| \d+\. ", line)]
    assert len(rows) == 10
    for stat, line in zip(SCOREBOARD, rows, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0].endswith(stat.label.replace("|", "\\|"))
        assert float(cells[1]) == pytest.approx(stat.value(real), rel=1e-3)
        sub = table[table["statistic"] == stat.key].set_index("method")
        for method, cell in zip(("twin", "calibrated", "null"), cells[2:5], strict=True):
            assert float(cell.split()[0]) == pytest.approx(sub.loc[method, "mean"], rel=1e-3)
            assert "[" in cell and "; d " in cell
        best = sub.index[sub["distance"] == sub["distance"].min()].tolist()
        assert cells[5] == (best[0] if len(best) == 1 else "tie: " + ", ".join(best))
    k = wins(table)["twin"]
    assert f"twin closest on {k} of 10" in text
    # only the twin's windows are drawn with the real negative share (0.2 vs 0.3 and 0.5)
    assert rows[1].rstrip(" |").endswith("| twin") and k >= 1
    assert rows[0].rstrip(" |").endswith("| tie: twin, calibrated, null")  # 400 events each
    assert fidelity_markdown(table) in text
    assert "## Further statistics" in text and "in-degree Gini" in text
    for name in FIGURES:
        png = tmp_path / "rep" / name
        assert f"]({name})" in text
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert mpimg.imread(png).shape[0] > 200
    assert not list((tmp_path / "rep").glob(".*.tmp"))


def test_failed_report_write_leaves_no_partial_file(tmp_path):
    real, runs = report_inputs()
    out = tmp_path / "rep"
    write_fidelity_report(out, "first", real, runs, {})
    before = (out / "fidelity.md").read_text()
    (out / FIGURES[1]).unlink()
    (out / FIGURES[1]).mkdir()  # the PNG cannot replace a folder
    with pytest.raises(SignsimError, match="Cannot write the fidelity report"):
        write_fidelity_report(out, "second", real, runs, {})
    assert (out / "fidelity.md").read_text() == before
    assert not list(out.glob(".*.tmp"))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / FIGURES[1]).mkdir()
    with pytest.raises(SignsimError):
        write_fidelity_report(fresh, "x", real, runs, {})
    assert not (fresh / "fidelity.md").exists()
    assert sorted(p.name for p in fresh.iterdir()) == sorted([FIGURES[0], FIGURES[1]])
    with pytest.raises(SignsimError, match="at least one generated run"):
        write_fidelity_report(tmp_path / "none", "x", real, {"twin": []}, {})
