"""Experiments: every arm x seed of a scenario, in-process, on a process pool or on Dask.

Seed ``k`` is shared by all arms (common random numbers): the population and network of
seed ``k`` are the same in every arm, so arm differences can be paired by seed.

Each run is one task. A task carries everything it needs (the database string, the arm's
settings and interventions, the seed and the scenario text), opens its own
:class:`~sim.store.Store` inside the worker process and calls
:func:`sim.simulate.run_into_store`. All workers write to the same database: SQLite (WAL,
busy timeout) on one machine, PostgreSQL when workers live on several machines.

Executors:

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
import multiprocessing as mp
import signal
import threading
import time
from collections.abc import Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update
from tqdm import tqdm

from sim.config import SimConfig
from sim.errors import SignsimError
from sim.scenario import InterventionSpec, Scenario
from sim.schema import Run
from sim.store import Store, open_store

__all__ = [
    "ExperimentResult",
    "RunRecord",
    "RunTask",
    "execute_task",
    "experiment_tasks",
    "mark_stale_runs_aborted",
    "missing_pairs",
    "run_experiment",
]

#: Seconds a pool worker may take to finish its run after Ctrl-C before it is terminated.
_STOP_GRACE_S = 10.0


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


# -- tasks ---------------------------------------------------------------------------------
def _normalize_db(db: str) -> str:
    """Absolute SQLite path, so that workers with another working directory find it."""
    if "://" in db:
        return db
    return str(Path(db).expanduser().resolve())


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
_IN_POOL_WORKER = False


def _init_pool_worker() -> None:
    """Pool worker initializer: an idle worker ignores Ctrl-C (the parent handles it)."""
    global _IN_POOL_WORKER
    _IN_POOL_WORKER = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
    from sim.simulate import run_into_store

    restore: Any = None
    if _IN_POOL_WORKER and threading.current_thread() is threading.main_thread():
        # While a run is going, Ctrl-C aborts it cleanly (its row becomes ``aborted``).
        restore = signal.signal(signal.SIGINT, signal.default_int_handler)
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
    except Exception as exc:  # reported to the parent, run marked failed
        record.error = f"{type(exc).__name__}: {exc}"
    finally:
        record.seconds = time.perf_counter() - started
        if store is not None:
            store.dispose()
        if restore is not None:
            signal.signal(signal.SIGINT, restore)
    return record


# -- executors -----------------------------------------------------------------------------
def _run_in_process(tasks: list[RunTask]) -> Generator[RunRecord, None, None]:
    for task in tasks:
        yield execute_task(task)


def _pool_context() -> mp.context.BaseContext:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # Workers fork from a server that already imported the simulator (and numba).
        ctx.set_forkserver_preload(["sim.experiment", "sim.simulate"])
        return ctx
    return mp.get_context("spawn")


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel pending tasks, give running ones a grace period, then terminate them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + _STOP_GRACE_S
    for proc in processes:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.terminate()


def _run_pool(tasks: list[RunTask], workers: int) -> Generator[RunRecord, None, None]:
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=_pool_context(),
                               initializer=_init_pool_worker)
    futures: dict[Future[RunRecord], RunTask] = {pool.submit(execute_task, t): t for t in tasks}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task = futures[fut]
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    yield RunRecord(task.arm, task.seed, error="BrokenProcessPool: a worker "
                                    "process died (killed or out of memory)")
                except KeyboardInterrupt:
                    yield RunRecord(task.arm, task.seed, error="KeyboardInterrupt: aborted")
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _dask_cluster(dask: str, workers: int, stack: ExitStack) -> tuple[Any, str]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask is a dependency
        raise SignsimError(f"Dask distributed is not installed ({exc}).") from None
    if dask == "local":
        import logging

        cluster = stack.enter_context(LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR,
        ))
        client = stack.enter_context(Client(cluster))
        return client, f"dask-local[{workers}]"
    try:
        client = Client(dask, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise SignsimError(
            f"Cannot connect to the Dask scheduler at '{dask}': {exc}. Check that the "
            "scheduler is running and the address (tcp://host:port)."
        ) from None
    stack.enter_context(_closing(client))
    return client, f"dask {dask}"


class _closing(AbstractContextManager[Any]):
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __exit__(self, *exc: object) -> None:
        self.obj.close()


def _run_dask(tasks: list[RunTask], client: Any) -> Generator[RunRecord, None, None]:
    from distributed import as_completed

    futures = [client.submit(execute_task, t, pure=False) for t in tasks]
    owner = {f.key: t for f, t in zip(futures, tasks, strict=True)}
    try:
        for fut in as_completed(futures):
            task = owner[fut.key]
            try:
                yield fut.result()
            except Exception as exc:  # e.g. a worker killed too often
                yield RunRecord(task.arm, task.seed, error=f"{type(exc).__name__}: {exc}")
    except BaseException:
        client.cancel(futures)
        raise


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
        SignsimError: On bad arguments, an unreachable database or scheduler, or when
            some runs failed (completed runs are kept; resume runs the rest).
        KeyboardInterrupt: On Ctrl-C, after the running runs were marked ``aborted``
            (or, if a worker could not be stopped, left ``running``) and completed runs
            kept.
    """
    if workers < 1:
        raise SignsimError(f"workers must be at least 1, not {workers}.")
    started = time.perf_counter()
    db = _normalize_db(db)
    store = open_store(db)  # creates the schema once, before any worker writes
    try:
        tasks = experiment_tasks(scenario, db, arms)
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
            records: Generator[RunRecord, None, None] = _run_in_process([])
        elif dask is not None:
            client, result.executor = _dask_cluster(dask, workers, stack)
            records = _run_dask(tasks, client)
        elif workers > 1:
            result.executor = f"pool[{workers}]"
            records = _run_pool(tasks, workers)
        else:
            records = _run_in_process(tasks)
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
        raise SignsimError(
            f"{len(failed)} of {len(tasks)} runs of scenario '{scenario.name}' failed: "
            f"{shown}{more}. The {len(result.runs)} completed runs are kept in {db}; "
            "fix the cause and run again with resume to run only the missing pairs."
        )
    return result
