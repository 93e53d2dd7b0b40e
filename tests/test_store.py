"""Storage: schema, batched writes, crash consistency, PostgreSQL, determinism on disk."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.config import SimConfig
from sim.engine.simulate import run_into_store
from sim.errors import SignsimError
from sim.store.database import open_store

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")


def small_config(n: int = 300, horizon: float = 3.0) -> SimConfig:
    cfg = SimConfig(horizon=horizon)
    cfg.population.n_agents = n
    cfg.recording.flush_rows = 500
    cfg.recording.snapshot_cadence = 1.0
    cfg.recording.snapshot_sample = 50
    return cfg


def test_run_is_written_completely(tmp_path):
    store = open_store(str(tmp_path / "a.db"))
    res = run_into_store(store, small_config(), seed=3, scenario="s", arm="a")
    run = store.run(res.run_id)
    assert run["status"] == "complete" and run["finished_at"] is not None
    assert run["n_agents"] == 300
    assert run["n_interactions"] == res.events > 500
    counts = store.frame(
        "SELECT count(*) AS n, count(DISTINCT seq) AS k, min(seq) AS lo, max(seq) AS hi "
        "FROM interactions WHERE run_id=:r", {"r": res.run_id}).iloc[0]
    # n distinct integers from 0 to n-1: exactly 0..n-1
    assert (counts.n, counts.k, counts.lo, counts.hi) == (res.events, res.events, 0, res.events - 1)
    assert store.frame("SELECT count(*) AS n FROM agents").n[0] == 300
    snaps = store.frame("SELECT t, count(*) AS n FROM opinions GROUP BY t ORDER BY t")
    assert snaps.t.tolist() == [0.0, 1.0, 2.0, 3.0] and set(snaps.n) == {50}
    metrics = store.frame("SELECT DISTINCT t FROM metrics ORDER BY t")
    assert metrics.t.tolist() == [0.0, 1.0, 2.0, 3.0]
    # seq order is time order (the key (run_id, t, seq) relies on it)
    t = store.frame("SELECT t FROM interactions WHERE run_id = :r ORDER BY seq",
                    {"r": res.run_id}).t.to_numpy()
    assert t.size == res.events and (t[1:] >= t[:-1]).all()


def test_same_seed_gives_identical_rows_in_separate_files(tmp_path):
    hashes = []
    for name in ("x.db", "y.db"):
        store = open_store(str(tmp_path / name))
        res = run_into_store(store, small_config(), seed=5)
        hashes.append((store.table_hash(res.run_id), store.table_hash(res.run_id, "metrics")))
    assert hashes[0] == hashes[1]
    store = open_store(str(tmp_path / "z.db"))
    other = run_into_store(store, small_config(), seed=6)
    assert store.table_hash(other.run_id) != hashes[0][0]


def assert_refused_untouched(path: Path, message: str) -> None:
    """Opening ``path`` fails with ``message`` and leaves its bytes as they were."""
    before = path.read_bytes()
    with pytest.raises(SignsimError, match=message):
        open_store(str(path))
    assert path.read_bytes() == before


def test_not_a_signsim_database_is_refused_and_untouched(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE people (name TEXT)")
    con.execute("INSERT INTO people VALUES ('ada')")
    con.commit()
    con.close()
    assert_refused_untouched(path, "not a signsim database")


def test_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    assert_refused_untouched(path, "not a readable signsim database")


def test_unreachable_postgres_is_a_clear_error():
    with pytest.raises(SignsimError, match="Cannot connect to database .*127.0.0.1"):
        open_store("postgresql://nobody:secret@127.0.0.1:1/none")


def test_sigkill_mid_run_leaves_a_consistent_database(tmp_path):
    db = tmp_path / "kill.db"
    scen = tmp_path / "long.toml"
    scen.write_text(
        "horizon = 100000.0\n[population]\nn_agents = 2000\n"
        "[recording]\nflush_rows = 2000\nmetric_cadence = 1.0\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli import app; app()", "simulate", str(scen),
         "--db", str(db), "--no-progress"],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    committed = 0
    while time.time() < deadline and committed < 20_000:
        time.sleep(0.3)
        if db.exists():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                committed = con.execute("SELECT count(*) FROM interactions").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                pass
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    status, n = con.execute("SELECT status, n_interactions FROM runs WHERE id = 1").fetchone()
    assert status != "complete"
    seqs = [r[0] for r in con.execute("SELECT seq FROM interactions WHERE run_id = 1 ORDER BY seq")]
    assert n >= 20_000 and seqs == list(range(n))  # every committed batch intact, no gap
    t = [r[0] for r in con.execute("SELECT t FROM interactions WHERE run_id = 1 ORDER BY seq")]
    assert all(a <= b for a, b in zip(t, t[1:], strict=False))  # seq order is time order
    con.close()
    store = open_store(str(db))
    res = run_into_store(store, small_config(100, 1.0), seed=1)
    assert store.run(res.run_id)["status"] == "complete"


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_postgresql_round_trip_matches_sqlite(tmp_path):
    pg = open_store(PG_URL)
    res = run_into_store(pg, small_config(), seed=9, scenario="pg")
    assert pg.run(res.run_id)["status"] == "complete"
    n = pg.frame("SELECT count(*) AS n FROM interactions WHERE run_id = :r", {"r": res.run_id}).n[0]
    assert n == res.events
    lite = open_store(str(tmp_path / "same.db"))
    ref = run_into_store(lite, small_config(), seed=9, scenario="pg")
    assert pg.table_hash(res.run_id) == lite.table_hash(ref.run_id)


def test_a_database_of_another_schema_version_is_refused_untouched(tmp_path):
    path = tmp_path / "old.db"
    open_store(str(path)).dispose()
    con = sqlite3.connect(path)
    con.execute("UPDATE signsim_meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    assert_refused_untouched(path, "schema version '1'; this signsim reads version '2'")
