"""`signsim query` runs exactly one read-only statement, under a time limit, on both backends.

Every escape of issue 9 is tried against a real SQLite file and the real PostgreSQL
server: through the CLI (all guards), and against the backend guard alone (the parser
bypassed), so that each guard is shown to hold by itself.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from cli import app
from sim.config import SimConfig
from sim.engine.simulate import run_into_store
from sim.store.database import open_store
from sim.store.query import _postgres_rows, _sqlite_rows, run_query
from sim.store.sqlguard import check_read_only_sql

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")
runner = CliRunner()

#: A recursive CTE that never ends (both backends).
ENDLESS = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
           "SELECT count(*) FROM c")


def tiny_config() -> SimConfig:
    cfg = SimConfig(horizon=1.0)
    cfg.population.n_agents = 60
    cfg.recording.metric_cadence = 0.0
    return cfg


def query(db: str, sql: str, *extra: str):
    return runner.invoke(app, ["query", sql, "--db", db, *extra])


# -- SQLite --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("guards") / "g.db"
    store = open_store(str(path))
    run_into_store(store, tiny_config(), seed=1)
    store.dispose()
    return path


@pytest.mark.parametrize("sql", [
    "SELECT 1; DELETE FROM interactions",
    "SELECT 1; COMMIT; BEGIN; DELETE FROM interactions; COMMIT",
    "WITH x AS (SELECT 1) DELETE FROM interactions",
    "SELECT * INTO t2 FROM runs",
    "SELECT load_extension('x')",
    "EXPLAIN DELETE FROM interactions",
    "EXPLAIN QUERY PLAN SELECT 1; DELETE FROM interactions",
])
def test_sqlite_refuses_every_write_and_second_statement(lite, sql):
    before = lite.read_bytes()
    res = query(str(lite), sql)
    assert res.exit_code == 2, res.output
    assert "read-only" in res.output and "refused" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert lite.read_bytes() == before


def test_sqlite_backend_alone_refuses_a_second_statement(lite):
    con = sqlite3.connect(f"file:{lite}?mode=ro", uri=True)
    with pytest.raises(sqlite3.ProgrammingError, match="one statement at a time"):
        _sqlite_rows(con, "SELECT 1; DELETE FROM interactions", 5.0)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        _sqlite_rows(con, "DELETE FROM interactions", 5.0)
    con.close()
    n = sqlite3.connect(lite).execute("SELECT count(*) FROM interactions").fetchone()[0]
    assert n > 0


def test_sqlite_reads_still_work(lite):
    n = sqlite3.connect(lite).execute("SELECT count(*) FROM interactions").fetchone()[0]
    assert run_query(str(lite), "SELECT count(*) AS n FROM interactions")["n"].tolist() == [n]
    assert run_query(str(lite), "VALUES (1, 2)").shape == (1, 2)
    assert not run_query(str(lite), "EXPLAIN QUERY PLAN SELECT * FROM runs").empty
    assert run_query(str(lite), "SELECT 1 AS one;  -- trailing comment")["one"].tolist() == [1]


def test_sqlite_statement_timeout_stops_an_endless_query(lite):
    started = time.monotonic()
    res = query(str(lite), ENDLESS, "--timeout", "1")
    took = time.monotonic() - started
    assert res.exit_code == 2 and "longer than the --timeout of 1 s" in res.output, res.output
    assert took < 15


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_bad_timeouts_are_refused(lite, value):
    res = query(str(lite), "SELECT 1", "--timeout", value)
    assert res.exit_code == 2 and "--timeout" in res.output and "Traceback" not in res.output


def test_parser_accepts_reads_and_refuses_writes_on_both_dialects():
    for dialect in ("sqlite", "postgres"):
        check_read_only_sql("SELECT a FROM t WHERE b IN (SELECT c FROM u)", dialect)
        check_read_only_sql("SELECT 1 UNION SELECT 2", dialect)
        for sql in ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
                    "SELECT * FROM t FOR UPDATE", "SELECT lo_import('/etc/passwd')",
                    "SELECT pg_terminate_backend(1)", "SELECT set_config('a', 'b', false)",
                    "SELECT query_to_xml('DELETE FROM t', true, true, '')"):
            with pytest.raises(Exception, match="refused"):
                check_read_only_sql(sql, dialect)


# -- PostgreSQL ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg() -> str:
    """A fresh database on the test server with one complete run; dropped afterwards."""
    assert PG_URL is not None
    name = f"signsim_guard_{uuid.uuid4().hex[:10]}"
    base = PG_URL.rsplit("/", 1)[0]
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{base}/{name}"
    store = open_store(url)
    run_into_store(store, tiny_config(), seed=2)
    store.dispose()
    yield url
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as con:
        return int(con.execute(sql).fetchone()[0])


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
@pytest.mark.parametrize("template", [
    "SELECT 1; COMMIT; BEGIN READ WRITE; DELETE FROM interactions; COMMIT",
    "SELECT 1; COPY (SELECT 1) TO PROGRAM 'id > {file}'",
    "COPY (SELECT 1) TO '{file}'",
    "SELECT lo_import('/etc/hostname')",
    "WITH x AS (DELETE FROM interactions RETURNING *) SELECT count(*) FROM x",
    "EXPLAIN ANALYZE DELETE FROM interactions",
    "SELECT 1; SET transaction_read_only = off",
])
def test_postgres_escapes_are_refused(pg, template):
    target = Path(f"/tmp/signsim-escape-{uuid.uuid4().hex}")
    before = (_count(pg, "SELECT count(*) FROM interactions"),
              _count(pg, "SELECT count(*) FROM pg_largeobject_metadata"))
    res = query(pg, template.format(file=target))
    assert res.exit_code == 2, res.output
    assert "read-only" in res.output and "refused" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not target.exists()
    assert (_count(pg, "SELECT count(*) FROM interactions"),
            _count(pg, "SELECT count(*) FROM pg_largeobject_metadata")) == before
    assert before[0] > 0


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_postgres_backend_alone_holds_without_the_parser(pg):
    """The transaction guard by itself: one command, read-only, always rolled back."""
    before = (_count(pg, "SELECT count(*) FROM interactions"),
              _count(pg, "SELECT count(*) FROM pg_largeobject_metadata"))
    raw = psycopg.connect(pg)
    with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
        _postgres_rows(raw, "SELECT 1; COMMIT; BEGIN READ WRITE; DELETE FROM interactions; "
                       "COMMIT", 5.0)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        _postgres_rows(raw, "DELETE FROM interactions", 5.0)
    rows, _ = _postgres_rows(raw, "SELECT lo_import('/etc/hostname')", 5.0)
    assert rows[0][0] > 0  # the object was created, then rolled back with the transaction
    raw.close()
    assert (_count(pg, "SELECT count(*) FROM interactions"),
            _count(pg, "SELECT count(*) FROM pg_largeobject_metadata")) == before


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
@pytest.mark.parametrize("sql", ["SELECT pg_sleep(60)", ENDLESS])
def test_postgres_statement_timeout(pg, sql):
    started = time.monotonic()
    res = query(pg, sql, "--timeout", "1")
    assert res.exit_code == 2 and "longer than the --timeout of 1 s" in res.output, res.output
    assert time.monotonic() - started < 15


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_postgres_reads_still_work(pg):
    n = _count(pg, "SELECT count(*) FROM interactions")
    assert run_query(pg, "SELECT count(*) AS n FROM interactions")["n"].tolist() == [n]
    assert run_query(pg, "SELECT '%s' AS s, 7 % 3 AS m").values.tolist() == [["%s", 1]]
    assert not run_query(pg, "EXPLAIN SELECT * FROM runs").empty
    assert run_query(pg, "SHOW transaction_read_only").iloc[0, 0] == "on"


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_documented_reader_role_cannot_write(pg):
    """The role setup of docs/security.md, run as written (with unique role names)."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    block = doc.split("```sql\n", 1)[1].split("```", 1)[0]
    tag = uuid.uuid4().hex[:8]
    writer, reader = f"signsim_writer_{tag}", f"signsim_reader_{tag}"
    block = block.replace("signsim_writer", writer).replace("signsim_reader", reader)
    name = f"signsim_roles_{tag}"
    base = PG_URL.rsplit("/", 1)[0]
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(f"{base}/{name}", autocommit=True) as admin:
            admin.execute(block)
        host = base.split("@", 1)[1]
        writer_url, reader_url = f"postgresql://{writer}@{host}/{name}", f"postgresql://{reader}@{host}/{name}"
        store = open_store(writer_url)
        run_into_store(store, tiny_config(), seed=3)
        store.dispose()
        n = _count(writer_url, "SELECT count(*) FROM interactions")
        assert n > 0
        assert run_query(reader_url, "SELECT count(*) AS n FROM interactions")["n"].tolist() == [n]
        with psycopg.connect(reader_url, autocommit=True) as con:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                con.execute("DELETE FROM interactions")
            con.execute("SET default_transaction_read_only = off")  # the role still may not
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute("DELETE FROM interactions")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute("COPY (SELECT 1) TO PROGRAM 'true'")
        assert _count(writer_url, "SELECT count(*) FROM interactions") == n
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
            admin.execute(f"DROP ROLE IF EXISTS {reader}")
            admin.execute(f"DROP ROLE IF EXISTS {writer}")
