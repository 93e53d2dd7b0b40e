"""Experiments: arms x seeds, executors, nothing lost, resume, reproducibility."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import sim.engine.simulate
import sim.sweep.experiment as experiment
from sim.errors import SignsimError
from sim.scenario import parse_scenario
from sim.store.database import open_store
from sim.sweep.experiment import ExperimentFailed, experiment_tasks, run_experiment

TINY = """
name = "tiny"
description = "Does moderation change anything in a tiny population?"
horizon = 2.0
seeds = [3, 7]

[population]
n_agents = 150

[[arms]]
name = "baseline"

[[arms]]
name = "moderation"
interventions = [{ type = "moderation", start = 0.5, recall = 0.6, strikes = 2 }]
"""


def tiny():
    return parse_scenario(TINY, "tiny.toml")


def check_database(db, scenario, expected_runs):
    """Every run complete, one per (arm, seed), and counters match the stored rows."""
    store = open_store(db)
    try:
        runs = store.frame("SELECT * FROM runs WHERE scenario = :s AND status = 'complete'",
                           {"s": scenario.name})
        assert len(runs) == expected_runs
        assert len(set(zip(runs["arm"], runs["seed"], strict=True))) == expected_runs
        per_run = store.frame(
            "SELECT run_id, COUNT(*) AS n FROM interactions GROUP BY run_id")
        counts = dict(zip(per_run["run_id"], per_run["n"], strict=True))
        for rid, n in zip(runs["id"], runs["n_interactions"], strict=True):
            assert counts.get(rid, 0) == n > 0
        total = store.frame(
            "SELECT COUNT(*) AS n FROM interactions WHERE run_id IN "
            "(SELECT id FROM runs WHERE status = 'complete' AND scenario = :s)",
            {"s": scenario.name})["n"][0]
        assert total == runs["n_interactions"].sum()
        agents = store.frame("SELECT run_id, COUNT(*) AS n FROM agents GROUP BY run_id")
        assert set(agents["n"]) == {150}
        return {(a, int(s)): store.table_hash(int(i))
                for a, s, i in zip(runs["arm"], runs["seed"], runs["id"], strict=True)}
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny scenario run in-process: its database and per-(arm, seed) hashes."""
    db = str(tmp_path_factory.mktemp("ref") / "ref.db")
    sc = tiny()
    result = run_experiment(sc, db, progress=False)
    assert result.executor == "in-process"
    return db, result, check_database(db, sc, 4)


def test_in_process_runs_every_arm_and_seed(reference):
    db, result, hashes = reference
    assert sorted(result.run_ids) == [("baseline", 3), ("baseline", 7),
                                      ("moderation", 3), ("moderation", 7)]
    # seed-major order: both arms of seed 3 before seed 7
    assert [(r.arm, r.seed) for r in result.runs] == [
        ("baseline", 3), ("moderation", 3), ("baseline", 7), ("moderation", 7)]
    assert result.events == sum(r.events for r in result.runs) > 0
    assert result.runs_per_minute > 0
    assert hashes[("baseline", 3)] != hashes[("moderation", 3)]
    store = open_store(db)
    try:
        # common random numbers: both arms of a seed start from the same population
        for seed in (3, 7):
            ids = result.run_ids
            assert store.table_hash(ids[("baseline", seed)], "agents") == store.table_hash(
                ids[("moderation", seed)], "agents")
        text = store.frame("SELECT DISTINCT scenario_text FROM runs")["scenario_text"]
        assert list(text) == [TINY]
    finally:
        store.dispose()


def test_pool_matches_in_process(reference, tmp_path):
    sc = tiny()
    db = str(tmp_path / "pool.db")
    result = run_experiment(sc, db, workers=2, progress=False)
    assert result.executor == "pool[2]"
    assert check_database(db, sc, 4) == reference[2]


def test_dask_local_cluster_matches_in_process(reference, tmp_path):
    pytest.importorskip("distributed")
    sc = tiny()
    db = str(tmp_path / "dask.db")
    result = run_experiment(sc, db, workers=2, dask="local", progress=False)
    assert result.executor == "dask-local[2]"
    assert len(result.runs) == 4
    assert check_database(db, sc, 4) == reference[2]


