"""Claims: each (arm, seed) of a sweep ends with exactly one complete run.

A sweep's task may run more than once: Dask runs a task again on another worker when the
worker that ran it dies, even after the run itself had completed (its result died with
the worker), and two sweeps of the same scenario may overlap. Each execution therefore
first takes the *claim* of its (scenario, scenario text, arm, seed), one row of the
``run_claims`` table, in a transaction that locks it (``SELECT ... FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite). In that transaction it decides:

1. **Done**: a complete run that this execution may reuse exists (without ``fresh``: any
   complete run of the same scenario text, arm and seed; with ``fresh``: the run made under
   this claim by the same sweep). The execution returns it and runs nothing.
2. **Busy**: another process holds the claim and is alive. The execution waits and decides
   again (the holder ends with a complete run, to reuse, or dies, to take over).
3. **Take**: the claim is free, or its holder is dead. The execution becomes the holder;
   a run the dead holder left ``running`` is marked ``aborted`` in the same transaction.

The holder then makes its run: the transaction that creates the run row also records it
on the claim, and the transaction that marks it ``complete`` first checks that the claim
is still held by this execution with this run (and releases it); otherwise the run is
marked ``aborted`` and :class:`~sim.store.database.RunSuperseded` is raised. Two
executions can never both complete a run of the same claim, whatever the timing.

A holder is alive while its lease (``lease_until``, renewed by a heartbeat thread every
quarter of the lease) runs and, faster than waiting for the lease: on PostgreSQL, while
its database session holds a session-level advisory lock taken with the claim (the
server releases it the moment the worker's connection closes, as when its process is
killed or its machine reboots; ``locked`` says the holder got the lock, else its lease
alone counts); on SQLite (one machine), while its process exists.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, insert, inspect, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from sim.errors import SignsimError
from sim.store.database import _SCHEMA_LOCK_KEY, RunSuperseded, Store
from sim.store.schema import Run, RunClaim

__all__ = [
    "DEFAULT_LEASE_S",
    "Acquired",
    "Claim",
    "ClaimKey",
    "acquire",
    "ensure_claims_table",
    "holder_id",
    "reap_stale_runs",
]

#: Seconds a claim stays held without a heartbeat: how long a run of a worker that froze,
#: or whose machine vanished without closing its connections, blocks its (arm, seed).
DEFAULT_LEASE_S = 60.0

#: Seconds between two looks at a claim held by a live process.
_POLL_S = 0.5

_ABORTED_BY_TAKEOVER = ("its worker {holder} stopped holding the claim (killed, or no "
                        "heartbeat for the lease); the (arm, seed) was taken over by {me}")


@dataclass(frozen=True)
class ClaimKey:
    """The (scenario, scenario text, arm, seed) a claim is about.

    Attributes:
        scenario: Scenario name.
        scenario_sha256: SHA-256 of the scenario text.
        arm: Arm name.
        seed: Seed.
    """

    scenario: str
    scenario_sha256: str
    arm: str
    seed: int

    @classmethod
    def of(cls, scenario: str, scenario_text: str, arm: str, seed: int) -> ClaimKey:
        """The key of a run of ``scenario_text``."""
        return cls(scenario, hashlib.sha256(scenario_text.encode()).hexdigest(), arm, int(seed))

    def where(self) -> ColumnElement[bool]:
        """The SQL condition selecting this claim's row."""
        return and_(RunClaim.scenario == self.scenario,
                    RunClaim.scenario_sha256 == self.scenario_sha256,
                    RunClaim.arm == self.arm, RunClaim.seed == self.seed)

    @property
    def lock_id(self) -> int:
        """The PostgreSQL advisory lock id of this claim (64-bit, from its SHA-256)."""
        digest = hashlib.sha256(
            f"signsim-claim\0{self.scenario}\0{self.scenario_sha256}\0{self.arm}\0{self.seed}"
            .encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


def holder_id() -> str:
    """A new holder name: ``host:pid:token`` (the token tells two tasks of a process apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def ensure_claims_table(store: Store) -> None:
    """Create ``run_claims`` in a database made by a signsim that did not have it."""
    if inspect(store.engine).has_table(RunClaim.__tablename__):
        return
    with _transaction(store) as conn:
        if _is_pg(store):  # the lock under which the schema is created
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
        RunClaim.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]


# -- transactions and liveness ---------------------------------------------------------------
def _is_pg(store: Store) -> bool:
    return store.url.startswith("postgresql")


@contextmanager
def _transaction(store: Store, conn: Connection | None = None) -> Iterator[Connection]:
    """One transaction that serialises with every other claim decision.

    SQLite: ``BEGIN IMMEDIATE`` (the database's write lock from the first statement);
    PostgreSQL: an ordinary transaction whose claim rows are read ``FOR UPDATE``.
    """
    own = conn is None
    try:
        c = store.engine.connect() if conn is None else conn
        try:
            if store.is_sqlite:
                c.exec_driver_sql("BEGIN IMMEDIATE")
            yield c
            c.commit()
        except BaseException:
            c.rollback()
            raise
        finally:
            if own:
                c.close()
    except IntegrityError:
        raise
    except DBAPIError as exc:
        raise store.write_error(exc) from None


def _now(store: Store, conn: Connection) -> float:
    """Unix seconds: the database server's clock on PostgreSQL (shared by every machine)."""
    if _is_pg(store):
        return float(conn.execute(text("SELECT extract(epoch from clock_timestamp())")).scalar_one())
    return time.time()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _try_lock(conn: Connection, key: ClaimKey) -> bool:
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key.lock_id}).scalar())


