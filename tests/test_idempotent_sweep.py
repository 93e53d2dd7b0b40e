"""Idempotent sweeps and claims: one complete run per (arm, seed), on SQLite and PostgreSQL.

A sweep run twice reuses the complete pairs of the same scenario text; ``fresh`` makes new
runs; a task executed twice (a Dask worker died after its run) reuses its first run; a live
holder is waited for; a dead holder's run is aborted and made again; a run whose claim
went elsewhere is never marked complete.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from sim.errors import SignsimError
from sim.scenario import parse_scenario
from sim.store.claims import ClaimKey, acquire, reap_stale_runs
from sim.store.database import RunSuperseded, Store, open_store
from sim.sweep.experiment import execute_task, experiment_tasks, run_experiment
from sim.sweep.report import selected_runs
from tests.helpers import scratch_pg_database

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")

TINY = """
name = "idem"
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
PAIRS = [("baseline", 3), ("baseline", 7), ("moderation", 3), ("moderation", 7)]


def tiny():
    return parse_scenario(TINY, "idem.toml")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.postgres,
    pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")])])
def db(request, tmp_path) -> Iterator[str]:
    """A new database: a SQLite file, or a database of its own on the test server."""
    if request.param == "sqlite":
        yield str(tmp_path / "idem.db")
        return
    assert PG_URL is not None
    with scratch_pg_database(PG_URL, "signsim_idem") as url:
        yield url


def complete_per_pair(store: Store) -> dict[tuple[str, int], list[int]]:
    runs = store.frame("SELECT id, arm, seed FROM runs WHERE status = 'complete' ORDER BY id")
    out: dict[tuple[str, int], list[int]] = {}
    for i, a, s in zip(runs["id"], runs["arm"], runs["seed"], strict=True):
        out.setdefault((str(a), int(s)), []).append(int(i))
    return out


def db_now(store: Store) -> float:
    """The clock claims are compared with (the server's on PostgreSQL)."""
    if store.is_sqlite:
        return time.time()
    return float(store.frame("SELECT extract(epoch from clock_timestamp()) AS t")["t"][0])


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant_claim(store: Store, key: ClaimKey, holder: str, lease_until: float,
                run_id: int | None) -> None:
    """A claim row as another process would have left it (on PostgreSQL: with its lock)."""
    mark = "?" if store.is_sqlite else "%s"
    with store.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO run_claims (scenario, scenario_sha256, arm, seed, sweep, holder, "
            f"run_id, lease_until, locked, taken) VALUES ({', '.join([mark] * 9)}, 1)",
            (key.scenario, key.scenario_sha256, key.arm, key.seed, "other", holder, run_id,
             lease_until, not store.is_sqlite))


def task_for(db: str, arm: str, seed: int, sweep: str = "s1", fresh: bool = False):
    open_store(db).dispose()  # the schema, as run_experiment makes it before dispatching
    return next(t for t in experiment_tasks(tiny(), db, sweep=sweep, fresh=fresh)
                if (t.arm, t.seed) == (arm, seed))


# -- sweeps ----------------------------------------------------------------------------------
def test_a_second_sweep_reuses_every_complete_pair(db):
    first = run_experiment(tiny(), db, progress=False)
    assert sorted(first.run_ids) == PAIRS and first.made == 4 and first.notes() == []
    second = run_experiment(tiny(), db, progress=False)
    assert second.runs == [] and sorted(second.skipped) == PAIRS and second.events == 0
    assert second.notes() == ["4 of 4 runs already complete, reused; use --fresh to run "
                              "them again"]
    store = open_store(db)
    try:
        assert {k: len(v) for k, v in complete_per_pair(store).items()} == dict.fromkeys(PAIRS, 1)
        lost = first.run_ids[("moderation", 7)]
        with store.begin() as conn:
            conn.exec_driver_sql(f"UPDATE runs SET status = 'failed' WHERE id = {lost}")
        third = run_experiment(tiny(), db, progress=False)
        assert list(third.run_ids) == [("moderation", 7)] and len(third.skipped) == 3
        assert third.notes()[0].startswith("3 of 4 runs already complete, reused")
        assert store.table_hash(third.run_ids[("moderation", 7)]) == store.table_hash(lost)
        assert len(store.runs()) == 5
    finally:
        store.dispose()


