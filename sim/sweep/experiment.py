"""Experiments: every arm x seed of a scenario, in-process, on a process pool or on Dask.

Seed ``k`` is shared by all arms (common random numbers): the population and network of
seed ``k`` are the same in every arm, so arm differences can be paired by seed.

Each run is one task (:mod:`sim.sweep.tasks`). A task carries everything it needs (the
database string, the arm's settings and interventions, the seed and the scenario text),
opens its own :class:`~sim.store.database.Store` inside the worker process and calls
:func:`sim.engine.simulate.run_into_store`. All workers write to the same database:
SQLite (WAL, busy timeout) on one machine, PostgreSQL when workers live on several.

Executors (in :mod:`sim.sweep.executors`):

* ``workers=1``: in this process, one run after another.
* ``workers>1``: a :class:`concurrent.futures.ProcessPoolExecutor` (``forkserver``
  start method where available, else ``spawn``).
* ``dask="local"``: a Dask ``LocalCluster`` with ``workers`` single-threaded worker
  processes; ``dask="tcp://host:port"``: an existing Dask scheduler (its workers must
  have signsim installed and reach the database).

Exactly one complete run per (arm, seed): a sweep is idempotent. The (arm, seed) pairs
that already have a ``complete`` run of the same scenario text (same SHA-256) are reused,
not run again; ``fresh=True`` makes new runs of every pair (a report then uses the newest
complete run of each). A scenario name whose complete runs come from another scenario
text is refused, so that one report never mixes two versions of a scenario. Inside the
sweep every task makes its run under a claim (:mod:`sim.store.claims`): a task that runs
twice (Dask runs a task again when its worker dies) finds the run of its first execution
instead of making a second one, and a run a dead worker left ``running`` is marked
``aborted`` when its task is taken over, or at the start of the next sweep of the
scenario.

Interruptions: every run commits its rows in transactions and is marked ``complete`` only
at its end, so Ctrl-C or a killed worker leaves the completed runs intact; running the
sweep again makes only the missing runs.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Generator, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from sim.errors import SignsimError
from sim.scenario import Scenario
from sim.store.claims import DEFAULT_LEASE_S, ensure_claims_table, reap_stale_runs
from sim.store.connect import describe_url
from sim.store.database import Store, open_store
from sim.sweep.executors import (
    DASK_CONNECT_TIMEOUT,
    dask_cluster,
    run_dask,
    run_in_process,
    run_pool,
)
from sim.sweep.tasks import RunRecord, RunTask, execute_task, failed_record

__all__ = [
    "ExperimentFailed",
    "ExperimentResult",
    "RunRecord",
    "RunTask",
    "check_scenario_text",
    "execute_task",
    "experiment_tasks",
    "missing_pairs",
    "run_experiment",
]

#: How long to wait for a Dask scheduler to answer (read at each call, so it can be changed).
_DASK_CONNECT_TIMEOUT = DASK_CONNECT_TIMEOUT


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` did.

    Attributes:
        scenario: Scenario name.
        db: The database the runs were written to.
        executor: ``in-process``, ``pool[n]``, ``dask-local[n]`` or ``dask <address>``.
        runs: The tasks executed by this call, in completion order (one per (arm, seed)
            sent to the executor; see :attr:`RunRecord.reused`).
        skipped: (arm, seed) pairs not sent to the executor because they already had a
            complete run of the same scenario text (reused).
        aborted: Ids of runs left ``running`` by stopped processes, marked ``aborted``
            before the sweep started.
        fresh: Every pair was run again (``fresh=True``).
        seconds: Wall time of the whole sweep, executor start-up included.
    """

    scenario: str
    db: str
    executor: str
    runs: list[RunRecord] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    aborted: list[int] = field(default_factory=list)
    fresh: bool = False
    seconds: float = 0.0

    @property
    def run_ids(self) -> dict[tuple[str, int], int]:
        """Run id of each (arm, seed) executed by this call."""
        return {(r.arm, r.seed): r.run_id for r in self.runs}

    @property
    def events(self) -> int:
        """Interactions of the runs made by this call (reused runs not counted)."""
        return sum(r.events for r in self.runs if not r.reused)

    @property
    def made(self) -> int:
        """Runs made by this call (not reused)."""
        return sum(1 for r in self.runs if not r.reused)

    @property
    def taken_over(self) -> list[int]:
        """Runs of stopped workers marked ``aborted`` when their task was taken over."""
        return sorted(r.took_over for r in self.runs if r.took_over is not None)

    @property
    def runs_per_minute(self) -> float:
        """Throughput of the sweep (runs executed per minute of wall time)."""
        return 60.0 * len(self.runs) / self.seconds if self.seconds > 0 else float("nan")

    def notes(self) -> list[str]:
        """What a user should know about reused, re-made and aborted runs (one line each)."""
        pairs = len(self.skipped) + len(self.runs)
        lines = []
        if self.skipped:
            lines.append(f"{len(self.skipped)} of {pairs} runs already complete, reused; "
                         "use --fresh to run them again")
        if self.fresh:
            lines.append("fresh: every (arm, seed) was run again; the report uses the newest "
                         "complete run of each (arm, seed)")
        late = sum(1 for r in self.runs if r.reused)
        if late:
            lines.append(f"{late} runs were complete when their task ran (an earlier execution "
                         "of the task, on a worker that then stopped, or another sweep made "
                         "them), reused")
        if self.taken_over:
            lines.append(f"{len(self.taken_over)} runs of stopped workers were marked aborted "
                         f"and made again: ids {_ids(self.taken_over)}")
        if self.aborted:
            lines.append(f"{len(self.aborted)} runs left running by stopped processes were "
                         f"marked aborted: ids {_ids(self.aborted)}")
        return lines


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:10])) + (f" (and {len(ids) - 10} more)" if len(ids) > 10 else "")


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


