"""``run_query`` refuses writes before they reach the database, on SQLite and PostgreSQL.

Only public behaviour is checked: a refused statement raises a SignsimError that says it
was refused, and the database is left exactly as it was. A write aimed at a table that
does not exist, or at a database file that does not exist, must also be refused as a
write (not reported as a missing table or file): that is what shows the statement never
reached a connection.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from sim.contract import EventBatch
from sim.errors import SignsimError
from sim.store.database import open_store
from sim.store.query import run_query
from sim.store.writer import EventWriter

from .test_graphstats_export import STREAM

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")

WRITES = [
    "DELETE FROM interactions",
    "delete from runs where id = 1",
    "DROP TABLE interactions",
    "drop table if exists runs",
    "UPDATE runs SET status = 'failed'",
    "  -- a comment first\n  UPDATE interactions SET sign = -sign",
    "INSERT INTO runs (scenario) VALUES ('x')",
]
MISSING = ["DELETE FROM no_such_table", "DROP TABLE no_such_table",
           "UPDATE no_such_table SET x = 1"]


def fill(url: str, scenario: str) -> int:
    store = open_store(url)
    run = store.create_run(scenario=scenario)
    writer = EventWriter(store, run)
    t, s, d, sign = (np.array(c) for c in zip(*STREAM, strict=True))
    n = len(t)
    writer.add(EventBatch(t=t, src=s, dst=d, sign=sign, weight=np.full(n, 0.5),
                          blocked=np.zeros(n, dtype=np.int64), cause=np.zeros(n, dtype=np.int64)))
    writer.close()
    store.finish_run(run)
    store.dispose()
    return run


def snapshot(url: str, run: int) -> tuple:
    rows = run_query(url, f"SELECT seq, t, src, dst, sign, weight FROM interactions "
                          f"WHERE run_id = {run} ORDER BY seq")
    status = run_query(url, f"SELECT status, n_interactions FROM runs WHERE id = {run}")
    return rows.values.tolist(), status.values.tolist()


def assert_refused(url: str, sql: str) -> None:
    with pytest.raises(SignsimError) as info:
        run_query(url, sql)
    message = str(info.value)
    assert "refused" in message, message
    assert "no such table" not in message and "does not exist" not in message, message


@pytest.fixture()
def sqlite_db(tmp_path):
    path = tmp_path / "q.db"
    fill(str(path), "q")
    return path


@pytest.mark.parametrize("sql", WRITES + MISSING)
def test_sqlite_writes_are_refused_and_the_file_is_untouched(sqlite_db, sql):
    before = sqlite_db.read_bytes()
    assert_refused(str(sqlite_db), sql)
    assert sqlite_db.read_bytes() == before
    rows, status = snapshot(str(sqlite_db), 1)
    assert len(rows) == len(STREAM) and status == [["complete", len(STREAM)]]


@pytest.mark.parametrize("sql", ["DELETE FROM runs", "DROP TABLE runs", "UPDATE runs SET seed = 1"])
def test_a_write_is_refused_even_before_the_database_is_opened(tmp_path, sql):
    missing = tmp_path / "nowhere.db"
    assert_refused(str(missing), sql)
    assert not missing.exists()


def test_reads_still_work(sqlite_db):
    got = run_query(str(sqlite_db), "SELECT count(*) AS n, sum(sign) AS s FROM interactions")
    assert got.values.tolist() == [[7, 3]]


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_postgresql_writes_are_refused_and_rows_unchanged():
    assert PG_URL is not None
    run = fill(PG_URL, f"q-{uuid.uuid4().hex[:8]}")
    before = snapshot(PG_URL, run)
    for sql in [w.replace("id = 1", f"id = {run}") for w in WRITES] + MISSING:
        assert_refused(PG_URL, sql)
    assert snapshot(PG_URL, run) == before