def _unlock(conn: Connection, key: ClaimKey) -> None:
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key.lock_id})


def _holder_alive(store: Store, conn: Connection, key: ClaimKey, row: Any,
                  now: float) -> tuple[bool, bool]:
    """Whether a claim's holder is alive, and whether this check took the advisory lock.

    On PostgreSQL, for a holder that took the claim's advisory lock (``row.locked``), a
    successful ``pg_try_advisory_lock`` proves that its session is gone; the lock is then
    held by ``conn``. A holder that could not take the lock (a frozen predecessor's
    session still held it) is judged by its lease alone.
    """
    holder = str(row.holder or "")
    if not holder or row.lease_until <= now:
        return False, False
    if _is_pg(store):
        if not row.locked:
            return True, False
        got = _try_lock(conn, key)
        return not got, got
    host, pid, _token = (holder.rsplit(":", 2) + ["", ""])[:3]
    if host == socket.gethostname() and pid.isdigit() and not _process_exists(int(pid)):
        return False, False
    return True, False


# -- the claim a task holds ---------------------------------------------------------------------
class Claim:
    """A claim held by this process; the :class:`~sim.store.database.RunGuard` of its run.

    Set it as ``store.guard`` while the run is made, and :meth:`close` it afterwards.

    Args:
        store: The database.
        key: What is claimed.
        holder: This holder's name (from :func:`holder_id`).
        lease_s: Lease renewed by the heartbeat.
        conn: On PostgreSQL, the connection holding the advisory lock (kept open until
            :meth:`close`); None on SQLite.
        locked: Whether ``conn`` holds the advisory lock.
    """

    def __init__(self, store: Store, key: ClaimKey, holder: str, lease_s: float,
                 conn: Connection | None = None, locked: bool = False) -> None:
        self.store, self.key, self.holder, self.lease_s = store, key, holder, lease_s
        self._conn, self._locked = conn, locked
        self.released = False
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="signsim-claim-heartbeat",
                                      daemon=True)
        self._beat.start()

    def _mine(self) -> ColumnElement[bool]:
        return and_(self.key.where(), RunClaim.holder == self.holder)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                with _transaction(self.store, self._conn) as conn:
                    renewed = conn.execute(update(RunClaim).where(self._mine()).values(
                        lease_until=_now(self.store, conn) + self.lease_s)).rowcount
            except SignsimError:  # the database is unreachable for now: try again
                continue
            if renewed == 0:  # taken over: the run will not be allowed to complete
                return

    def started(self, conn: Connection, run_id: int) -> None:
        """Record the new run on the claim (in the run's creating transaction).

        Raises:
            RunSuperseded: When the claim went to another worker meanwhile.
        """
        if conn.execute(update(RunClaim).where(self._mine()).values(run_id=run_id)).rowcount == 0:
            raise RunSuperseded(f"the claim on {self.key.arm}/seed {self.key.seed} went to "
                                "another worker before the run started")

    def finishing(self, conn: Connection, run_id: int, status: str) -> str | None:
        """Release the claim as the run finishes; refuse ``complete`` when it is not held."""
        held = conn.execute(update(RunClaim).where(self._mine(), RunClaim.run_id == run_id)
                            .values(holder="", lease_until=0.0, locked=False)).rowcount
        self.released = held > 0
        if held or status != "complete":
            return None
        return ("not complete: its claim on the (arm, seed) went to another worker (the "
                "run's heartbeat stopped for longer than the lease)")

    def close(self) -> None:
        """Stop the heartbeat, release the claim if still held, drop the advisory lock.

        Never raises: when the database cannot be reached, the claim ends with its lease
        (and its lock with the connection).
        """
        self._stop.set()
        self._beat.join()
        try:
            if not self.released:
                with _transaction(self.store, self._conn) as conn:
                    conn.execute(update(RunClaim).where(self._mine())
                                 .values(holder="", lease_until=0.0, locked=False))
                self.released = True
            if self._conn is not None and self._locked:
                _unlock(self._conn, self.key)
                self._conn.commit()
        except (SignsimError, DBAPIError):
            pass
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