def test_fresh_makes_new_runs_and_the_report_uses_the_newest(db):
    first = run_experiment(tiny(), db, progress=False)
    again = run_experiment(tiny(), db, fresh=True, progress=False)
    assert sorted(again.run_ids) == PAIRS and again.skipped == [] and again.made == 4
    assert any("the report uses the newest complete run of each (arm, seed)" in line
               for line in again.notes())
    store = open_store(db)
    try:
        per_pair = complete_per_pair(store)
        assert {k: len(v) for k, v in per_pair.items()} == dict.fromkeys(PAIRS, 2)
        for pair in PAIRS:  # same seed, same rows
            assert store.table_hash(first.run_ids[pair]) == store.table_hash(again.run_ids[pair])
        chosen = selected_runs(store, "idem")
        assert sorted(int(i) for i in chosen["id"]) == sorted(again.run_ids.values())
    finally:
        store.dispose()
    with pytest.raises(SignsimError, match="contradict each other"):
        run_experiment(tiny(), db, fresh=True, resume=True, progress=False)


def test_a_changed_scenario_text_is_refused_on_every_backend(db):
    run_experiment(tiny(), db, progress=False, arms=["baseline"])
    changed = parse_scenario(TINY.replace("n_agents = 150", "n_agents = 160"), "idem.toml")
    with pytest.raises(SignsimError, match="Scenario 'idem' has changed: .* 2 complete runs"):
        run_experiment(changed, db, progress=False)


# -- claims ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fresh", [False, True])
def test_a_task_run_again_reuses_the_run_of_its_first_execution(db, fresh):
    task = task_for(db, "moderation", 3, fresh=fresh)
    first = execute_task(task)
    assert first.ok and not first.reused and first.events > 0
    again = execute_task(task)  # Dask re-runs a finished task whose worker died
    assert again.ok and again.reused
    assert (again.run_id, again.events) == (first.run_id, first.events)
    store = open_store(db)
    try:
        assert complete_per_pair(store) == {("moderation", 3): [first.run_id]}
        other_sweep = execute_task(task_for(db, "moderation", 3, sweep="s2", fresh=fresh))
        assert other_sweep.reused is not fresh  # fresh: each sweep makes its own run
        assert len(complete_per_pair(store)[("moderation", 3)]) == (2 if fresh else 1)
    finally:
        store.dispose()


def test_a_live_holder_is_waited_for_and_its_run_reused(db):
    from sim.engine.simulate import run_into_store

    task = task_for(db, "baseline", 7)
    store = open_store(db)
    key = ClaimKey.of(task.scenario, task.scenario_text, task.arm, task.seed)
    got = acquire(store, key, sweep="holder")
    assert got.claim is not None
    out: dict[str, object] = {}
    waiter = threading.Thread(target=lambda: out.update(record=execute_task(task)))
    waiter.start()
    try:
        time.sleep(1.5)
        assert waiter.is_alive()  # the claim is held by a live process: it waits
        store.guard = got.claim
        made = run_into_store(store, task.config, seed=7, scenario=task.scenario, arm="baseline",
                              scenario_text=task.scenario_text)
    finally:
        store.guard = None
        got.claim.close()
        waiter.join(timeout=60)
    record = out["record"]
    assert record.ok and record.reused and record.run_id == made.run_id  # type: ignore[attr-defined]
    assert complete_per_pair(store) == {("baseline", 7): [made.run_id]}
    store.dispose()


def test_a_dead_holders_run_is_aborted_and_made_again(db):
    task = task_for(db, "baseline", 3)
    store = open_store(db)
    try:
        stale = store.create_run(scenario=task.scenario, arm="baseline", seed=3,
                                 scenario_text=task.scenario_text)
        key = ClaimKey.of(task.scenario, task.scenario_text, "baseline", 3)
        # lease far ahead: only the holder's death (no process / no database session) tells
        plant_claim(store, key, f"{socket.gethostname()}:{dead_pid()}:dead", db_now(store) + 3600,
                    stale)
        started = time.monotonic()
        record = execute_task(task)
        assert time.monotonic() - started < 30  # did not wait for the lease
        assert record.ok and not record.reused and record.took_over == stale
        row = store.run(stale)
        assert row["status"] == "aborted" and "taken over" in row["error"]
        assert complete_per_pair(store) == {("baseline", 3): [record.run_id]}
    finally:
        store.dispose()


def test_the_lease_ends_a_frozen_holder(db):
    task = task_for(db, "moderation", 7)
    store = open_store(db)
    key = ClaimKey.of(task.scenario, task.scenario_text, "moderation", 7)
    session = None
    try:
        stale = store.create_run(scenario=task.scenario, arm="moderation", seed=7,
                                 scenario_text=task.scenario_text)
        if store.is_sqlite:  # a holder on another machine: only its lease tells
            holder = "elsewhere:1:frozen"
        else:  # a session that still holds the claim's lock (a frozen worker)
            import psycopg

            session = psycopg.connect(db, autocommit=True)
            session.execute("SELECT pg_advisory_lock(%s)", (key.lock_id,))
            holder = f"elsewhere:{os.getpid()}:frozen"
        plant_claim(store, key, holder, db_now(store) + 2.0, stale)
        started = time.monotonic()
        record = execute_task(task)
        assert time.monotonic() - started >= 1.0  # waited for the lease
        assert record.ok and record.took_over == stale
        assert store.run(stale)["status"] == "aborted"
        assert complete_per_pair(store) == {("moderation", 7): [record.run_id]}
    finally:
        if session is not None:
            session.close()
        store.dispose()


