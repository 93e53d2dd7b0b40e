"""One task of a sweep: what it carries to a worker, and what it does there.

A task makes the run of one (arm, seed) under its claim (:mod:`sim.store.claims`): it
takes the claim, or finds the complete run that makes the run unnecessary (made by an
earlier execution of the same task, e.g. on a worker that died before reporting, or by
another sweep of the same scenario text), or waits while a live process makes it. Its run
is marked ``complete`` only while the claim is still its own, so running a task twice
never leaves two complete runs of one (arm, seed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sim.config import SimConfig
from sim.errors import SignsimError, describe_exception
from sim.scenario import InterventionSpec
from sim.store.claims import DEFAULT_LEASE_S, ClaimKey, acquire
from sim.store.database import RunSuperseded, Store, open_store
from sim.sweep.executors import sigint_aborts_run, sweep_stopped

__all__ = ["RunRecord", "RunTask", "execute_task", "failed_record"]

#: How often one execution may lose its claim to another before it gives up.
_MAX_TAKES = 5


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
        sweep: Id of the sweep (a task run twice by the executor carries the same id).
        fresh: Make a new run even when a complete one exists (reuse only a run made by
            this same sweep: the task ran before, on a worker that then died).
        lease_s: Lease of the task's claim (see :mod:`sim.store.claims`).
    """

    db: str
    scenario: str
    arm: str
    seed: int
    config: SimConfig
    interventions: list[InterventionSpec] = field(default_factory=list)
    scenario_text: str = ""
    sweep: str = ""
    fresh: bool = False
    lease_s: float = DEFAULT_LEASE_S


@dataclass
class RunRecord:
    """The outcome of one task.

    Attributes:
        arm: Arm name.
        seed: Seed.
        run_id: The run's id in the database (-1 when the run could not be created).
        events: Interactions of the run.
        seconds: Wall time of the task.
        error: ``None`` on success, else ``"Type: message"``.
        reused: The run was already complete when the task ran (see the module doc), so
            the task made none.
        took_over: Id of a run a stopped worker had left ``running`` for this (arm,
            seed), marked ``aborted`` when this task took its claim over.
    """

    arm: str
    seed: int
    run_id: int = -1
    events: int = 0
    seconds: float = 0.0
    error: str | None = None
    reused: bool = False
    took_over: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the (arm, seed) has its complete run."""
        return self.error is None


def failed_record(task: RunTask, error: str) -> RunRecord:
    """The record of a task whose worker died or was interrupted."""
    return RunRecord(task.arm, task.seed, error=error)


def _run_claimed(store: Store, task: RunTask, record: RunRecord) -> None:
    """Take the claim and make the run, or reuse the complete run; fills ``record``."""
    from sim.engine.simulate import run_into_store

    key = ClaimKey.of(task.scenario, task.scenario_text, task.arm, task.seed)
    for _ in range(_MAX_TAKES):
        got = acquire(store, key, sweep=task.sweep, fresh=task.fresh, lease_s=task.lease_s)
        if got.claim is None:
            assert got.complete_run is not None
            record.run_id, record.reused = got.complete_run, True
            record.events = int(store.run(got.complete_run)["n_interactions"])
            return
        if got.aborted is not None:
            record.took_over = got.aborted
        store.guard = got.claim
        try:
            result = run_into_store(
                store, task.config, seed=task.seed, scenario=task.scenario, arm=task.arm,
                scenario_text=task.scenario_text, interventions=task.interventions,
                progress=False,
            )
        except RunSuperseded:
            continue  # another worker holds the claim now: wait for its run, or take over
        finally:
            store.guard = None
            got.claim.close()
        record.run_id, record.events = result.run_id, result.events
        return
    raise SignsimError(f"the claim on {task.arm}/seed {task.seed} went to other workers "
                       f"{_MAX_TAKES} times while this task made its run")


def execute_task(task: RunTask) -> RunRecord:
    """Run one task: open the database, make (or reuse) the run under its claim, close.

    This is the function the executors call in their worker processes. An error of the
    run is returned in the record (the run row is marked ``failed``); Ctrl-C
    (``KeyboardInterrupt``) marks the run ``aborted`` and propagates.

    Args:
        task: The run to do.

    Returns:
        The run's outcome.
    """
    if sweep_stopped():
        return RunRecord(task.arm, task.seed, error="KeyboardInterrupt: sweep interrupted")
    with sigint_aborts_run():
        record = RunRecord(task.arm, task.seed)
        started = time.perf_counter()
        store: Store | None = None
        try:
            store = open_store(task.db)
            _run_claimed(store, task, record)
        except SignsimError as exc:  # reported to the parent, run marked failed
            record.error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # one line, never the SQL text or its parameters
            record.error = describe_exception(exc)
        finally:
            record.seconds = time.perf_counter() - started
            if store is not None:
                store.dispose()
    return record