@dataclass
class Acquired:
    """The outcome of :func:`acquire`: a complete run to reuse, or a claim to make the run.

    Attributes:
        claim: The claim now held (None when ``complete_run`` is set).
        complete_run: Id of a complete run this execution reuses.
        aborted: Id of a run left ``running`` by a dead holder, marked ``aborted``.
    """

    claim: Claim | None = None
    complete_run: int | None = None
    aborted: int | None = None


def _complete_run(conn: Connection, key: ClaimKey, row: Any, sweep: str,
                  fresh: bool) -> int | None:
    if fresh:
        if row is None or row.sweep != sweep or row.run_id is None:
            return None
        status = conn.execute(select(Run.status).where(Run.id == row.run_id)).scalar()
        return int(row.run_id) if status == "complete" else None
    newest = conn.execute(select(Run.id).where(
        Run.scenario == key.scenario, Run.scenario_sha256 == key.scenario_sha256,
        Run.arm == key.arm, Run.seed == key.seed, Run.status == "complete",
    ).order_by(Run.id.desc()).limit(1)).scalar()
    return None if newest is None else int(newest)


def _insert_free(store: Store, conn: Connection, key: ClaimKey) -> None:
    values = {"scenario": key.scenario, "scenario_sha256": key.scenario_sha256, "arm": key.arm,
              "seed": key.seed, "sweep": "", "holder": "", "run_id": None, "lease_until": 0.0,
              "locked": False, "taken": 0}
    if _is_pg(store):
        conn.execute(pg_insert(RunClaim).values(values).on_conflict_do_nothing())
    elif store.is_sqlite:
        conn.execute(sqlite_insert(RunClaim).values(values).on_conflict_do_nothing())
    elif conn.execute(select(RunClaim.seed).where(key.where())).first() is None:
        conn.execute(insert(RunClaim).values(values))  # a race raises IntegrityError: retried


def _abort_run(conn: Connection, run_id: int, reason: str) -> bool:
    from datetime import UTC, datetime

    return conn.execute(update(Run).where(Run.id == run_id, Run.status == "running").values(
        status="aborted", error=reason, finished_at=datetime.now(UTC).replace(tzinfo=None),
    )).rowcount > 0


def _attempt(store: Store, conn: Connection, key: ClaimKey, me: str, sweep: str, fresh: bool,
             lease_s: float) -> tuple[str, int | None, bool]:
    """One locked decision: ("done", run), ("busy", None) or ("take", aborted run)."""
    _insert_free(store, conn, key)
    row = conn.execute(select(RunClaim.__table__).where(key.where()).with_for_update()).first()
    done = _complete_run(conn, key, row, sweep, fresh)
    if done is not None:
        return "done", done, False
    assert row is not None
    now = _now(store, conn)
    alive, locked = _holder_alive(store, conn, key, row, now)
    if alive:
        return "busy", None, False
    if _is_pg(store) and not locked:
        # Fails while a predecessor's session still holds it (it is about to let go, or
        # it froze): go on without, and say so in the row.
        locked = _try_lock(conn, key)
    aborted = None
    if row.run_id is not None and _abort_run(
            conn, row.run_id, _ABORTED_BY_TAKEOVER.format(holder=row.holder or "?", me=me)):
        aborted = int(row.run_id)
    conn.execute(update(RunClaim).where(key.where()).values(
        holder=me, sweep=sweep, run_id=None, lease_until=now + lease_s, locked=locked,
        taken=row.taken + 1))
    return "take", aborted, locked


