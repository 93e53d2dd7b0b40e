"""`signsim run`, `signsim report` and `signsim validate` end to end on a tiny scenario."""

from __future__ import annotations

import sqlite3

from typer.testing import CliRunner

from cli import app

TINY = """
name = "tiny"
description = "Does friction lower the negative share in a tiny population?"
horizon = 3.0
seeds = 2
[population]
n_agents = 150
[[arms]]
name = "baseline"
[[arms]]
name = "friction"
interventions = [{ type = "friction", start = 1.0, share = 0.5 }]
"""


def test_run_then_report_from_the_database(tmp_path):
    scen = tmp_path / "tiny.toml"
    scen.write_text(TINY)
    db, out = tmp_path / "t.db", tmp_path / "rep"
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(scen), "--db", str(db), "--workers", "1",
                              "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "4 runs made" in res.output and "already complete" not in res.output
    con = sqlite3.connect(db)
    runs = con.execute("SELECT arm, seed, status FROM runs ORDER BY arm, seed").fetchall()
    blocked = con.execute("SELECT count(*) FROM interactions i JOIN runs r ON r.id = i.run_id "
                          "WHERE r.arm = 'friction' AND i.blocked_by = 'friction'").fetchone()[0]
    early = con.execute("SELECT count(*) FROM interactions WHERE blocked_by = 'friction' "
                        "AND t < 1.0").fetchone()[0]
    con.close()
    assert runs == [("baseline", 0, "complete"), ("baseline", 1, "complete"),
                    ("friction", 0, "complete"), ("friction", 1, "complete")]
    assert blocked > 0 and early == 0
    md = (out / "report.md").read_text()
    assert "friction" in md and "negative_share" in md
    assert (out / "ts_negative_share.png").read_bytes()[:4] == b"\x89PNG"
    first = md
    (out / "report.md").unlink()
    res = runner.invoke(app, ["report", "--scenario", "tiny", "--db", str(db), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.md").read_text() == first
    res = runner.invoke(app, ["run", str(scen), "--db", str(db), "--workers", "1", "--resume",
                              "--out", str(out), "--no-progress"])
    assert res.exit_code == 0 and "0 runs made" in res.output


def test_run_twice_reuses_fresh_runs_again_and_a_changed_file_is_refused(tmp_path):
    scen = tmp_path / "tiny.toml"
    scen.write_text(TINY)
    db, out = tmp_path / "t.db", tmp_path / "rep"
    runner = CliRunner()
    args = ["run", str(scen), "--db", str(db), "--workers", "1", "--out", str(out),
            "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "4 of 4 runs already complete, reused; use --fresh to run them again"
    assert lines[1].startswith("0 runs made, 0 events in ")
    res = runner.invoke(app, [*args, "--fresh"])
    assert res.exit_code == 0, res.output
    assert "fresh: every (arm, seed) was run again; the report uses the newest complete run " \
           "of each (arm, seed)" in res.output and "4 runs made" in res.output
    con = sqlite3.connect(db)
    per_pair = con.execute("SELECT arm, seed, count(*) FROM runs WHERE status = 'complete' "
                           "GROUP BY arm, seed").fetchall()
    con.close()
    assert sorted(n for _, _, n in per_pair) == [2, 2, 2, 2]
    report = (out / "report.md").read_text()
    assert "not used here (4, e.g. from `signsim run --fresh`): ids 1, 2, 3, 4." in report
    assert "| baseline | 0, 1 | 5, 7 |" in report and "| friction | 0, 1 | 6, 8 |" in report
    scen.write_text(TINY.replace("share = 0.5", "share = 0.6"))
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "Scenario 'tiny' has changed" in res.output and "8 complete runs" in res.output
    assert "give the changed scenario a new name" in res.output


def test_report_on_unknown_scenario_is_a_clear_error(tmp_path):
    db = tmp_path / "e.db"
    runner = CliRunner()
    assert runner.invoke(app, ["simulate", "--db", str(db), "--agents", "20", "--horizon", "0.5",
                               "--no-progress"]).exit_code == 0
    res = runner.invoke(app, ["report", "--scenario", "nope", "--db", str(db)])
    assert res.exit_code == 2 and "nope" in res.output and "Traceback" not in res.output


def test_unknown_intervention_lists_the_registry(tmp_path):
    scen = tmp_path / "bad.toml"
    scen.write_text(TINY.replace('type = "friction"', 'type = "shadowban"'))
    res = CliRunner().invoke(app, ["validate", str(scen)])
    assert res.exit_code == 2
    assert "arms[1].interventions[0].type: unknown intervention 'shadowban'; use one of: " \
           "ban, bridging, counter_speech, friction, moderation, rate_limit." in res.output