def _scenario_sha(scenario: Scenario) -> str:
    return hashlib.sha256(scenario.text.encode()).hexdigest()


def experiment_tasks(scenario: Scenario, db: str, arms: list[str] | None = None, *,
                     sweep: str = "", fresh: bool = False,
                     lease_s: float = DEFAULT_LEASE_S) -> list[RunTask]:
    """The tasks of a sweep, seed-major (every arm of seed k before seed k+1).

    Seed-major order means an interrupted sweep leaves complete pairs for the report.

    Args:
        scenario: The validated scenario.
        db: Database path or URL.
        arms: Arm names to run (default: all, in file order).
        sweep: Id of the sweep.
        fresh: Make new runs even of pairs that have a complete run.
        lease_s: Lease of each task's claim.

    Returns:
        One task per (arm, seed).

    Raises:
        SignsimError: When ``arms`` names an arm the scenario does not have.
    """
    chosen = [scenario.arm(a) for a in arms] if arms is not None else list(scenario.arms)
    return [
        RunTask(db=db, scenario=scenario.name, arm=arm.name, seed=seed, config=arm.config,
                interventions=list(arm.interventions), scenario_text=scenario.text,
                sweep=sweep, fresh=fresh, lease_s=lease_s)
        for seed in scenario.seeds
        for arm in chosen
    ]


def check_scenario_text(store: Store, scenario: Scenario, db: str = "the database") -> None:
    """Refuse a scenario whose name already has complete runs of another scenario text.

    A report compares the complete runs of one scenario name; runs of two versions of a
    scenario under one name would be compared as if they were one.

    Args:
        store: The database.
        scenario: The scenario about to run.
        db: The database as the user named it (for the message).

    Raises:
        SignsimError: When such runs exist (naming how many, and the ways out).
    """
    sha = _scenario_sha(scenario)
    other = store.frame(
        "SELECT scenario_sha256 AS sha, COUNT(*) AS n, MAX(id) AS newest FROM runs "
        "WHERE scenario = :s AND status = 'complete' AND scenario_sha256 <> :h "
        "GROUP BY scenario_sha256 ORDER BY MAX(id) DESC",
        {"s": scenario.name, "h": sha},
    )
    if other.empty:
        return
    n, versions = int(other["n"].sum()), len(other)
    texts = "another scenario text" if versions == 1 else f"{versions} other scenario texts"
    raise SignsimError(
        f"Scenario '{scenario.name}' has changed: {describe_url(db)} holds {n} complete "
        f"runs of it made from {texts} (newest: SHA-256 {str(other['sha'][0])[:12]}..., run "
        f"id {int(other['newest'][0])}), not from this text (SHA-256 {sha[:12]}...). "
        "A report compares every complete run of a scenario name, so two versions are "
        "never mixed under one name and nothing was run. To keep both, give the changed "
        "scenario a new name (its `name = \"...\"` key); to start over, use a new --db. "
        f"The stored text: signsim query \"SELECT DISTINCT scenario_text FROM runs WHERE "
        f"scenario = '{scenario.name}'\"."
    )


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


