"""PostgreSQL binary COPY: the encoder byte for byte, and the writer against a real server."""

from __future__ import annotations

import math
import os
import signal
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest

from sim.contract import EventBatch
from sim.engine.simulate import run_into_store
from sim.errors import SignsimError
from sim.scenario import parse_scenario
from sim.store import pg_copy
from sim.store.database import open_store
from sim.store.writer import EventWriter
from tests.helpers import BUSY_SCENARIO

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")
needs_pg = pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
ROOT = Path(__file__).resolve().parents[1]

CAUSES = ("organic", "réponse", "")  # a two-byte character; an empty (not NULL) text
BLOCKS = (None, "moderation", "friction")
I4_MIN, I4_MAX = -(2**31), 2**31 - 1

#: Hand-written rows: (t, src, dst, sign, weight, cause code, blocked code).
ROWS = [
    (0.0, 0, 1, 1, 0.25, 0, 0),
    (-0.0, 7, 3, -1, -1.5, 1, 1),
    (5e-324, I4_MAX, I4_MIN, -1, 1e300, 2, 2),
    (1.0 / 3.0, -5, 2, 2**15 - 1, float("inf"), 0, 0),
    (123456.789, 42, 42, -(2**15), -0.0, 1, 0),
]


def _columns(rows: list[tuple]) -> dict[str, np.ndarray]:
    t, src, dst, sign, weight, cause, blocked = zip(*rows, strict=True)
    return {"t": np.array(t), "src": np.array(src), "dst": np.array(dst),
            "sign": np.array(sign, dtype=np.int16), "weight": np.array(weight),
            "cause": np.array(cause, dtype=np.int8), "blocked": np.array(blocked, dtype=np.int8)}


def _reference_stream(run_id: int, seq0: int, rows: list[tuple]) -> bytes:
    """The binary COPY stream built field by field with ``struct``, as the format says."""
    out = [b"PGCOPY\n\xff\r\n\x00", struct.pack(">ii", 0, 0)]
    for k, (t, src, dst, sign, weight, cause, blocked) in enumerate(rows):
        out.append(struct.pack(">h", 10))
        for fmt, value in ((">i", run_id), (">i", seq0 + k), (">d", t), (">i", src),
                           (">i", dst), (">h", sign), (">d", weight), (">?", blocked == 0)):
            data = struct.pack(fmt, value)
            out.append(struct.pack(">i", len(data)) + data)
        for text in (CAUSES[cause], BLOCKS[blocked]):
            if text is None:
                out.append(struct.pack(">i", -1))
            else:
                data = text.encode()
                out.append(struct.pack(">i", len(data)) + data)
    out.append(struct.pack(">h", -1))
    return b"".join(out)


# -- the encoder --------------------------------------------------------------------------
def test_encoder_matches_a_field_by_field_reference():
    got = pg_copy.encode_interactions(12, I4_MAX - len(ROWS) + 1, _columns(ROWS), CAUSES, BLOCKS)
    assert got.dtype == np.uint8
    assert got.tobytes() == _reference_stream(12, I4_MAX - len(ROWS) + 1, ROWS)


