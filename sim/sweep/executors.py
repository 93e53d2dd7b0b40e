"""Executors of a sweep: in-process, a process pool, or Dask; Ctrl-C handling.

Each executor takes a list of tasks and a task function and yields one record per task,
in completion order. The executors know nothing about what a task is: the caller passes
``execute`` (run one task, return its record; must be a picklable module-level function
for the pool and Dask executors) and ``failed`` (the record of a task whose worker died or
was interrupted, given an ``"Type: message"`` error). :mod:`sim.sweep.experiment` passes
:func:`sim.sweep.tasks.execute_task`, so this module does not import it.

* :func:`run_in_process`: one task after another, in this process.
* :func:`run_pool`: a :class:`concurrent.futures.ProcessPoolExecutor` (``forkserver``
  start method where available, else ``spawn``; the fork server preloads the simulator).
* :func:`dask_cluster` and :func:`run_dask`: a Dask ``LocalCluster`` of single-threaded
  worker processes, or an existing Dask scheduler.

Interruptions: idle pool workers and local Dask workers ignore SIGINT, so on Ctrl-C this
process stops the executor (closing the generator cancels pending tasks, gives running
pool tasks a grace period, then terminates them). Inside a pool worker, a task function
wraps its run in :func:`sigint_aborts_run` (Ctrl-C then aborts the run cleanly) and
checks :func:`sweep_stopped` first (tasks picked up after the sweep stopped are skipped).
"""

from __future__ import annotations

import _thread
import multiprocessing as mp
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, TypeVar

from sim.errors import SignsimError

__all__ = [
    "DASK_CONNECT_TIMEOUT",
    "DASK_WORKER_ENV",
    "dask_cluster",
    "exit_with_parent",
    "run_dask",
    "run_in_process",
    "run_pool",
    "sigint_aborts_run",
    "sweep_stopped",
]

TaskT = TypeVar("TaskT")
RecordT = TypeVar("RecordT")

#: How long to wait for a Dask scheduler to answer (default of :func:`dask_cluster`).
DASK_CONNECT_TIMEOUT = "10s"

#: Dask settings of the workers of ``dask="local"``: no statistical profiler or GIL
#: monitor sampling the simulation thread (they cost CPU time of a CPU-bound run).
_LOCAL_DASK_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    # The event-loop watchdog ticks every 20 ms by default; in a worker that is 50 GIL
    # hand-overs a second away from the simulation thread (about 8% per run measured by
    # benchmarks/bench_sweep.py on 2 cores). Its only use is warning about a blocked loop.
    "distributed.admin.tick.interval": "500ms",
}

#: The same settings as environment variables, for ``dask worker`` processes a user starts
#: (docs/scale.md): ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False`` and so on.
DASK_WORKER_ENV: dict[str, str] = {
    "DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(value)
    for key, value in _LOCAL_DASK_CONFIG.items()
}

#: Seconds a pool worker may take to finish its run after Ctrl-C before it is terminated.
_STOP_GRACE_S = 10.0

#: Exit status of a pool worker that ended because the sweep's process died.
_PARENT_DIED = 70

#: Signal by which a pool worker's watch thread interrupts a run when the sweep's process
#: died. Not SIGINT: a sweep started as a background job ignores SIGINT, and so do its
#: workers, and Python delivers no simulated signal that is ignored.
_PARENT_SIGNAL = signal.SIGUSR1

#: Modules the fork server imports once, so that workers start with them loaded (and,
#: through ``sim.engine.warmup``, with the compiled loops ready).
_PRELOAD = ["sim.sweep.experiment", "sim.engine.simulate", "sim.engine.warmup"]


# -- the worker side -----------------------------------------------------------------------
_IN_POOL_WORKER = False
_STOP: Any = None  # a multiprocessing Event in pool workers: set when the sweep stops
_PARENT_GONE = threading.Event()  # set in a pool worker whose sweep process died
_RUN_GOING = False  # a run is going in this process's main thread


def _init_pool_worker(parent_ignores_sigint: bool, stop: Any, parent: int = 0) -> None:
    """Pool worker initializer: an idle worker ignores Ctrl-C (the parent handles it).

    Args:
        parent_ignores_sigint: The parent ignores SIGINT (a background job); the worker
            then ignores it during runs too.
        stop: Event set by the parent when the sweep is interrupted; queued tasks that
            a worker picks up afterwards are skipped.
        parent: Process id of the sweep's process; the worker exits when it dies
            (:func:`exit_with_parent`). 0: no watch.
    """
    global _IN_POOL_WORKER, _STOP
    _IN_POOL_WORKER = not parent_ignores_sigint
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent:
        exit_with_parent(parent)


