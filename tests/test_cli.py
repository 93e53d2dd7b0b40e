"""The CLI through Typer's CliRunner: happy paths and every bad-input error."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "sim.db"
    res = invoke("simulate", "--db", str(path), "--agents", "200", "--horizon", "2",
                 "--seed", "4", "--no-progress")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("run 1: ") and "events/s" in res.output
    return path


def test_runs_lists_the_run(db):
    res = invoke("runs", "--db", str(db), "--format", "json")
    assert res.exit_code == 0
    rows = json.loads(res.output)
    assert [(r["id"], r["status"], r["n_agents"], r["seed"]) for r in rows] == [
        (1, "complete", 200, 4)]


def test_query_formats(db):
    con = sqlite3.connect(db)
    n = con.execute("SELECT count(*) FROM interactions").fetchone()[0]
    con.close()
    res = invoke("query", "SELECT count(*) AS n FROM interactions", "--db", str(db),
                 "--format", "csv")
    assert res.exit_code == 0 and res.output.split() == ["n", str(n)]
    res = invoke("query", "SELECT sign, count(*) AS c FROM interactions GROUP BY sign "
                 "ORDER BY sign", "--db", str(db))
    assert res.exit_code == 0 and "sign" in res.output.splitlines()[0]


@pytest.mark.parametrize("sql", [
    "DELETE FROM runs", "drop table runs", "  /* x */ UPDATE runs SET status='x'",
    "PRAGMA journal_mode=DELETE", "ATTACH DATABASE 'x.db' AS x",
])
def test_query_refuses_writes_and_keeps_data(db, sql):
    before = db.read_bytes()
    res = invoke("query", sql, "--db", str(db))
    assert res.exit_code == 2
    assert "read-only" in res.output and "refused" in res.output
    assert "Traceback" not in res.output
    assert db.read_bytes() == before


def test_read_only_connection_stops_writes_hidden_in_a_select(db):
    res = invoke("query", "WITH x AS (SELECT 1) DELETE FROM runs", "--db", str(db))
    assert res.exit_code == 2 and "read-only" in res.output
    res = invoke("runs", "--db", str(db), "--format", "csv")
    assert len(res.output.strip().splitlines()) == 2


@pytest.mark.parametrize("sql,expected", [
    ("SELEC * FROM runs", "Malformed SQL"),
    ("SELECT * FROM nowhere", "no such table: nowhere"),
    ("SELECT * FROM runs WHERE", "SQL statement failed"),
])
def test_query_reports_bad_sql(db, sql, expected):
    res = invoke("query", sql, "--db", str(db))
    assert res.exit_code == 2 and expected in res.output and "Traceback" not in res.output


def test_validate_ok(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text('name = "ok"\nseeds = 3\n[population]\nn_agents = 50\n')
    res = invoke("validate", str(path))
    assert res.exit_code == 0 and "OK" in res.output and "3 seeds" in res.output


@pytest.mark.parametrize("toml,fragment", [
    ("[population]\nkinds = {citizen = 0.5, robot = 0.5}\n",
     "population.kinds.robot: unknown agent kind 'robot'; use one of: citizen, influencer"),
    ("[population]\nmean_rate = -1.0\n", "population.mean_rate: -1.0 must be greater than 0"),
    ("[population]\nn_agents = 0\n", "population.n_agents: 0 is below the minimum 2"),
    ("[network]\nkind = \"lattice\"\n", "network.kind: 'lattice' is not allowed; use one of: sbm"),
    ("[dynamics]\nconfidense = 0.2\n", "dynamics.confidense: unknown key"),
    ("horizon = [\n", "TOML syntax error"),
])
def test_bad_scenarios_get_one_paragraph_errors(tmp_path, toml, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    for args in (("validate", str(path)),
                 ("simulate", str(path), "--db", str(tmp_path / "x.db"), "--no-progress")):
        res = invoke(*args)
        assert res.exit_code == 2, res.output
        assert fragment in res.output and str(path) in res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "x.db").exists()


def test_zero_agents_flag_is_refused(tmp_path):
    res = invoke("simulate", "--db", str(tmp_path / "z.db"), "--agents", "0", "--no-progress")
    assert res.exit_code == 2 and "n_agents: 0 is below the minimum 2" in res.output


def test_unreadable_edge_list_names_the_line(tmp_path):
    edges = tmp_path / "edges.csv"
    edges.write_text("# follows\n0,1\n1,2\n2;x\n")
    scen = tmp_path / "e.toml"
    scen.write_text('[population]\nn_agents = 5\n[network]\nkind = "edge_list"\npath = "edges.csv"\n')
    res = invoke("simulate", str(scen), "--db", str(tmp_path / "e.db"), "--no-progress")
    assert res.exit_code == 2
    assert "edges.csv', line 4: '2;x'" in res.output
    edges.write_text("0,1\n1,9\n")
    res = invoke("simulate", str(scen), "--db", str(tmp_path / "e.db"), "--no-progress")
    assert res.exit_code == 2 and "line 2: agent id 9 is outside 0..4" in res.output


def test_edge_list_network_is_used(tmp_path):
    edges = tmp_path / "edges.csv"
    edges.write_text("0 1\n1 2\n2 0\n")
    scen = tmp_path / "e.toml"
    scen.write_text('horizon = 2.0\n[population]\nn_agents = 3\nkinds = {citizen = 1.0}\n'
                    '[network]\nkind = "edge_list"\npath = "edges.csv"\n'
                    '[dynamics]\np_exposure = 0.0\np_reply = 0.0\nfollow_prob = 0.0\n'
                    'unfollow_prob = 0.0\n')
    db = tmp_path / "e.db"
    assert invoke("simulate", str(scen), "--db", str(db), "--no-progress").exit_code == 0
    con = sqlite3.connect(db)
    pairs = set(con.execute("SELECT src, dst FROM interactions WHERE cause = 'organic'"))
    con.close()
    assert pairs == {(0, 1), (1, 2), (2, 0)}


def test_not_a_signsim_database(tmp_path):
    path = tmp_path / "foreign.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.close()
    for args in (("runs", "--db", str(path)),
                 ("simulate", "--db", str(path), "--agents", "10", "--no-progress")):
        res = invoke(*args)
        assert res.exit_code == 2 and "is not a signsim database" in res.output


def test_missing_database_for_reading(tmp_path):
    res = invoke("runs", "--db", str(tmp_path / "none.db"))
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (tmp_path / "none.db").exists()


def test_unreachable_postgresql():
    res = invoke("runs", "--db", "postgresql://u:pw@127.0.0.1:1/db")
    assert res.exit_code == 2
    assert "Cannot connect to database" in res.output and "pw" not in res.output