def acquire(store: Store, key: ClaimKey, *, sweep: str, fresh: bool = False,
            lease_s: float = DEFAULT_LEASE_S, poll_s: float = _POLL_S) -> Acquired:
    """Take the claim of ``key``, or find the complete run that makes it unnecessary.

    Waits while another live process holds the claim.

    Args:
        store: The database (a writable store).
        key: What to claim.
        sweep: Id of the sweep the task belongs to.
        fresh: Reuse only a run made under this claim by this very sweep (a task run
            again), not any earlier complete run.
        lease_s: Lease of the claim, renewed every ``lease_s / 4`` seconds while held.
        poll_s: Seconds between two looks at a claim held by a live process.

    Returns:
        The held claim (with the run it took over, if any) or the complete run.
    """
    me = holder_id()
    while True:
        conn = store.engine.connect() if _is_pg(store) else None
        keep = False
        try:
            try:
                with _transaction(store, conn) as c:
                    what, run, locked = _attempt(store, c, key, me, sweep, fresh, lease_s)
            except IntegrityError:  # two processes inserted the free claim row at once
                what, run, locked = "busy", None, False
            if what == "done":
                assert run is not None
                return Acquired(complete_run=run)
            if what == "take":
                keep = True
                return Acquired(claim=Claim(store, key, me, lease_s, conn, locked), aborted=run)
        finally:
            if conn is not None and not keep:
                conn.close()
        time.sleep(poll_s)


def reap_stale_runs(store: Store, scenario: str, *, unclaimed: bool = False) -> list[int]:
    """Mark ``aborted`` the scenario's runs left ``running`` by dead processes.

    A run made under a claim whose holder is dead (or which was released without
    finishing it) is stale; live holders' runs are left alone, so this is safe while other
    sweeps of the scenario go on. With ``unclaimed``, runs that no claim holds (made by a
    signsim without claims, or by ``signsim simulate``) are marked too.

    Returns:
        The ids marked ``aborted``, ascending.
    """
    rows = store.frame(
        "SELECT c.scenario_sha256 AS sha, c.arm AS arm, c.seed AS seed FROM run_claims c "
        "JOIN runs r ON r.id = c.run_id WHERE c.scenario = :s AND r.status = 'running'",
        {"s": scenario})
    aborted: list[int] = []
    for sha, arm, seed in zip(rows["sha"], rows["arm"], rows["seed"], strict=True):
        key = ClaimKey(scenario, str(sha), str(arm), int(seed))
        with store.engine.connect() as conn, _transaction(store, conn) as c:
            row = c.execute(select(RunClaim.__table__).where(key.where())
                            .with_for_update()).one()
            alive, locked = _holder_alive(store, c, key, row, _now(store, c))
            if locked:
                _unlock(c, key)
            if not alive and row.run_id is not None and _abort_run(
                    c, row.run_id, "left running by a worker that stopped (killed or lost); "
                    "marked aborted by the next sweep of its scenario"):
                aborted.append(int(row.run_id))
                c.execute(update(RunClaim).where(key.where())
                          .values(holder="", lease_until=0.0, locked=False))
    if unclaimed:
        with _transaction(store) as c:
            held = select(RunClaim.run_id).where(RunClaim.run_id.is_not(None),
                                                 RunClaim.holder != "")
            ids = [int(i) for i in c.execute(select(Run.id).where(
                Run.scenario == scenario, Run.status == "running",
                Run.id.not_in(held))).scalars()]
            for run_id in ids:
                _abort_run(c, run_id, "left running by an interrupted sweep; marked aborted "
                           "on resume")
            aborted += ids
    return sorted(aborted)
