"""``signsim import``: SNAP signed edge lists into observed runs, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from sim.errors import SignsimError
from sim.store.database import open_store
from sim.store.importers import import_network, read_snap_signed

DATA = Path(__file__).resolve().parents[1] / "data" / "soc-sign-bitcoinotc.csv"

GOOD = """\
# comment lines and blank lines are skipped

7,8,5,1000000.0
7,9,-10,1000000.0
9,7,2,1086400
8,9,-3,1172800.5
"""


def write(tmp_path: Path, text: str, name: str = "toy-net.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def counts(db: Path) -> tuple[int, int, int]:
    s = open_store(str(db))
    row = s.frame("SELECT (SELECT count(*) FROM runs) r, (SELECT count(*) FROM interactions) i,"
                  " (SELECT count(*) FROM agents) a")
    return int(row.r[0]), int(row.i[0]), int(row.a[0])


def test_import_writes_an_observed_complete_run(tmp_path):
    db = tmp_path / "x.db"
    summary = import_network(str(db), write(tmp_path, GOOD))
    assert (summary.scenario, summary.n_interactions, summary.n_agents) == ("toy-net", 4, 3)
    assert summary.negative_share == pytest.approx(0.5)
    store = open_store(str(db))
    run = store.run(summary.run_id)
    assert (run["kind"], run["arm"], run["seed"], run["status"]) == (
        "observed", "observed", 0, "complete")
    assert run["n_interactions"] == 4 and run["n_agents"] == 3
    assert run["horizon"] == pytest.approx(172800.5 / 86400)
    prov = json.loads(run["scenario_text"])
    assert prov["time_origin_unix"] == 1000000.0 and prov["time_unit"] == "days"
    ev = store.interactions(summary.run_id)
    assert ev["seq"].tolist() == [0, 1, 2, 3]
    assert ev["src"].tolist() == [7, 7, 9, 8] and ev["dst"].tolist() == [8, 9, 7, 9]
    assert ev["sign"].tolist() == [1, -1, 1, -1]
    assert ev["weight"].tolist() == pytest.approx([0.5, 1.0, 0.2, 0.3])
    assert ev["t"].tolist() == pytest.approx([0.0, 0.0, 1.0, 172800.5 / 86400])
    assert ev["delivered"].astype(bool).all()
    assert set(ev["cause"].tolist()) == {"observed"}
    agents = store.frame("SELECT * FROM agents ORDER BY agent_id")
    assert agents.agent_id.tolist() == [7, 8, 9]
    assert set(agents.kind) == {"observed"} and set(agents.group) == {0}
    assert (agents.initial_opinion == 0).all()
    span = 172800.5 / 86400
    assert agents.activity_rate.tolist() == pytest.approx([2 / span, 1 / span, 1 / span])


def test_every_rating_maps_to_its_sign_and_weight(tmp_path):
    # ratings at the edges of each sign, +/-1 included (the smallest ratings there are)
    ratings = [1, -1, 2, -2, 10, -10, 5, -7]
    text = "".join(f"{i},{i + 1},{r},{100 * i}\n" for i, r in enumerate(ratings))
    db = tmp_path / "r.db"
    summary = import_network(str(db), write(tmp_path, text))
    ev = open_store(str(db)).interactions(summary.run_id)
    assert ev["sign"].tolist() == [1, -1, 1, -1, 1, -1, 1, -1]
    assert ev["weight"].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.2, 1.0, 1.0, 0.5, 0.7])
    assert summary.negative_share == 0.5


def test_rows_are_sorted_by_time_stably(tmp_path):
    edges = read_snap_signed(write(tmp_path, "1,2,1,30\n3,4,-1,10\n5,6,2,30\n7,8,3,10\n"))
    assert edges.src.tolist() == [3, 7, 1, 5]
    assert edges.line.tolist() == [2, 4, 1, 3]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1,2,3\n", "line 1: expected 4 fields"),
        ("1,2,3,4\n1,x,3,4\n", "line 2: SOURCE and TARGET must be integers"),
        ("1,2,3,4\n\n1,2,good,4\n", "line 3: RATING and TIME must be numbers"),
        ("1,2,0,4\n", "line 1: RATING 0 has no sign"),
        ("1,2,11,4\n", "line 1: RATING 11 is outside -10..10"),
        ("1,2,nan,4\n", "line 1: RATING and TIME must be finite"),
    ],
)
def test_bad_rows_name_the_line_and_write_nothing(tmp_path, text, needle):
    db = tmp_path / "x.db"
    with pytest.raises(SignsimError, match=needle):
        import_network(str(db), write(tmp_path, text))
    assert not db.exists() or counts(db) == (0, 0, 0)


def test_bad_row_after_good_rows_leaves_nothing(tmp_path):
    db = tmp_path / "x.db"
    import_network(str(db), write(tmp_path, GOOD, "first.csv"))
    bad = GOOD + "1,2,3,oops\n"
    with pytest.raises(SignsimError, match=r"line 7: RATING and TIME must be numbers"):
        import_network(str(db), write(tmp_path, bad, "second.csv"))
    assert counts(db) == (1, 4, 3)


def test_many_bad_rows_are_summarised(tmp_path):
    text = "".join(f"1,2,0,{i}\n" for i in range(9))
    with pytest.raises(SignsimError, match=r"4 more bad rows not shown"):
        read_snap_signed(write(tmp_path, text))


def test_failure_while_writing_removes_the_partial_run(tmp_path, monkeypatch):
    db = tmp_path / "x.db"
    import_network(str(db), write(tmp_path, GOOD, "first.csv"))

    def boom(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("sim.store.database.Store.write_agents", boom)
    with pytest.raises(SignsimError, match="disk full.*partial run was removed"):
        import_network(str(db), write(tmp_path, GOOD, "second.csv"))
    assert counts(db) == (1, 4, 3)


def test_missing_file_directory_and_unknown_format(tmp_path):
    db = str(tmp_path / "x.db")
    with pytest.raises(SignsimError, match="does not exist"):
        import_network(db, tmp_path / "nope.csv")
    with pytest.raises(SignsimError, match="is a directory"):
        import_network(db, tmp_path)
    with pytest.raises(SignsimError, match="Unknown import format 'gml'.*snap-signed"):
        import_network(db, write(tmp_path, GOOD), fmt="gml")
    with pytest.raises(SignsimError, match="holds no interactions"):
        import_network(db, write(tmp_path, "# only a comment\n"))


def test_bitcoin_otc_file(tmp_path):
    db = tmp_path / "btc.db"
    s = import_network(str(db), DATA)
    assert (s.scenario, s.n_interactions, s.n_agents) == ("soc-sign-bitcoinotc", 35_592, 5_881)
    assert s.negative_share == pytest.approx(3_563 / 35_592)
    ev = open_store(str(db)).interactions(s.run_id)
    assert np.all(np.diff(ev["t"]) >= 0)
    assert set(np.unique(ev["sign"]).tolist()) == {-1, 1}
    assert ev["weight"].min() == pytest.approx(0.1) and ev["weight"].max() == pytest.approx(1.0)


def test_cli_import_and_errors(tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "x.db")
    ok = runner.invoke(app, ["import", str(write(tmp_path, GOOD)), "--db", db,
                             "--format", "snap-signed", "--name", "toy"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("run 1 (toy): 4 interactions, 3 agents")
    bad = runner.invoke(app, ["import", str(tmp_path / "missing.csv"), "--db", db])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    assert "Traceback" not in bad.output
    fmt = runner.invoke(app, ["import", str(write(tmp_path, GOOD)), "--db", db,
                              "--format", "csv"])
    assert fmt.exit_code == 2 and "'--format': Value error, 'csv' is not one of" in fmt.output