def test_resume_reruns_only_missing_pairs(tmp_path, reference):
    sc = tiny()
    db = str(tmp_path / "resume.db")
    first = run_experiment(sc, db, progress=False)
    store = open_store(db)
    lost = first.run_ids[("moderation", 3)]
    stale = first.run_ids[("baseline", 7)]
    with store.begin() as conn:
        conn.exec_driver_sql(f"UPDATE runs SET status = 'aborted' WHERE id = {lost}")
        # a run a killed process left behind: rows half written, still 'running'
        conn.exec_driver_sql(f"UPDATE runs SET status = 'running' WHERE id = {stale}")
        conn.exec_driver_sql(f"DELETE FROM interactions WHERE run_id = {stale} AND seq >= 100")

    result = run_experiment(sc, db, resume=True, progress=False)
    assert result.aborted == [stale]
    assert sorted(result.run_ids) == [("baseline", 7), ("moderation", 3)]
    assert sorted(result.skipped) == [("baseline", 3), ("moderation", 7)]
    assert store.run(stale)["status"] == "aborted"
    assert len(store.runs()) == 6  # 4 + the 2 re-runs
    assert check_database(db, sc, 4) == reference[2]

    again = run_experiment(sc, db, resume=True, progress=False)
    assert again.runs == [] and again.aborted == [] and len(again.skipped) == 4
    assert len(store.runs()) == 6
    store.dispose()


def test_a_changed_scenario_text_under_the_same_name_is_refused(tmp_path):
    sc = tiny()
    db = str(tmp_path / "text.db")
    run_experiment(sc, db, progress=False, arms=["baseline"])
    store = open_store(db)
    before = store.runs()
    changed = parse_scenario(TINY.replace("recall = 0.6", "recall = 0.5"), "tiny.toml")
    for kw in ({}, {"fresh": True}, {"resume": True}):
        with pytest.raises(SignsimError, match=r"Scenario 'tiny' has changed: .*text.db holds 2 "
                           r"complete runs of it made from another scenario text .*nothing was "
                           r"run. To keep both, give the changed scenario a new name"):
            run_experiment(changed, db, progress=False, **kw)
    assert store.runs().equals(before)  # nothing run, nothing marked
    renamed = parse_scenario(TINY.replace("recall = 0.6", "recall = 0.5").replace(
        'name = "tiny"', 'name = "tiny_v2"'), "tiny.toml")
    result = run_experiment(renamed, db, progress=False)
    assert len(result.runs) == 4 and result.skipped == []
    store.dispose()


def test_arms_filter_and_bad_arguments(tmp_path):
    sc = tiny()
    tasks = experiment_tasks(sc, "x.db", ["moderation"])
    assert [(t.arm, t.seed) for t in tasks] == [("moderation", 3), ("moderation", 7)]
    with pytest.raises(SignsimError, match="has no arm 'nope'; arms: baseline, moderation"):
        run_experiment(sc, str(tmp_path / "a.db"), arms=["nope"], progress=False)
    with pytest.raises(SignsimError, match="workers must be at least 1"):
        run_experiment(sc, str(tmp_path / "a.db"), workers=0, progress=False)


def test_failed_run_is_reported_and_others_kept(tmp_path, monkeypatch):
    real = sim.engine.simulate.run_into_store

    def flaky(store, config, **kw):
        if kw["arm"] == "moderation" and kw["seed"] == 7:
            raise_at = store.create_run(scenario=kw["scenario"], arm=kw["arm"], seed=kw["seed"])
            store.finish_run(raise_at, "failed", "ValueError: boom")
            raise ValueError("boom")
        return real(store, config, **kw)

    monkeypatch.setattr(sim.engine.simulate, "run_into_store", flaky)
    sc = tiny()
    db = str(tmp_path / "fail.db")
    with pytest.raises(ExperimentFailed, match=r"1 of 4 runs .* moderation/seed 7: ValueError: "
                       r"boom.*3 completed runs are kept.*resume") as info:
        run_experiment(sc, db, progress=False)
    assert isinstance(info.value, SignsimError)
    assert len(info.value.result.runs) == 3
    assert [(r.arm, r.seed) for r in info.value.failed] == [("moderation", 7)]
    monkeypatch.setattr(sim.engine.simulate, "run_into_store", real)
    result = run_experiment(sc, db, resume=True, progress=False)
    assert list(result.run_ids) == [("moderation", 7)]
    check_database(db, sc, 4)