def test_encoder_on_many_random_rows_matches_the_reference():
    rng = np.random.default_rng(3)
    rows = [(float(rng.normal() * 1e3), int(rng.integers(I4_MIN, I4_MAX)),
             int(rng.integers(0, 10**6)), int(rng.choice([-1, 1])), float(rng.random()),
             int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(500)]
    got = pg_copy.encode_interactions(3, 1000, _columns(rows), CAUSES, BLOCKS)
    assert got.tobytes() == _reference_stream(3, 1000, rows)


def test_an_empty_batch_is_a_valid_empty_stream():
    empty = {k: v[:0] for k, v in _columns(ROWS).items()}
    got = pg_copy.encode_interactions(1, 0, empty, CAUSES, BLOCKS)
    assert got.tobytes() == pg_copy.COPY_SIGNATURE + pg_copy.COPY_TRAILER


@pytest.mark.parametrize(("change", "message"), [
    ({"src": [0, 2**31]}, "src values outside"),
    ({"dst": [I4_MIN - 1, 0]}, "dst values outside"),
    ({"sign": [1, 2**15]}, "sign values outside"),
    ({"cause": [0, 3]}, "cause codes outside"),
    ({"blocked": [-1, 0]}, "blocked codes outside"),
])
def test_values_that_do_not_fit_their_column_are_refused(change, message):
    cols = _columns(ROWS[:2])
    cols.update({k: np.array(v, dtype=np.int64) for k, v in change.items()})
    with pytest.raises(SignsimError, match=message):
        pg_copy.encode_interactions(1, 0, cols, CAUSES, BLOCKS)


def test_seq_and_run_id_beyond_int4_and_nameless_causes_are_refused():
    cols = _columns(ROWS)
    with pytest.raises(SignsimError, match="seq values outside"):
        pg_copy.encode_interactions(1, I4_MAX - 1, cols, CAUSES, BLOCKS)
    with pytest.raises(SignsimError, match="run_id values outside"):
        pg_copy.encode_interactions(2**31, 0, cols, CAUSES, BLOCKS)
    with pytest.raises(SignsimError, match="cause is NOT NULL"):
        pg_copy.encode_interactions(1, 0, cols, (None, "a", "b"), BLOCKS)


# -- against the server -------------------------------------------------------------------


def _bits(x: float) -> str:
    return x.hex() if not math.isnan(x) else "nan"


@pytest.mark.postgres
@needs_pg
def test_the_stream_is_read_back_exactly_by_postgresql(pg_db):
    store = open_store(pg_db)
    run = store.create_run(scenario="copy")
    store.dispose()
    payload = pg_copy.encode_interactions(run, 5, _columns(ROWS), CAUSES, BLOCKS)
    with psycopg.connect(pg_db) as con:
        pg_copy.copy_payload(con, payload)
        con.commit()
        got = con.execute("SELECT run_id, seq, t, src, dst, sign, weight, delivered, cause, "
                          "blocked_by FROM interactions ORDER BY seq").fetchall()
    want = [(run, 5 + k, t, s, d, sg, w, b == 0, CAUSES[c], BLOCKS[b])
            for k, (t, s, d, sg, w, c, b) in enumerate(ROWS)]
    as_bits = [tuple(_bits(v) if isinstance(v, float) else v for v in r) for r in got]
    assert as_bits == [tuple(_bits(v) if isinstance(v, float) else v for v in r) for r in want]


SCENARIO = BUSY_SCENARIO

COLUMNS = "run_id, seq, t, src, dst, sign, weight, delivered, cause, blocked_by"


@pytest.mark.postgres
@needs_pg
def test_postgresql_and_sqlite_hold_identical_rows(pg_db, tmp_path):
    arm = parse_scenario(SCENARIO).arms[0]
    stores = {"pg": open_store(pg_db), "lite": open_store(str(tmp_path / "same.db"))}
    assert EventWriter(stores["pg"], 0).binary_copy and EventWriter(stores["lite"], 0).native
    rows, runs, hashes = {}, {}, {}
    for name, store in stores.items():
        res = run_into_store(store, arm.config, seed=4, interventions=arm.interventions)
        runs[name] = store.run(res.run_id)
        assert runs[name]["n_interactions"] == res.events > 2000
        df = store.frame(f"SELECT {COLUMNS} FROM interactions ORDER BY seq")
        rows[name] = [(int(a), int(b), _bits(c), int(d), int(e), int(f), _bits(g), bool(h), i,
                       None if j is None or j != j else j)
                      for a, b, c, d, e, f, g, h, i, j in df.itertuples(index=False)]
        hashes[name] = [store.table_hash(res.run_id, t)
                        for t in ("metrics", "interventions", "opinions", "agents")]
        store.dispose()
    assert rows["pg"] == rows["lite"]
    assert {b for *_, b in rows["pg"]} >= {None, "moderation", "friction"}
    assert hashes["pg"] == hashes["lite"]
    assert runs["pg"]["status"] == runs["lite"]["status"] == "complete"


def _batch(t, cause, blocked):
    n = len(t)
    return EventBatch(t=np.asarray(t, dtype=float), src=np.arange(n), dst=np.arange(n) + 1,
                      sign=np.where(np.arange(n) % 2 == 0, 1, -1), weight=np.full(n, 0.25),
                      blocked=np.asarray(blocked), cause=np.asarray(cause))


@pytest.mark.postgres
@needs_pg
def test_a_failed_batch_is_rolled_back_on_postgresql(pg_db):
    store = open_store(pg_db)
    run = store.create_run(scenario="dup")
    first = EventWriter(store, run, background=True)
    first.add(_batch([1.0, 2.0], cause=[0, 0], blocked=[0, 0]))
    first.close()
    again = EventWriter(store, run, background=True)  # seq restarts at 0
    again.add(_batch([9.0, 2.0], cause=[0, 0], blocked=[0, 0]))  # (run, 2.0, 1) is taken
    again.add_side("metrics", [{"run_id": run, "t": 9.0, "name": "x", "value": 1.0}])
    with pytest.raises(SignsimError, match="Cannot write to database .*duplicate key"):
        again.close()
    assert store.frame("SELECT seq, t FROM interactions ORDER BY seq").values.tolist() == [
        [0, 1.0], [1, 2.0]]
    assert store.run(run)["n_interactions"] == 2
    assert store.frame("SELECT count(*) AS n FROM metrics").n[0] == 0
    store.dispose()


@pytest.mark.parametrize("backend", [
    "sqlite-native", "sqlite3",
    pytest.param("postgresql", marks=[pytest.mark.postgres, needs_pg])])
def test_events_of_a_run_that_does_not_exist_are_refused(backend, tmp_path, monkeypatch):
    if backend == "sqlite3":
        from sim.store import sqlite_native

        monkeypatch.setattr(sqlite_native, "available", lambda: False)
    if backend == "postgresql":
        name = f"signsim_copy_{uuid.uuid4().hex[:10]}"
        assert PG_URL is not None
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        db = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    else:
        db = str(tmp_path / "missing.db")
    try:
        store = open_store(db)
        writer = EventWriter(store, 999)
        writer.add(_batch([1.0], cause=[0], blocked=[0]))
        writer.add_side("metrics", [{"run_id": 999, "t": 1.0, "name": "x", "value": 1.0}])
        with pytest.raises(SignsimError, match="Run 999 is not in the database"):
            writer.close()
        assert store.frame("SELECT count(*) AS n FROM interactions").n[0] == 0
        assert store.frame("SELECT count(*) AS n FROM metrics").n[0] == 0
        store.dispose()
    finally:
        if backend == "postgresql":
            with psycopg.connect(PG_URL, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.postgres
@needs_pg
def test_sigkill_mid_run_leaves_whole_batches_on_postgresql(pg_db, tmp_path):
    scen = tmp_path / "long.toml"
    scen.write_text("horizon = 100000.0\n[population]\nn_agents = 2000\n"
                    "[recording]\nflush_rows = 2000\nmetric_cadence = 1.0\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli import app; app()", "simulate", str(scen),
         "--db", pg_db, "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    committed = 0
    with psycopg.connect(pg_db, autocommit=True) as con:
        while time.time() < deadline and committed < 20_000:
            time.sleep(0.3)
            try:
                committed = con.execute("SELECT count(*) FROM interactions").fetchone()[0]
            except psycopg.errors.UndefinedTable:
                pass
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)  # the server ends the killed client's session and its transaction
        status, n = con.execute("SELECT status, n_interactions FROM runs WHERE id = 1").fetchone()
        assert status != "complete"
        seqs = [r[0] for r in con.execute("SELECT seq FROM interactions ORDER BY seq")]
        assert n >= 20_000 and seqs == list(range(n))  # every committed batch whole, no gap
        t = [r[0] for r in con.execute("SELECT t FROM interactions ORDER BY seq")]
        assert all(a <= b for a, b in zip(t, t[1:], strict=False))
        ticks = con.execute("SELECT count(DISTINCT t) FROM metrics").fetchone()[0]
        assert ticks >= 1
    store = open_store(pg_db)
    assert run_into_store(store, _small(), seed=1).events > 0
    store.dispose()


def _small():
    from sim.config import SimConfig

    cfg = SimConfig(horizon=1.0)
    cfg.population.n_agents = 100
    return cfg