def exit_with_parent(parent: int, grace_s: float = _STOP_GRACE_S) -> threading.Thread | None:
    """Make this process exit when process ``parent`` dies (even by ``kill -9``).

    A daemon thread waits on a pidfd of the parent (Linux), else polls it once a
    second. When the parent is gone it interrupts the main thread with ``SIGUSR1`` (a
    run going under :func:`sigint_aborts_run` then raises ``KeyboardInterrupt`` and is
    marked ``aborted``, even where SIGINT is ignored), waits ``grace_s`` seconds and
    ends the process. Committed rows are kept: every batch is its own transaction. Call
    it from the main thread (it installs the ``SIGUSR1`` handler).

    Args:
        parent: The process to watch (must be alive now).
        grace_s: Seconds the interrupted run gets before the process ends.

    Returns:
        The watching thread, or None when ``parent`` is already gone (the process
        then exits at once).
    """
    try:
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:
        os._exit(_PARENT_DIED)
    except (AttributeError, OSError):
        pidfd = -1
    signal.signal(_PARENT_SIGNAL, _abort_run_of_dead_parent)

    def watch() -> None:
        if pidfd >= 0:
            select.select([pidfd], [], [])
        else:
            while _alive(parent):
                time.sleep(1.0)
        _PARENT_GONE.set()  # queued tasks are skipped from now on
        _thread.interrupt_main(_PARENT_SIGNAL)
        time.sleep(grace_s)
        os._exit(_PARENT_DIED)

    thread = threading.Thread(target=watch, name="signsim-parent-watch", daemon=True)
    thread.start()
    return thread


def _abort_run_of_dead_parent(signum: int, frame: Any) -> None:
    """In the main thread, once the sweep's process died: end a going run as Ctrl-C would."""
    if _RUN_GOING:
        raise KeyboardInterrupt("the sweep's process died")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stopped() -> bool:
    """Whether this pool worker's sweep was interrupted or its process died (skip tasks)."""
    return _PARENT_GONE.is_set() or (_STOP is not None and bool(_STOP.is_set()))


@contextmanager
def sigint_aborts_run() -> Generator[None, None, None]:
    """In a pool worker, let Ctrl-C raise ``KeyboardInterrupt`` while a run is going.

    Elsewhere (in-process, Dask workers, a pool whose parent ignores SIGINT, a thread
    other than the main one) the SIGINT handler is left as it is. In the main thread the
    run also counts as going for :func:`exit_with_parent`, whose interrupt, when the
    sweep's process dies, raises ``KeyboardInterrupt`` only in a going run, whatever the
    SIGINT handler.
    """
    global _RUN_GOING
    restore: Any = None
    main = threading.current_thread() is threading.main_thread()
    if _IN_POOL_WORKER and main:
        # While a run is going, Ctrl-C aborts it cleanly (its row becomes ``aborted``).
        restore = signal.signal(signal.SIGINT, signal.default_int_handler)
    going, _RUN_GOING = _RUN_GOING, _RUN_GOING or main  # the death of the sweep's process too
    try:
        yield
    finally:
        _RUN_GOING = going
        if restore is not None:
            signal.signal(signal.SIGINT, restore)


# -- in process ----------------------------------------------------------------------------
def run_in_process(tasks: list[TaskT], execute: Callable[[TaskT], RecordT]
                   ) -> Generator[RecordT, None, None]:
    """Run the tasks one after another in this process.

    Args:
        tasks: The tasks, in order.
        execute: Runs one task and returns its record.

    Yields:
        One record per task, in task order.
    """
    for task in tasks:
        yield execute(task)


# -- process pool --------------------------------------------------------------------------
def _has_forkserver() -> bool:
    return "forkserver" in mp.get_all_start_methods()


def _start_forkserver(extra: Iterable[str] = ()) -> None:
    """Start this process's fork server with the simulator (and ``extra``) imported.

    Pool workers and Dask ``LocalCluster`` workers then fork from it instead of importing
    everything again. A fork server that is already running is kept as it is.
    """
    from multiprocessing import forkserver

    mp.get_context("forkserver").set_forkserver_preload([*extra, *_PRELOAD])
    forkserver.ensure_running()


def _pool_context() -> mp.context.BaseContext:
    if _has_forkserver():
        _start_forkserver()
        return mp.get_context("forkserver")
    return mp.get_context("spawn")


def _stop_pool(pool: ProcessPoolExecutor, stop: Any) -> None:
    """Cancel pending tasks, give running ones a grace period, then terminate them."""
    stop.set()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + _STOP_GRACE_S
    for proc in processes:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.terminate()


