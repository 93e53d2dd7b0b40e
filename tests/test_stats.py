import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sim.sweep import stats as st
from sim.errors import SignsimError


def test_mean_ci_three_values():
    mean, lo, hi = st.mean_ci([1.0, 2.0, 3.0])
    half = sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd = 1
    assert mean == 2.0
    assert lo == pytest.approx(2.0 - half)
    assert hi == pytest.approx(2.0 + half)
    assert half == pytest.approx(4.302652729911275 / math.sqrt(3))


def test_mean_ci_single_value_has_no_interval():
    mean, lo, hi = st.mean_ci([5.0])
    assert mean == 5.0 and math.isnan(lo) and math.isnan(hi)


def test_paired_test_hand_values():
    # d = [1, 2, 4]: mean 7/3, sd sqrt(7/3), t = sqrt(7); with 2 df the t CDF is
    # 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - sqrt(7)/3.
    diff, lo, hi, p = st.paired_test([2.0, 4.0, 7.0], [1.0, 2.0, 3.0])
    assert diff == pytest.approx(7 / 3)
    assert p == pytest.approx(1 - math.sqrt(7) / 3)
    assert p == pytest.approx(sps.ttest_rel([2.0, 4.0, 7.0], [1.0, 2.0, 3.0]).pvalue)
    half = sps.t.ppf(0.975, 2) * math.sqrt(7 / 3) / math.sqrt(3)
    assert (lo, hi) == pytest.approx((7 / 3 - half, 7 / 3 + half))


def test_paired_test_degenerate_cases():
    assert st.paired_test([1.0, 2.0], [1.0, 2.0])[3] == 1.0
    diff, lo, hi, p = st.paired_test([2.0, 3.0], [1.0, 2.0])
    assert (diff, lo, hi, p) == (1.0, 1.0, 1.0, 0.0)
    diff, lo, hi, p = st.paired_test([2.0], [1.0])
    assert diff == 1.0 and math.isnan(lo) and math.isnan(p)


def test_holm_hand_values():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04)
    got = st.holm_adjust([0.01, 0.04, 0.03, 0.005])
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02])
    got = st.holm_adjust([0.02, np.nan, 0.5])
    assert got[0] == pytest.approx(0.04) and math.isnan(got[1]) and got[2] == pytest.approx(0.5)
    assert st.holm_adjust([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert st.holm_adjust([]).size == 0


def _frame(values: dict[tuple[str, int], list[float]], ts=(0.0, 1.0, 2.0)) -> pd.DataFrame:
    rows = []
    for i, ((arm, seed), vals) in enumerate(values.items()):
        for t, v in zip(ts, vals, strict=True):
            rows.append(
                {"run_id": i + 1, "arm": arm, "seed": seed, "t": t, "name": "x", "value": v}
            )
    return pd.DataFrame(rows)


def test_run_summaries_final_and_trapezoid_average():
    df = _frame({("baseline", 1): [0.0, 2.0, 2.0]}, ts=(0.0, 1.0, 3.0))
    s = st.run_summaries(df)
    assert s.loc[0, "final"] == 2.0
    assert s.loc[0, "time_avg"] == pytest.approx(5 / 3)  # (1 + 4) / 3
    one = st.run_summaries(_frame({("baseline", 1): [4.0]}, ts=(2.0,)))
    assert one.loc[0, "time_avg"] == 4.0


def _three_seed_comparison() -> pd.DataFrame:
    df = _frame({
        ("baseline", 1): [0, 0, 10], ("baseline", 2): [0, 0, 12], ("baseline", 3): [0, 0, 14],
        ("mod", 1): [0, 0, 8], ("mod", 2): [0, 0, 9], ("mod", 3): [0, 0, 11],
        ("noop", 1): [0, 0, 11], ("noop", 2): [0, 0, 11], ("noop", 3): [0, 0, 14],
    })
    return st.compare_arms(st.run_summaries(df), "baseline")


def test_compare_arms_three_seeds():
    cmp = _three_seed_comparison()
    assert len(cmp) == 4  # 2 arms x 1 metric x 2 statistics
    mod = cmp[(cmp["arm"] == "mod") & (cmp["stat"] == "final")].iloc[0]
    # d = [-2, -3, -3]: mean -8/3, sd sqrt(1/3), t = -8, p = 1 - 8/sqrt(66) (2 df)
    assert mod["diff"] == pytest.approx(-8 / 3)
    assert mod["p_value"] == pytest.approx(1 - 8 / math.sqrt(66))
    half = sps.t.ppf(0.975, 2) * math.sqrt(1 / 3) / math.sqrt(3)
    assert (mod["ci_low"], mod["ci_high"]) == pytest.approx((-8 / 3 - half, -8 / 3 + half))
    assert mod["rel_change"] == pytest.approx(-8 / 3 / 12)
    assert mod["baseline_mean"] == 12.0 and mod["arm_mean"] == pytest.approx(28 / 3)
    np.testing.assert_allclose(cmp["p_holm"], st.holm_adjust(cmp["p_value"]))
    assert mod["verdict"].startswith("lower by 22.2% (Holm p = ")
    noop = cmp[(cmp["arm"] == "noop") & (cmp["stat"] == "final")].iloc[0]
    assert noop["verdict"] == "no detectable difference"


def test_verdict_texts():
    assert st.verdict(1.0, 0.5, 1.5, 4.0, 0.01, 3) == "higher by 25.0% (Holm p = 0.0100)"
    assert st.verdict(-1.0, -1.5, -0.5, 4.0, 0.2, 3) == (
        "lower by 25.0% (Holm p = 0.2000), not significant after Holm correction"
    )
    assert st.verdict(0.1, -0.5, 0.7, 4.0, 0.5, 3) == "no detectable difference"
    one = st.verdict(-1.0, math.nan, math.nan, 4.0, math.nan, 1)
    assert one.startswith("cannot assess: 1 paired seed") and "-25.0%" in one
    assert "absolute" in st.verdict(1.0, 0.5, 1.5, 0.0, 0.01, 3)


def test_compare_arms_needs_baseline():
    df = _frame({("a", 1): [1, 2, 3]})
    with pytest.raises(SignsimError, match="Baseline arm 'baseline'"):
        st.compare_arms(st.run_summaries(df))


def test_arm_summary():
    df = _frame({("baseline", s): [0, 0, s] for s in (1, 2, 3)})
    s = st.arm_summary(st.run_summaries(df))
    fin = s[s["stat"] == "final"].iloc[0]
    assert fin["n"] == 3 and fin["mean"] == 2.0
    assert fin["ci_high"] == pytest.approx(2.0 + sps.t.ppf(0.975, 2) / math.sqrt(3))
