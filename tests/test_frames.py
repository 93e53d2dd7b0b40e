"""The DataFrame readers of the public API hold exactly the stored rows, written by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.evaluate import EvaluationReport
from models.forecast import ForecastResult
from models.frames import WINDOW_COLUMNS, evaluation_frame, forecast_frame
from sim.contract import EventBatch
from sim.errors import SignsimError
from sim.store.database import open_store
from sim.store.frames import interactions_frame, metrics_frame
from sim.store.writer import EventWriter

# (t, src, dst, sign, weight, cause, blocked by): the fourth act is blocked by moderation
ACTS = [(0.5, 0, 1, 1, 0.25, "organic", None), (0.5, 1, 0, -1, 0.5, "reply", None),
        (1.25, 2, 0, 1, 0.75, "organic", None), (2.0, 0, 2, -1, 1.0, "reply", "moderation")]
# (run, t, name, value), written in an order the reader must sort
METRICS = [(1, 1.0, "negative_share", 0.5), (1, 0.0, "activity", 2.0),
           (1, 1.0, "activity", 3.0), (2, 0.0, "activity", 7.0)]


@pytest.fixture()
def db(tmp_path):
    path = str(tmp_path / "f.db")
    store = open_store(path)
    first = store.create_run(scenario="hand", arm="a", seed=3)
    writer = EventWriter(store, first, cause_names=("organic", "reply"),
                         block_names=(None, "moderation"))
    t, src, dst, sign, weight, cause, blocked = zip(*ACTS, strict=True)
    writer.add(EventBatch(
        t=np.array(t), src=np.array(src), dst=np.array(dst), sign=np.array(sign),
        weight=np.array(weight), blocked=np.array([b is not None for b in blocked], dtype=np.int64),
        cause=np.array([("organic", "reply").index(c) for c in cause], dtype=np.int64)))
    writer.close()
    store.finish_run(first)
    second = store.create_run(scenario="hand", arm="b", seed=4)
    store.finish_run(second)
    store.write_rows("metrics", [{"run_id": r, "t": t, "name": n, "value": v}
                                 for r, t, n, v in METRICS])
    store.dispose()
    return path


def test_interactions_frame_holds_the_stored_acts(db):
    df = interactions_frame(db, 1)
    assert list(df.columns) == ["run_id", "seq", "t", "src", "dst", "sign", "weight",
                                "delivered", "cause", "blocked_by"]
    assert df.seq.tolist() == [0, 1, 2, 3] and (df.run_id == 1).all()
    assert df.t.tolist() == [a[0] for a in ACTS] and df.weight.tolist() == [a[4] for a in ACTS]
    assert df.src.tolist() == [a[1] for a in ACTS] and df.dst.tolist() == [a[2] for a in ACTS]
    assert df.sign.tolist() == [a[3] for a in ACTS] and df.cause.tolist() == [a[5] for a in ACTS]
    assert df.delivered.tolist() == [True, True, True, False]
    assert [None if pd.isna(v) else v for v in df.blocked_by] == [a[6] for a in ACTS]
    assert interactions_frame(db, 1, delivered_only=True).seq.tolist() == [0, 1, 2]


def test_interactions_frame_of_a_run_without_acts_keeps_its_columns_and_types(db):
    df = interactions_frame(open_store(db, create=False), 2)
    assert df.empty and df.dtypes["t"] == "float64" and df.dtypes["delivered"] == "bool"
    assert len(df.columns) == 10


def test_metrics_frame_is_long_sorted_and_joined_with_arm_and_seed(db):
    df = metrics_frame(db, 1)
    assert list(df.columns) == ["run_id", "arm", "seed", "t", "name", "value"]
    assert df.values.tolist() == [[1, "a", 3, 0.0, "activity", 2.0],
                                  [1, "a", 3, 1.0, "activity", 3.0],
                                  [1, "a", 3, 1.0, "negative_share", 0.5]]
    both = metrics_frame(db, [2, 1])
    assert both.run_id.tolist() == [1, 1, 1, 2] and both.arm.tolist() == ["a", "a", "a", "b"]
    assert metrics_frame(db, []).columns.tolist() == list(df.columns)


@pytest.mark.parametrize("reader", [interactions_frame, metrics_frame])
def test_an_unknown_run_is_a_clear_error(db, reader):
    with pytest.raises(SignsimError, match="No run with id 9"):
        reader(db, 9)


def test_evaluation_frame_rows_are_methods_columns_metrics():
    report = EvaluationReport(model_id=1, run_id=2, protocol="p", metrics={
        "model": {"val": {"sign_auc": 0.5}, "test": {"sign_auc": 0.75, "exist_mrr": 0.25,
                                                     "n_events": 10.0}},
        "edgebank": {"val": {}, "test": {"exist_mrr": 0.125}},
    })
    df = evaluation_frame(report)
    assert df.index.tolist() == ["model", "edgebank"] and df.index.name == "method"
    assert df.columns[:3].tolist() == ["exist_mrr", "exist_ap", "exist_auc"]
    assert df.columns[-1] == "n_events"
    assert df.loc["model", "sign_auc"] == 0.75 and df.loc["edgebank", "exist_mrr"] == 0.125
    assert math.isnan(df.loc["edgebank", "sign_auc"])
    assert evaluation_frame(report, "val").loc["model", "sign_auc"] == 0.5
    with pytest.raises(ValueError, match="part"):
        evaluation_frame(report, "train")


def test_forecast_frame_holds_the_windows():
    windows = [dict(zip(WINDOW_COLUMNS, (0.0, 1.0, 4.0, 0.25, 0.5), strict=True)),
               dict(zip(WINDOW_COLUMNS, (1.0, 2.0, 2.0, 0.125, 0.0), strict=True))]
    df = forecast_frame(ForecastResult(model_id=1, run_id=1, n_rows=6, plot="p.png",
                                       windows=windows))
    assert df.columns.tolist() == list(WINDOW_COLUMNS)
    assert df.n.tolist() == [4, 2] and df.dtypes["n"] == "int64"
    assert df.forecast_negative_share.tolist() == [0.25, 0.125]
    empty = forecast_frame(ForecastResult(model_id=1, run_id=1, n_rows=0, plot="p.png"))
    assert empty.empty and empty.columns.tolist() == list(WINDOW_COLUMNS)
