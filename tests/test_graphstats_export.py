"""Graph statistics on a hand-built stream; exports round-trip through their readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from sim.dynamics import EventBatch
from sim.graphstats import stream_stats, window_series
from sim.store import open_store
from sim.writer import EventWriter

# (t, src, dst, sign): 0->1 +, 1->0 +, 1->2 -, 2->1 +, 0->2 -, 0->1 + (repeat), 3->0 +
STREAM = [(0.0, 0, 1, 1), (1.0, 1, 0, 1), (2.0, 1, 2, -1), (3.0, 2, 1, 1),
          (4.0, 0, 2, -1), (9.0, 0, 1, 1), (10.0, 3, 0, 1)]


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
    writer = EventWriter(store, run, cause_names=("organic",), block_names=(None, "moderation"))
    t, s, d, sign = (np.array(c) for c in zip(*STREAM, strict=True))
    blocked = (np.arange(len(STREAM)) == 6).astype(np.int64)
    writer.add(EventBatch(t=t, src=s, dst=d, sign=sign, weight=np.full(len(t), 0.5),
                          blocked=blocked, cause=np.zeros(len(t), dtype=np.int64)))
    writer.close()
    store.finish_run(run)
    return tmp_path / "s.db"


def test_exports(db, tmp_path):
    runner = CliRunner()
    for fmt, name in (("csv", "a.csv"), ("parquet", "a.parquet"), ("tgb", "a_tgb.csv"),
                      ("pyg", "a.pt")):
        res = runner.invoke(app, ["export", "1", str(tmp_path / name), "--format", fmt,
                                  "--db", str(db)])
        assert res.exit_code == 0, res.output
    full = pd.read_csv(tmp_path / "a.csv")
    assert full.shape == (7, 10) and full.seq.tolist() == list(range(7))
    assert pd.read_parquet(tmp_path / "a.parquet").equals(pd.read_parquet(tmp_path / "a.parquet"))
    tgb = pd.read_csv(tmp_path / "a_tgb.csv")
    assert tgb.columns.tolist() == ["source", "destination", "timestamp", "sign", "weight"]
    assert tgb.shape[0] == 6  # the blocked act is not an edge
    assert tgb.timestamp.tolist()[-1] == 9 * 86400.0
    data = torch.load(tmp_path / "a.pt", weights_only=True)
    assert data["src"].tolist() == [0, 1, 1, 2, 0, 0]
    assert data["y"].tolist() == [1, 1, 0, 1, 0, 1]
    assert data["msg"].shape == (6, 2)


def test_stats_command_writes_png(db, tmp_path):
    res = CliRunner().invoke(app, ["stats", "1", "--db", str(db), "--png", str(tmp_path / "s.png"),
                                   "--windows", "2"])
    assert res.exit_code == 0, res.output
    assert "reciprocity" in res.output
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