def run_pool(tasks: list[TaskT], workers: int, execute: Callable[[TaskT], RecordT],
             failed: Callable[[TaskT, str], RecordT]) -> Generator[RecordT, None, None]:
    """Run the tasks on a process pool of at most ``workers`` processes.

    Closing the generator early (Ctrl-C, an error of the consumer) stops the pool: pending
    tasks are cancelled, running ones get a grace period and are then terminated.

    Args:
        tasks: The tasks (at least one).
        workers: Worker processes (capped at the number of tasks).
        execute: Runs one task in a worker; a picklable module-level function.
        failed: The record of a task whose worker died or was interrupted.

    Yields:
        One record per task, in completion order.
    """
    ctx = _pool_context()
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    stop = ctx.Event()
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                               initializer=_init_pool_worker, initargs=(ignored, stop, os.getpid()))
    futures: dict[Future[RecordT], TaskT] = {pool.submit(execute, t): t for t in tasks}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task = futures[fut]
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    yield failed(task, "BrokenProcessPool: a worker process died (killed "
                                 "or out of memory)")
                except KeyboardInterrupt:
                    yield failed(task, "KeyboardInterrupt: aborted")
    except BaseException:
        _stop_pool(pool, stop)
        raise
    pool.shutdown(wait=True)


# -- Dask ----------------------------------------------------------------------------------
def dask_cluster(dask: str, workers: int, stack: ExitStack,
                 connect_timeout: str = DASK_CONNECT_TIMEOUT) -> tuple[Any, str]:
    """Start a local Dask cluster or connect to a scheduler; closed when ``stack`` closes.

    Args:
        dask: ``"local"`` (start a ``LocalCluster`` of ``workers`` single-threaded worker
            processes that ignore SIGINT) or a scheduler address (``tcp://host:port``).
        workers: Worker processes of a local cluster.
        stack: Receives the cluster and client, to close them.
        connect_timeout: How long to wait for a scheduler to answer.

    Returns:
        The Dask client and the executor's description (``dask-local[n]`` or
        ``dask <address>``).

    Raises:
        SignsimError: When Dask is not installed or the scheduler cannot be reached.
    """
    try:
        from dask import config as dask_config
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask is a dependency
        raise SignsimError(f"Dask distributed is not installed ({exc}).") from None
    if dask == "local":
        import logging

        # Workers ignore SIGINT (inherited when spawned, set by ``_ignore_sigint`` when
        # forked): on Ctrl-C this process cancels the tasks and closes the cluster
        # instead of every worker printing a traceback.
        settings = dict(_LOCAL_DASK_CONFIG)
        if _has_forkserver():
            _start_forkserver(["distributed"])
            settings["distributed.worker.multiprocessing-method"] = "forkserver"
        with _sigint_ignored(), dask_config.set(settings):
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR,
            ))
        client = stack.enter_context(Client(cluster))
        client.run(_ignore_sigint)
        return client, f"dask-local[{workers}]"
    try:
        client = Client(dask, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise SignsimError(
            f"Cannot connect to the Dask scheduler at '{dask}': {exc}. Check that the "
            "scheduler is running and the address (tcp://host:port)."
        ) from None
    stack.enter_context(_closing(client))
    return client, f"dask {dask}"


def _ignore_sigint() -> None:
    """Run on each worker of a local Dask cluster: Ctrl-C is handled by the client."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _sigint_ignored() -> Generator[None, None, None]:
    """Ignore SIGINT in this process (and the processes it starts) for a while."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _closing(AbstractContextManager[Any]):
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __exit__(self, *exc: object) -> None:
        self.obj.close()


def run_dask(tasks: list[TaskT], client: Any, execute: Callable[[TaskT], RecordT],
             failed: Callable[[TaskT, str], RecordT]) -> Generator[RecordT, None, None]:
    """Run the tasks on a Dask cluster.

    Closing the generator early (Ctrl-C, an error of the consumer) cancels the tasks. A
    task whose worker dies is run again by Dask on another worker, even when it had
    finished (its result died with the worker): ``execute`` must make that harmless
    (:func:`sim.sweep.tasks.execute_task` reuses the run of the first execution).

    Args:
        tasks: The tasks.
        client: The Dask client (from :func:`dask_cluster`).
        execute: Runs one task on a worker; a picklable module-level function.
        failed: The record of a task whose Dask future failed (e.g. a worker killed too
            often).

    Yields:
        One record per task, in completion order.
    """
    from distributed import as_completed

    futures = [client.submit(execute, t, pure=False) for t in tasks]
    owner = {f.key: t for f, t in zip(futures, tasks, strict=True)}
    pending = {f.key: f for f in futures}
    try:
        for fut in as_completed(futures):
            task = owner[fut.key]
            try:
                record = fut.result()
            except Exception as exc:  # e.g. a worker killed too often
                record = failed(task, f"{type(exc).__name__}: {exc}")
            # Once fetched, forget the result: a worker dying later must not make the
            # scheduler compute it again for this client.
            pending.pop(fut.key, None)
            fut.release()
            yield record
    except BaseException:
        client.cancel(list(pending.values()))
        raise