# -- the sweep -----------------------------------------------------------------------------
def run_experiment(
    scenario: Scenario,
    db: str,
    *,
    workers: int = 1,
    dask: str | None = None,
    fresh: bool = False,
    resume: bool = False,
    progress: bool = True,
    arms: list[str] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
) -> ExperimentResult:
    """Run every arm x seed of a scenario into a database, once.

    Seed ``k`` is used by every arm (common random numbers). Runs are dispatched
    seed-major; each writes its own rows. The sweep is idempotent: (arm, seed) pairs that
    already have a ``complete`` run of the same scenario text are reused (listed in
    :attr:`ExperimentResult.skipped`), and the database ends with exactly one complete run
    per (arm, seed) made by this call, even when a worker dies and its task runs again
    elsewhere (:mod:`sim.store.claims`).

    Args:
        scenario: The validated scenario (from :func:`sim.scenario.load_scenario`).
        db: Database file path (SQLite) or URL (``postgresql://...``); created if new.
        workers: Worker processes: 1 runs in this process; more uses a process pool, or
            the number of workers of a Dask ``LocalCluster`` with ``dask="local"``.
        dask: ``None`` (local executors), ``"local"`` (start a Dask ``LocalCluster``) or
            the address of a Dask scheduler (``tcp://host:port``).
        fresh: Make new runs of every pair, even of those with a complete run (the
            report then uses the newest complete run of each pair).
        resume: Also mark ``aborted`` this scenario's ``running`` runs that no claim
            holds (left by a signsim without claims, or by ``signsim simulate``). Runs of
            dead sweep workers are marked ``aborted`` without it; pairs with a complete
            run are skipped either way.
        progress: Show a progress bar over runs (with ETA).
        arms: Only these arms (default: all).
        lease_s: Seconds a task's claim stays held without a heartbeat (how long a
            frozen or unreachable worker blocks its pair; a killed one blocks nothing).

    Returns:
        What was run, reused and aborted, with timings.

    Raises:
        ExperimentFailed: When some runs failed (a :class:`SignsimError`; completed
            runs are kept, running the sweep again runs the rest).
        SignsimError: On bad arguments, a changed scenario text under a name with
            complete runs (:func:`check_scenario_text`), or an unreachable database or
            scheduler.
        KeyboardInterrupt: On Ctrl-C, after the running runs were marked ``aborted``
            (or, if a worker could not be stopped, left ``running``) and completed runs
            kept.
    """
    if workers < 1:
        raise SignsimError(f"workers must be at least 1, not {workers}.")
    if fresh and resume:
        raise SignsimError("fresh (run every pair again) and resume (run only the missing "
                           "pairs) contradict each other; use one of them.")
    if not lease_s > 0:
        raise SignsimError(f"lease_s must be positive, not {lease_s}.")
    started = time.perf_counter()
    shown_db = db
    db = _normalize_db(db)
    tasks = experiment_tasks(scenario, db, arms, sweep=uuid.uuid4().hex, fresh=fresh,
                             lease_s=lease_s)
    store = open_store(db)  # creates the schema once, before any worker writes
    try:
        ensure_claims_table(store)
        check_scenario_text(store, scenario, shown_db)
        aborted = reap_stale_runs(store, scenario.name, unclaimed=resume)
        skipped: list[tuple[str, int]] = []
        if not fresh:
            tasks, skipped = missing_pairs(store, scenario, tasks)
    finally:
        store.dispose()

    result = ExperimentResult(scenario.name, db, "in-process", skipped=skipped,
                              aborted=aborted, fresh=fresh)
    with ExitStack() as stack:
        if not tasks:
            records: Generator[RunRecord, None, None] = run_in_process([], execute_task)
        elif dask is not None:
            client, result.executor = dask_cluster(dask, workers, stack, _DASK_CONNECT_TIMEOUT)
            records = run_dask(tasks, client, execute_task, failed_record)
        elif workers > 1:
            result.executor = f"pool[{workers}]"
            records = run_pool(tasks, workers, execute_task, failed_record)
        else:
            records = run_in_process(tasks, execute_task)
        # On Ctrl-C or an error here, closing the generator stops its executor first.
        stack.callback(records.close)
        bar = stack.enter_context(tqdm(
            total=len(tasks), unit="run", desc=scenario.name, disable=not progress,
            dynamic_ncols=True))
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
            f"{describe_url(db)}; fix the cause and run the sweep again to run only the "
            "missing pairs (resume).", result, failed,
        )
    return result
