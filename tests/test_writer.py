"""The event writer: native SQLite writes give exactly the rows of the sqlite3 path."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from sim.contract import EventBatch
from sim.engine.simulate import run_into_store
from sim.errors import SignsimError
from sim.scenario import parse_scenario
from sim.store import sqlite_native
from sim.store.connect import SQLITE_PRAGMAS
from sim.store.database import open_store
from sim.store.writer import EventWriter
from tests.helpers import BUSY_SCENARIO

SCENARIO = BUSY_SCENARIO

TABLES = ("interactions", "metrics", "interventions", "opinions", "agents")


def _batch(t, cause, blocked):
    n = len(t)
    return EventBatch(t=np.asarray(t, dtype=float), src=np.arange(n), dst=np.arange(n) + 1,
                      sign=np.where(np.arange(n) % 2 == 0, 1, -1), weight=np.full(n, 0.25),
                      blocked=np.asarray(blocked), cause=np.asarray(cause))


def test_native_writes_are_available_here():
    # The CI machine's Python links its sqlite3 module dynamically; if this fails the
    # fast path silently stopped being used.
    assert sqlite_native.available()


def test_native_and_sqlite3_paths_write_identical_rows(tmp_path, monkeypatch):
    arm = parse_scenario(SCENARIO).arms[0]
    hashes = {}
    for native in (True, False):
        monkeypatch.setattr(sqlite_native, "available", lambda native=native: native)
        store = open_store(str(tmp_path / f"{native}.db"))
        res = run_into_store(store, arm.config, seed=4, interventions=arm.interventions)
        assert store.run(res.run_id)["n_interactions"] == res.events > 2000
        hashes[native] = [store.table_hash(res.run_id, table) for table in TABLES]
        blocked = store.frame("SELECT DISTINCT coalesce(blocked_by, '-') AS b FROM interactions")
        assert {"moderation", "friction", "-"} <= set(blocked.b)
        store.dispose()
    assert hashes[True] == hashes[False]


def test_hand_written_batches_round_trip_exactly(tmp_path):
    store = open_store(str(tmp_path / "h.db"))
    run = store.create_run(scenario="hand")
    writer = EventWriter(store, run, flush_rows=3, cause_names=("organic", "réponse"),
                         block_names=(None, "moderation"))
    assert writer.native
    writer.add(_batch([0.5, 1.0], cause=[0, 1], blocked=[0, 1]))
    writer.add_side("metrics", [{"run_id": run, "t": 1.0, "name": "x", "value": 0.5}])
    writer.add(_batch([2.0, 2.0, 3.5], cause=[1, 0, 0], blocked=[0, 0, 1]))
    writer.close()
    rows = sqlite3.connect(tmp_path / "h.db").execute(
        "SELECT run_id, seq, t, src, dst, sign, weight, delivered, cause, blocked_by "
        "FROM interactions ORDER BY seq").fetchall()
    assert rows == [
        (run, 0, 0.5, 0, 1, 1, 0.25, 1, "organic", None),
        (run, 1, 1.0, 1, 2, -1, 0.25, 0, "réponse", "moderation"),
        (run, 2, 2.0, 0, 1, 1, 0.25, 1, "réponse", None),
        (run, 3, 2.0, 1, 2, -1, 0.25, 1, "organic", None),
        (run, 4, 3.5, 2, 3, 1, 0.25, 0, "organic", "moderation"),
    ]
    assert store.run(run)["n_interactions"] == 5
    assert store.frame("SELECT name, value FROM metrics").values.tolist() == [["x", 0.5]]


def test_a_failed_batch_is_rolled_back_and_reported(tmp_path):
    store = open_store(str(tmp_path / "f.db"))
    run = store.create_run(scenario="dup")
    first = EventWriter(store, run)
    first.add(_batch([1.0, 2.0], cause=[0, 0], blocked=[0, 0]))
    first.close()
    again = EventWriter(store, run)  # seq restarts at 0
    # (seq 0, t 9.0) is a new key, (seq 1, t 2.0) repeats a committed one
    again.add(_batch([9.0, 2.0], cause=[0, 0], blocked=[0, 0]))
    again.add_side("metrics", [{"run_id": run, "t": 9.0, "name": "x", "value": 1.0}])
    with pytest.raises(SignsimError, match="UNIQUE constraint failed"):
        again.close()
    con = sqlite3.connect(tmp_path / "f.db")
    assert con.execute("SELECT seq, t FROM interactions ORDER BY seq").fetchall() == [
        (0, 1.0), (1, 2.0)]
    assert con.execute("SELECT n_interactions FROM runs").fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM metrics").fetchone() == (0,)


def test_bad_codes_are_refused_before_touching_memory(tmp_path):
    store = open_store(str(tmp_path / "c.db"))
    run = store.create_run(scenario="codes")
    writer = EventWriter(store, run, cause_names=("organic",))
    writer.add(_batch([1.0], cause=[3], blocked=[0]))
    with pytest.raises(SignsimError, match="cause codes outside"):
        writer.close()
    assert store.run(run)["n_interactions"] == 0


def test_opening_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(SignsimError, match="Cannot open SQLite database"):
        sqlite_native.NativeConnection(str(tmp_path / "nope" / "x.db"), SQLITE_PRAGMAS)
