"""Experiments: every arm x seed of a scenario, in-process, on a process pool or on Dask.

Seed ``k`` is shared by all arms (common random numbers): the population and network of
seed ``k`` are the same in every arm, so arm differences can be paired by seed.

Each run is one task. A task carries everything it needs (the database string, the arm's
settings and interventions, the seed and the scenario text), opens its own
:class:`~sim.store.database.Store` inside the worker process and calls
:func:`sim.engine.simulate.run_into_store`. All workers write to the same database: SQLite (WAL,
busy timeout) on one machine, PostgreSQL when workers live on several machines.

Executors (in :mod:`sim.sweep.executors`):

* ``workers=1``: in this process, one run after another.
* ``workers>1``: a :class:`concurrent.futures.ProcessPoolExecutor` (``forkserver``
  start method where available, else ``spawn``).
* ``dask="local"``: a Dask ``LocalCluster`` with ``workers`` single-threaded worker
  processes; ``dask="tcp://host:port"``: an existing Dask scheduler (its workers must
  have signsim installed and reach the database).

Interruptions: every run commits its rows in transactions and is marked ``complete`` only
at its end, so Ctrl-C or a killed worker leaves the completed runs intact. Resuming
(``resume=True``) first marks the scenario's runs still ``running`` as ``aborted`` (they
were left by a killed process; a resume must therefore not run while another sweep of the
same scenario is running), then runs only the (arm, seed) pairs that have no ``complete``
run of this scenario with the same scenario text (same SHA-256).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from tqdm import tqdm

from sim.config import SimConfig
from sim.errors import SignsimError, describe_exception
from sim.scenario import InterventionSpec, Scenario
from sim.store.database import Store, open_store
from sim.store.schema import Run
from sim.sweep.executors import (
    DASK_CONNECT_TIMEOUT,
    dask_cluster,
    run_dask,
    run_in_process,
    run_pool,
    sigint_aborts_run,
    sweep_stopped,
)

__all__ = [
    "ExperimentFailed",
    "ExperimentResult",
    "RunRecord",
    "RunTask",
    "execute_task",
    "experiment_tasks",
    "mark_stale_runs_aborted",
    "missing_pairs",
    "run_experiment",
]

#: How long to wait for a Dask scheduler to answer (read at each call, so it can be changed).
_DASK_CONNECT_TIMEOUT = DASK_CONNECT_TIMEOUT


@dataclass
class RunTask:
    """Everything one run needs; picklable, so it travels to worker processes.

    Attributes:
        db: Database path or URL (opened inside the worker).
        scenario: Scenario name (``runs.scenario``).
        arm: Arm name.
        seed: Seed, shared by all arms.
        config: The arm's settings.
        interventions: The arm's interventions.
        scenario_text: Scenario file text, stored with the run.
    """

    db: str
    scenario: str
    arm: str
    seed: int
    config: SimConfig
    interventions: list[InterventionSpec] = field(default_factory=list)
    scenario_text: str = ""


@dataclass
class RunRecord:
    """The outcome of one task.

    Attributes:
        arm: Arm name.
        seed: Seed.
        run_id: The run's id in the database (-1 when the run could not be created).
        events: Interactions written.
        seconds: Wall time of the run.
        error: ``None`` on success, else ``"Type: message"``.
    """

    arm: str
    seed: int
    run_id: int = -1
    events: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the run completed."""
        return self.error is None


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` did.

    Attributes:
        scenario: Scenario name.
        db: The database the runs were written to.
        executor: ``in-process``, ``pool[n]``, ``dask-local[n]`` or ``dask <address>``.
        runs: The runs executed by this call, in completion order.
        skipped: (arm, seed) pairs not run because they were already complete (resume).
        aborted: Ids of stale ``running`` runs marked ``aborted`` before resuming.
        seconds: Wall time of the whole sweep, executor start-up included.
    """

    scenario: str
    db: str
    executor: str
    runs: list[RunRecord] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    aborted: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def run_ids(self) -> dict[tuple[str, int], int]:
        """Run id of each (arm, seed) executed by this call."""
        return {(r.arm, r.seed): r.run_id for r in self.runs}

    @property
    def events(self) -> int:
        """Interactions written by this call."""
        return sum(r.events for r in self.runs)

    @property
    def runs_per_minute(self) -> float:
        """Throughput of the sweep (runs executed per minute of wall time)."""
        return 60.0 * len(self.runs) / self.seconds if self.seconds > 0 else float("nan")


class ExperimentFailed(SignsimError):
    """Some runs of a sweep failed; the others completed and are kept.

    Attributes:
        result: What the sweep did (completed runs, skipped pairs, timings).
        failed: The failed runs, with their errors.
    """

    def __init__(self, message: str, result: ExperimentResult, failed: list[RunRecord]) -> None:
        super().__init__(message)
        self.result = result
        self.failed = failed


# -- tasks ---------------------------------------------------------------------------------
def _normalize_db(db: str) -> str:
    """Absolute SQLite path, so that workers with another working directory find it."""
    if "://" in db:
        return db
    return str(Path(db).expanduser().resolve())


def _describe_db(db: str) -> str:
    """The database for messages, without a password."""
    if "://" not in db:
        return db
    try:
        return make_url(db).render_as_string(hide_password=True)
    except ArgumentError:
        return db.split("://", 1)[0] + "://..."


def _scenario_sha(scenario: Scenario) -> str:
    return hashlib.sha256(scenario.text.encode()).hexdigest()


def experiment_tasks(scenario: Scenario, db: str, arms: list[str] | None = None) -> list[RunTask]:
    """The tasks of a sweep, seed-major (every arm of seed k before seed k+1).

    Seed-major order means an interrupted sweep leaves complete pairs for the report.

    Args:
        scenario: The validated scenario.
        db: Database path or URL.
        arms: Arm names to run (default: all, in file order).

    Returns:
        One task per (arm, seed).

    Raises:
        SignsimError: When ``arms`` names an arm the scenario does not have.
    """
    chosen = [scenario.arm(a) for a in arms] if arms is not None else list(scenario.arms)
    return [
        RunTask(db=db, scenario=scenario.name, arm=arm.name, seed=seed, config=arm.config,
                interventions=list(arm.interventions), scenario_text=scenario.text)
        for seed in scenario.seeds
        for arm in chosen
    ]


def mark_stale_runs_aborted(store: Store, scenario: str) -> list[int]:
    """Mark the scenario's runs still ``running`` as ``aborted``; return their ids.

    Only safe when no other sweep of the same scenario is running: a run of a live
    sweep would be marked too.
    """
    stale = store.frame(
        "SELECT id FROM runs WHERE scenario = :s AND status = 'running' ORDER BY id",
        {"s": scenario},
    )
    ids = [int(i) for i in stale["id"]]
    if ids:
        now = datetime.now(UTC).replace(tzinfo=None)
        with store.begin() as conn:
            conn.execute(
                update(Run).where(Run.id.in_(ids), Run.status == "running").values(
                    status="aborted", error="left running by an interrupted sweep; "
                    "marked aborted on resume", finished_at=now)
            )
    return ids


def missing_pairs(store: Store, scenario: Scenario, tasks: Iterable[RunTask]
                  ) -> tuple[list[RunTask], list[tuple[str, int]]]:
    """Split tasks into those still to run and the (arm, seed) pairs already complete.

    A pair counts as done when the database holds a ``complete`` run of this scenario
    name and arm and seed whose stored scenario text has the same SHA-256 as
    ``scenario.text``.
    """
    done_df = store.frame(
        "SELECT DISTINCT arm, seed FROM runs WHERE scenario = :s AND status = 'complete' "
        "AND scenario_sha256 = :h",
        {"s": scenario.name, "h": _scenario_sha(scenario)},
    )
    done = {(str(a), int(s)) for a, s in zip(done_df["arm"], done_df["seed"], strict=True)}
    todo, skipped = [], []
    for task in tasks:
        if (task.arm, task.seed) in done:
            skipped.append((task.arm, task.seed))
        else:
            todo.append(task)
    return todo, skipped


# -- the worker side -----------------------------------------------------------------------
def execute_task(task: RunTask) -> RunRecord:
    """Run one task: open the database, simulate into it, close it.

    This is the function the executors call in their worker processes. An error of the
    run is returned in the record (the run row is marked ``failed``); Ctrl-C
    (``KeyboardInterrupt``) marks the run ``aborted`` and propagates.

    Args:
        task: The run to do.

    Returns:
        The run's outcome.
    """
    from sim.engine.simulate import run_into_store

    if sweep_stopped():
        return RunRecord(task.arm, task.seed, error="KeyboardInterrupt: sweep interrupted")
    with sigint_aborts_run():
        record = RunRecord(task.arm, task.seed)
        started = time.perf_counter()
        store: Store | None = None
        try:
            store = open_store(task.db)
            result = run_into_store(
                store, task.config, seed=task.seed, scenario=task.scenario, arm=task.arm,
                scenario_text=task.scenario_text, interventions=task.interventions,
                progress=False,
            )
            record.run_id, record.events = result.run_id, result.events
        except SignsimError as exc:  # reported to the parent, run marked failed
            record.error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # one line, never the SQL text or its parameters
            record.error = describe_exception(exc)
        finally:
            record.seconds = time.perf_counter() - started
            if store is not None:
                store.dispose()
    return record


def _failed_record(task: RunTask, error: str) -> RunRecord:
    """The record of a task whose worker died or was interrupted."""
    return RunRecord(task.arm, task.seed, error=error)


# -- the sweep -----------------------------------------------------------------------------
def run_experiment(
    scenario: Scenario,
    db: str,
    *,
    workers: int = 1,
    dask: str | None = None,
    resume: bool = False,
    progress: bool = True,
    arms: list[str] | None = None,
) -> ExperimentResult:
    """Run every arm x seed of a scenario into a database.

    Seed ``k`` is used by every arm (common random numbers). Runs are dispatched
    seed-major; each writes its own rows, and the database ends with one ``complete``
    run per (arm, seed) executed.

    Args:
        scenario: The validated scenario (from :func:`sim.scenario.load_scenario`).
        db: Database file path (SQLite) or URL (``postgresql://...``); created if new.
        workers: Worker processes: 1 runs in this process; more uses a process pool, or
            the number of workers of a Dask ``LocalCluster`` with ``dask="local"``.
        dask: ``None`` (local executors), ``"local"`` (start a Dask ``LocalCluster``) or
            the address of a Dask scheduler (``tcp://host:port``).
        resume: Run only the (arm, seed) pairs without a ``complete`` run of this
            scenario (same scenario text) in the database; runs of this scenario left
            ``running`` are first marked ``aborted``. Must not run while another sweep
            of the same scenario is running.
        progress: Show a progress bar over runs (with ETA).
        arms: Only these arms (default: all).

    Returns:
        What was run, skipped and aborted, with timings.

    Raises:
        ExperimentFailed: When some runs failed (a :class:`SignsimError`; completed
            runs are kept, resume runs the rest).
        SignsimError: On bad arguments or an unreachable database or scheduler.
        KeyboardInterrupt: On Ctrl-C, after the running runs were marked ``aborted``
            (or, if a worker could not be stopped, left ``running``) and completed runs
            kept.
    """
    if workers < 1:
        raise SignsimError(f"workers must be at least 1, not {workers}.")
    started = time.perf_counter()
    db = _normalize_db(db)
    tasks = experiment_tasks(scenario, db, arms)
    store = open_store(db)  # creates the schema once, before any worker writes
    try:
        aborted: list[int] = []
        skipped: list[tuple[str, int]] = []
        if resume:
            aborted = mark_stale_runs_aborted(store, scenario.name)
            tasks, skipped = missing_pairs(store, scenario, tasks)
    finally:
        store.dispose()

    result = ExperimentResult(scenario.name, db, "in-process", skipped=skipped, aborted=aborted)
    with ExitStack() as stack:
        if not tasks:
            records: Generator[RunRecord, None, None] = run_in_process([], execute_task)
        elif dask is not None:
            client, result.executor = dask_cluster(dask, workers, stack, _DASK_CONNECT_TIMEOUT)
            records = run_dask(tasks, client, execute_task, _failed_record)
        elif workers > 1:
            result.executor = f"pool[{workers}]"
            records = run_pool(tasks, workers, execute_task, _failed_record)
        else:
            records = run_in_process(tasks, execute_task)
        # On Ctrl-C or an error here, closing the generator stops its executor first.
        stack.callback(records.close)
        bar = stack.enter_context(tqdm(
            total=len(tasks), unit="run", desc=scenario.name, disable=not progress,
            dynamic_ncols=True))
        if skipped and progress:
            bar.write(f"{scenario.name}: {len(skipped)} (arm, seed) pairs already complete; "
                      f"running {len(tasks)}.")
        failed: list[RunRecord] = []
        for record in records:
            if record.ok:
                result.runs.append(record)
            else:
                failed.append(record)
            bar.set_postfix_str(f"{record.arm}/seed {record.seed}", refresh=False)
            bar.update(1)
    result.seconds = time.perf_counter() - started
    if failed:
        shown = "; ".join(f"{r.arm}/seed {r.seed}: {r.error}" for r in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        raise ExperimentFailed(
            f"{len(failed)} of {len(tasks)} runs of scenario '{scenario.name}' failed: "
            f"{shown}{more}. The {len(result.runs)} completed runs are kept in "
            f"{_describe_db(db)}; fix the cause and run again with resume to run only the "
            "missing pairs.", result, failed,
        )
    return result
