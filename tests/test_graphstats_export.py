"""Graph statistics on a hand-built stream; every export holds exactly the stored rows."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from sim.contract import EventBatch
from sim.store.database import open_store
from sim.store.writer import EventWriter
from sim.sweep.graphstats import stream_stats, window_series

# (t, src, dst, sign): 0->1 +, 1->0 +, 1->2 -, 2->1 +, 0->2 -, 0->1 + (repeat), 3->0 +
STREAM = [(0.0, 0, 1, 1), (1.0, 1, 0, 1), (2.0, 1, 2, -1), (3.0, 2, 1, 1),
          (4.0, 0, 2, -1), (9.0, 0, 1, 1), (10.0, 3, 0, 1)]


WEIGHTS = [0.1, 0.2, 0.3, 0.4, 0.55, 0.65, 0.75]
CAUSES = ["organic", "reply", "organic", "reply", "organic", "reply", "organic"]


def arrays():
    a = np.array(STREAM)
    return a[:, 0], a[:, 1].astype(int), a[:, 2].astype(int), a[:, 3].astype(int)


def test_stream_stats_exact():
    s = stream_stats(*arrays())
    assert s["nodes"] == 4 and s["events"] == 7 and s["distinct_pairs"] == 6
    assert s["positive_share"] == pytest.approx(5 / 7)
    # reciprocated pairs: (0,1),(1,0),(1,2),(2,1): 4 of 6; signs agree for 0-1, not for 1-2
    assert s["reciprocity"] == pytest.approx(4 / 6)
    assert s["reciprocated_sign_agreement"] == pytest.approx(2 / 4)
    # triangle 0-1-2 with last signs 0-1:+, 1-2:+ (2->1 at t=3), 0-2:- -> unbalanced
    assert s["balanced_triangles"] == 0.0
    # test period t > 8.5: pairs (0,1) seen before, (3,0) new -> surprise 1/2
    assert s["surprise_index"] == pytest.approx(0.5)


def test_window_series_novelty():
    w = window_series(*arrays(), windows=2)  # windows [0,5) and [5,10]
    assert w["events"].tolist() == [5, 2]
    assert w["negative_share"].tolist() == pytest.approx([2 / 5, 0.0])
    assert w["novelty"].tolist() == pytest.approx([1.0, 0.5])


@pytest.fixture()
def db(tmp_path):
    store = open_store(str(tmp_path / "s.db"))
    run = store.create_run(scenario="hand")
    writer = EventWriter(store, run, cause_names=("organic", "reply"),
                         block_names=(None, "moderation"))
    t, s, d, sign = (np.array(c) for c in zip(*STREAM, strict=True))
    blocked = (np.arange(len(STREAM)) == 6).astype(np.int64)
    cause = np.array([("organic", "reply").index(c) for c in CAUSES], dtype=np.int64)
    writer.add(EventBatch(t=t, src=s, dst=d, sign=sign, weight=np.array(WEIGHTS),
                          blocked=blocked, cause=cause))
    writer.close()
    store.finish_run(run)
    return tmp_path / "s.db"


def expected_rows() -> pd.DataFrame:
    """The stored interactions of the fixture, written out by hand."""
    t, src, dst, sign = (list(c) for c in zip(*STREAM, strict=True))
    return pd.DataFrame({
        "run_id": [1] * 7, "seq": list(range(7)), "t": t, "src": src, "dst": dst,
        "sign": sign, "weight": WEIGHTS, "delivered": [1, 1, 1, 1, 1, 1, 0], "cause": CAUSES,
    })


def assert_same_rows(got: pd.DataFrame) -> None:
    want = expected_rows()
    assert sorted(got.columns) == sorted([*want.columns, "blocked_by"])
    assert got.shape == (7, 10)
    for col in ("run_id", "seq", "src", "dst", "sign", "delivered"):
        assert got[col].astype(int).tolist() == want[col].tolist(), col
    for col in ("t", "weight"):
        assert got[col].astype(float).tolist() == pytest.approx(want[col].tolist(), abs=1e-12), col
    assert got["cause"].tolist() == CAUSES
    assert [None if pd.isna(v) else v for v in got["blocked_by"]] == [None] * 6 + ["moderation"]


def export(db, tmp_path, fmt, name):
    res = CliRunner().invoke(app, ["export", "1", str(tmp_path / name), "--format", fmt,
                                   "--db", str(db)])
    assert res.exit_code == 0, res.output
    return tmp_path / name


def test_csv_and_parquet_hold_the_stored_rows(db, tmp_path):
    assert_same_rows(pd.read_csv(export(db, tmp_path, "csv", "a.csv")))
    assert_same_rows(pd.read_parquet(export(db, tmp_path, "parquet", "a.parquet")))


def test_tgb_edge_list_values(db, tmp_path):
    tgb = pd.read_csv(export(db, tmp_path, "tgb", "a_tgb.csv"))
    assert tgb.columns.tolist() == ["source", "destination", "timestamp", "sign", "weight"]
    # the blocked act (3 -> 0) is not an edge; seconds since the first event
    assert tgb.source.tolist() == [0, 1, 1, 2, 0, 0]
    assert tgb.destination.tolist() == [1, 0, 2, 1, 2, 1]
    assert tgb.timestamp.tolist() == [0.0, 86400.0, 172800.0, 259200.0, 345600.0, 777600.0]
    assert tgb.sign.tolist() == [1, 1, -1, 1, -1, 1]
    assert tgb.weight.tolist() == pytest.approx(WEIGHTS[:6], abs=1e-12)


def test_pyg_fields_hold_sign_and_weight(db, tmp_path):
    data = torch.load(export(db, tmp_path, "pyg", "a.pt"), weights_only=True)
    assert set(data) == {"src", "dst", "t", "msg", "y"}
    assert data["src"].tolist() == [0, 1, 1, 2, 0, 0]
    assert data["dst"].tolist() == [1, 0, 2, 1, 2, 1]
    assert data["t"].tolist() == [0, 86400, 172800, 259200, 345600, 777600]
    assert data["y"].tolist() == [1, 1, 0, 1, 0, 1]
    assert data["msg"].dtype == torch.float32 and data["msg"].shape == (6, 2)
    assert data["msg"][:, 0].tolist() == [1.0, 1.0, -1.0, 1.0, -1.0, 1.0]
    assert data["msg"][:, 1].tolist() == pytest.approx(WEIGHTS[:6], abs=1e-6)


def test_stats_command_prints_the_hand_computed_values(db, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["stats", "1", "--db", str(db), "--json", "--windows", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    s = out["stats"]
    # delivered events only: the first six of STREAM (3 -> 0 was blocked)
    assert (s["nodes"], s["events"], s["distinct_pairs"]) == (3, 6, 5)
    assert s["positive_share"] == pytest.approx(4 / 6)
    assert s["reciprocity"] == pytest.approx(4 / 5)  # (0,1),(1,0),(1,2),(2,1) of 5 pairs
    assert s["reciprocated_sign_agreement"] == pytest.approx(2 / 4)
    assert s["balanced_triangles"] == 0.0
    assert s["surprise_index"] == 0.0  # t > 7.65: only (0,1), seen before
    # windows [0, 4.5) and [4.5, 9]
    assert out["series"]["events"] == [5, 1]
    assert out["series"]["negative_share"] == pytest.approx([2 / 5, 0.0])
    assert out["series"]["novelty"] == pytest.approx([1.0, 0.0])
    res = runner.invoke(app, ["stats", "1", "--db", str(db), "--windows", "2"])
    assert res.exit_code == 0, res.output
    assert re.search(r"reciprocity\s+0\.8000$", res.output, re.M), res.output


def test_stats_png_plots_the_three_series(db, tmp_path):
    import matplotlib.image as mpimg

    png = tmp_path / "s.png"
    res = CliRunner().invoke(app, ["stats", "1", "--db", str(db), "--png", str(png),
                                   "--windows", "2"])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(png)
    assert img.shape[:2] == (770, 770)  # 7 x 7 inches at 110 dpi
    # the three series lines are drawn in matplotlib's first colour (#1f77b4)
    blue = np.all(np.abs(img[..., :3] - np.array([0x1F, 0x77, 0xB4]) / 255) < 0.02, axis=-1)
    rows = np.flatnonzero(blue.any(axis=1))
    assert rows.size > 30
    # one line in each of the three panels (top, middle, bottom thirds of the figure)
    assert {int(r * 3 // img.shape[0]) for r in rows} == {0, 1, 2}