def test_ctrl_c_keeps_completed_runs(tmp_path, monkeypatch, reference):
    calls = {"n": 0}
    real = sim.engine.simulate.Recorder.on_events

    def interrupting(self, model, events):
        if self.run_id == 3:  # the third run is interrupted part-way
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
        return real(self, model, events)

    monkeypatch.setattr(sim.engine.simulate.Recorder, "on_events", interrupting)
    sc = tiny()
    db = str(tmp_path / "ctrlc.db")
    with pytest.raises(KeyboardInterrupt):
        run_experiment(sc, db, progress=False)
    store = open_store(db)
    assert list(store.runs()["status"]) == ["complete", "complete", "aborted"]
    monkeypatch.undo()
    result = run_experiment(sc, db, resume=True, progress=False)
    assert sorted(result.run_ids) == [("baseline", 7), ("moderation", 7)]
    assert check_database(db, sc, 4) == reference[2]
    store.dispose()


KILLED = textwrap.dedent("""
    import sys
    from sim.sweep.experiment import run_experiment
    from sim.scenario import parse_scenario
    text = sys.stdin.read()
    run_experiment(parse_scenario(text, "slow.toml"), sys.argv[1], progress=False)
""")


def test_killed_process_leaves_consistent_database_and_resume_finishes(tmp_path):
    text = TINY.replace("seeds = [3, 7]", "seeds = [1, 2, 3, 4, 5, 6]").replace(
        "horizon = 2.0", "horizon = 6.0").replace("n_agents = 150", "n_agents = 150\n"
                                                    "mean_rate = 5.0")
    text = text.replace('name = "tiny"', 'name = "slow"')
    sc = parse_scenario(text, "slow.toml")
    db = str(tmp_path / "killed.db")
    proc = subprocess.Popen([sys.executable, "-c", KILLED, db], stdin=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if os.path.exists(db):
            try:
                store = open_store(db, read_only=True)
                done = int(store.frame("SELECT COUNT(*) AS n FROM runs WHERE status = "
                                       "'complete'")["n"][0])
                store.dispose()
            except SignsimError:  # the schema is not there yet
                continue
            if done >= 2:
                break
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = open_store(db)
    before = store.runs()
    assert set(before["status"]) <= {"complete", "running"}
    running = [int(i) for i in before.loc[before["status"] == "running", "id"]]
    result = run_experiment(sc, db, resume=True, progress=False)
    assert result.aborted == running
    assert len(result.skipped) == int((before["status"] == "complete").sum()) >= 2
    assert len(result.runs) + len(result.skipped) == 12
    check_database(db, sc, 12)
    store.dispose()


def test_unreachable_dask_scheduler(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(experiment, "_DASK_CONNECT_TIMEOUT", "0.5s")
    with pytest.raises(SignsimError, match="Cannot connect to the Dask scheduler at "
                       "'tcp://127.0.0.1:9'"):
        run_experiment(tiny(), str(tmp_path / "d.db"), dask="tcp://127.0.0.1:9", progress=False)


def test_warm_up_runs_a_tiny_simulation_and_leaves_nothing_behind(tmp_path, monkeypatch):
    from sim.engine.warmup import warm_up

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert warm_up() is True
    assert list(tmp_path.iterdir()) == []  # its database was deleted


def test_a_failing_warm_up_never_raises(monkeypatch):
    import sim.engine.warmup

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sim.engine.warmup, "run_into_store", boom)
    assert sim.engine.warmup.warm_up() is False
