import math

import numpy as np
import pytest
from scipy import stats as sps

from sim.errors import SignsimError
from sim.store.database import Store
from sim.sweep.plots import mean_band
from sim.sweep.report import load_metrics, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TS = (0.0, 1.0, 2.0)
# final negative_share per seed; the series is (0.5, 0.5, final)
FINALS = {"baseline": {1: 0.10, 2: 0.12, 3: 0.14}, "moderation": {1: 0.08, 2: 0.09, 3: 0.11}}


def _add_run(store, arm, seed, finals, status="complete", scenario="demo"):
    rid = store.create_run(scenario=scenario, arm=arm, seed=seed)
    rows = []
    for t, v in zip(TS, (0.5, 0.5, finals), strict=True):
        rows.append({"run_id": rid, "t": t, "name": "negative_share", "value": v})
        rows.append({"run_id": rid, "t": t, "name": "opinion_variance", "value": 0.2 + seed * t})
    store.write_rows("metrics", rows)
    if status != "running":
        store.finish_run(rid, status)
    return rid


@pytest.fixture
def store(tmp_path):
    st = Store(str(tmp_path / "sim.db"))
    # an older complete run of (baseline, 1) with other values: superseded by the newer one
    _add_run(st, "baseline", 1, 0.99)
    for arm, finals in FINALS.items():
        for seed, v in finals.items():
            _add_run(st, arm, seed, v)
    _add_run(st, "moderation", 4, 0.99, status="running")
    _add_run(st, "moderation", 5, 0.99, status="failed")
    _add_run(st, "baseline", 1, 0.99, scenario="other")
    yield st
    st.dispose()


def test_load_metrics_keeps_newest_complete_runs(store):
    df = load_metrics(store, "demo")
    assert list(df.columns) == ["run_id", "arm", "seed", "t", "name", "value"]
    assert df["run_id"].nunique() == 6
    assert sorted(set(zip(df["arm"], df["seed"], strict=True))) == [
        ("baseline", 1), ("baseline", 2), ("baseline", 3),
        ("moderation", 1), ("moderation", 2), ("moderation", 3),
    ]
    assert 0.99 not in set(df["value"])
    assert 1 not in set(df["run_id"])  # the superseded run
    assert load_metrics(store, "nope").empty


def test_write_report(store, tmp_path):
    out = tmp_path / "report"
    md_path = write_report(store, "demo", out)
    assert md_path == out / "report.md"
    md = md_path.read_text()
    html = (out / "report.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["final_negative_share.png", "final_opinion_variance.png",
                    "ts_negative_share.png", "ts_opinion_variance.png"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
        assert f"]({name})" in md
    assert html.count("data:image/png;base64,") == 4
    assert "<table>" in html and "report.md" not in html
    # negative_share final: d = [-0.02, -0.03, -0.03] -> mean -0.02667, -22.2% of 0.12
    half = sps.t.ppf(0.975, 2) * math.sqrt(1 / 3) / 100 / math.sqrt(3)
    assert "| 0.12 | 0.09333 | -0.02667 |" in md
    assert f"[{-0.08 / 3 - half:.4g}, {-0.08 / 3 + half:.4g}]" in md
    assert "| -22.2% |" in md
    # p = 1 - 8/sqrt(66) before correction (4 comparisons in the family)
    p = 1 - 8 / math.sqrt(66)
    assert f"| {p:.4f} | {4 * p:.4f} | lower by 22.2% (Holm p = {4 * p:.4f})" in md
    # opinion_variance is 0.2 + seed*t in both arms: identical -> no detectable difference
    assert "| opinion_variance | moderation | final | 3 | 4.2 | 4.2 | 0 | [0, 0] |" in md
    assert "no detectable difference" in md
    assert "| baseline | 1, 2, 3 |" in md
    # re-rendering from the database alone gives the same Markdown
    assert write_report(store, "demo", out).read_text() == md


def test_report_with_one_seed_says_so(tmp_path):
    st = Store(str(tmp_path / "one.db"))
    _add_run(st, "baseline", 1, 0.1)
    _add_run(st, "friction", 1, 0.05)
    md = write_report(st, "demo", tmp_path / "r").read_text()
    assert "cannot assess: 1 paired seed, no confidence interval (difference -50.0%)" in md
    assert "n/a" in md
    st.dispose()


def test_report_errors(store, tmp_path):
    with pytest.raises(SignsimError, match="no complete run with metrics"):
        write_report(store, "nope", tmp_path / "x")
    with pytest.raises(SignsimError, match="Baseline arm 'control'"):
        write_report(store, "demo", tmp_path / "x", baseline="control")


def test_mean_band_aligns_runs_on_time_grid():
    import pandas as pd

    df = pd.DataFrame({
        "run_id": [1, 1, 2, 2, 3],
        "t": [0.0, 1.0, 0.0, 1.0 + 1e-12, 0.0],
        "value": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    band = mean_band(df)
    assert list(band.index) == [0.0, 1.0]
    assert band["mean"].tolist() == [3.0, 3.0]
    assert band["n"].tolist() == [3, 2]
    half = sps.t.ppf(0.975, 2) * 2.0 / math.sqrt(3)
    assert band["high"].iloc[0] == pytest.approx(3.0 + half)
    assert np.isclose(band["low"].iloc[1], 3.0 - sps.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2))