def test_a_run_whose_claim_went_elsewhere_is_never_complete(db):
    task = task_for(db, "baseline", 3)
    store = open_store(db)
    key = ClaimKey.of(task.scenario, task.scenario_text, "baseline", 3)
    got = acquire(store, key, sweep="a")
    assert got.claim is not None
    store.guard = got.claim
    try:
        run_id = store.create_run(scenario=task.scenario, arm="baseline", seed=3,
                                  scenario_text=task.scenario_text)
        with store.begin() as conn:  # another worker took the claim over
            conn.exec_driver_sql("UPDATE run_claims SET holder = 'thief:1:x'")
        with pytest.raises(RunSuperseded):
            store.finish_run(run_id, "complete")
        row = store.run(run_id)
        assert row["status"] == "aborted" and "went to another worker" in row["error"]
        before = len(store.runs())
        with pytest.raises(RunSuperseded):  # nor can it start another run
            store.create_run(scenario=task.scenario, arm="baseline", seed=3,
                             scenario_text=task.scenario_text)
        assert len(store.runs()) == before
    finally:
        store.guard = None
        got.claim.close()
        store.dispose()


def test_reaping_marks_only_runs_nobody_holds(db):
    task = task_for(db, "baseline", 3)
    store = open_store(db)
    text = task.scenario_text
    live_key = ClaimKey.of("idem", text, "baseline", 3)
    live = acquire(store, live_key, sweep="live")
    assert live.claim is not None
    try:
        store.guard = live.claim
        live_run = store.create_run(scenario="idem", arm="baseline", seed=3, scenario_text=text)
        store.guard = None
        dead_run = store.create_run(scenario="idem", arm="baseline", seed=7, scenario_text=text)
        plant_claim(store, ClaimKey.of("idem", text, "baseline", 7),
                    f"{socket.gethostname()}:{dead_pid()}:dead", db_now(store) + 3600, dead_run)
        loose_run = store.create_run(scenario="idem", arm="moderation", seed=3,
                                     scenario_text=text)  # e.g. from `signsim simulate`
        assert reap_stale_runs(store, "idem") == [dead_run]
        assert reap_stale_runs(store, "idem", unclaimed=True) == [loose_run]
        status = {i: store.run(i)["status"] for i in (live_run, dead_run, loose_run)}
        assert status == {live_run: "running", dead_run: "aborted", loose_run: "aborted"}
        # a sweep started now marks nothing of the live holder and waits for nothing else
        result = run_experiment(tiny(), db, arms=["moderation"], progress=False)
        assert sorted(result.run_ids) == [("moderation", 3), ("moderation", 7)]
        assert store.run(live_run)["status"] == "running"
    finally:
        live.claim.close()
        store.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_a_holder_without_the_lock_is_judged_by_its_lease(tmp_path):
    """A claim taken while a predecessor's session still held its lock is not lost to the
    first checker that finds the lock free."""
    import psycopg

    assert PG_URL is not None
    name = f"signsim_idem_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    db = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    store = open_store(db)
    key = ClaimKey.of("idem", TINY, "baseline", 3)
    try:
        with psycopg.connect(db, autocommit=True) as predecessor:
            predecessor.execute("SELECT pg_advisory_lock(%s)", (key.lock_id,))
            held = acquire(store, key, sweep="a")
        assert held.claim is not None  # the predecessor's session is gone now
        assert not store.frame("SELECT locked FROM run_claims")["locked"][0]
        out: dict[str, object] = {}
        checker = threading.Thread(
            target=lambda: out.update(got=acquire(store, key, sweep="b", poll_s=0.05)))
        checker.start()
        time.sleep(1.0)
        assert checker.is_alive()  # waits for the live holder instead of taking over
        held.claim.close()
        checker.join(timeout=30)
        got = out["got"]
        assert got.claim is not None and got.aborted is None  # type: ignore[attr-defined]
        assert bool(store.frame("SELECT locked FROM run_claims")["locked"][0])
        got.claim.close()  # type: ignore[attr-defined]
    finally:
        store.dispose()
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
