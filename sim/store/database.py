"""Storage: open a signsim database (SQLite file or PostgreSQL URL), write and read runs.

Writes are batched and transactional: a run row is committed as ``running`` first, every
batch of events is one transaction that also bumps the run's counters, and the run is
marked ``complete`` only at the end. A killed process therefore leaves a consistent
database whose run is not ``complete``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, DBAPIError, OperationalError

from sim.errors import SignsimError, describe_exception
from sim.store import refs
from sim.store.connect import (
    apply_sqlite_pragmas,
    describe_url,
    insert_sql,
    resolve_url,
    sqlite_read_only,
)
from sim.store.schema import SCHEMA_VERSION, AgentRow, Base, Meta, Run

__all__ = [
    "AGENT_COLUMNS",
    "INTERACTION_COLUMNS",
    "RunGuard",
    "RunSuperseded",
    "Store",
    "code_version",
    "open_store",
]

_SQLITE_MAX_VARS = 32_000

AGENT_COLUMNS = ("run_id", "agent_id", "kind", "group", "initial_opinion", "activity_rate")

INTERACTION_COLUMNS = (
    "run_id", "seq", "t", "src", "dst", "sign", "weight", "delivered", "cause", "blocked_by",
)


def code_version() -> str:
    """Return the installed signsim version (``0+unknown`` when not installed)."""
    try:
        return metadata.version("signsim")
    except metadata.PackageNotFoundError:
        return "0+unknown"


#: Seconds to retry switching a new SQLite file to WAL while another process holds it.
_WAL_WAIT_S = 60.0

#: Key of the PostgreSQL advisory lock held while the schema is created ("signsim").
_SCHEMA_LOCK_KEY = 0x7369676E73696D


class RunSuperseded(SignsimError):
    """A run may not be created or marked complete: another worker took over its (arm, seed)."""


class RunGuard(Protocol):
    """Checks made inside a run's own transactions (a sweep's claim, :mod:`sim.store.claims`)."""

    def started(self, conn: Connection, run_id: int) -> None:
        """In the transaction creating run ``run_id``: raise ``RunSuperseded`` to refuse it."""

    def finishing(self, conn: Connection, run_id: int, status: str) -> str | None:
        """In the transaction finishing it: why it must be ``aborted``, not ``complete``."""


class Store:
    """A connection to one signsim database.

    Args:
        db: A file path (SQLite) or a SQLAlchemy URL (``postgresql://...``).
        create: Create the schema when the database is new. When False, a missing
            database is an error.
        read_only: Open the database so that no statement can write to it.

    Attributes:
        guard: Checks made when a run is created and finished (set by a sweep's task for
            the run it makes under a claim); None: no checks.
    """

    def __init__(self, db: str, *, create: bool = True, read_only: bool = False) -> None:
        self.url = resolve_url(db)
        self.read_only = read_only
        self.guard: RunGuard | None = None
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine = self._make_engine(db, create=create)
        self._check_or_create(create and not read_only)

    # -- opening ---------------------------------------------------------------------
    def _make_engine(self, db: str, *, create: bool) -> Engine:
        if self.is_sqlite:
            path = make_url(self.url).database or ""
            if path and path != ":memory:":
                p = Path(path)
                if not p.exists() and (self.read_only or not create):
                    raise SignsimError(f"No signsim database at '{path}': the file does not exist.")
                if p.is_dir():
                    raise SignsimError(f"'{path}' is a directory, not a signsim database file.")
            if self.read_only:
                resolved = Path(path).resolve()
                return create_engine("sqlite://", creator=lambda: sqlite_read_only(resolved))
            engine = create_engine(self.url, connect_args={"timeout": 60})
            event.listen(engine, "connect", apply_sqlite_pragmas)
            return engine
        try:
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if self.read_only and self.url.startswith("postgresql"):
                kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
            return create_engine(self.url, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise SignsimError(f"'{db}' is not a usable database URL: {exc}") from None

    def _check_or_create(self, create: bool) -> None:
        where = describe_url(self.url)
        try:
            with self.engine.connect() as conn:
                tables = set(inspect(conn).get_table_names())
                if "signsim_meta" in tables:
                    version = conn.execute(
                        select(Meta.value).where(Meta.key == "schema_version")
                    ).scalar_one_or_none()
                    if version != SCHEMA_VERSION:
                        raise SignsimError(
                            f"Database {where} has signsim schema version {version!r}; this "
                            f"signsim reads version {SCHEMA_VERSION!r}."
                        )
                    self._use_wal(conn)
                    return
                if tables:
                    raise SignsimError(
                        f"Database {where} is not a signsim database: it has tables "
                        f"({', '.join(sorted(tables)[:5])}) but no signsim_meta table. "
                        "Nothing was changed; point --db at a new file or a signsim database."
                    )
            if not create:
                raise SignsimError(f"Database {where} is empty: it holds no signsim data yet.")
            self._create_schema()
        except OperationalError as exc:
            msg = str(exc.orig) if exc.orig is not None else str(exc)
            if self.is_sqlite:
                raise SignsimError(f"Cannot open SQLite database {where}: {msg}") from None
            raise SignsimError(
                f"Cannot connect to database {where}: {msg.strip().splitlines()[0]}. "
                "Check that the server is running and the URL (host, port, user, database)."
            ) from None
        except DatabaseError as exc:
            msg = str(exc.orig) if exc.orig is not None else str(exc)
            raise SignsimError(
                f"{where} is not a readable signsim database ({msg}). It may be corrupt "
                "or another kind of file; it was not modified."
            ) from None

    def _create_schema(self) -> None:
        """Create the tables and meta rows in one transaction that holds a lock.

        Two processes may open the same new database at once: the schema is created
        under SQLite's write lock (``BEGIN IMMEDIATE``) or a PostgreSQL transaction-level
        advisory lock, and only by the first; the second then finds it complete.
        """
        with self.engine.connect() as conn:
            self._use_wal(conn)
            if self.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif self.url.startswith("postgresql"):
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
            if not inspect(conn).has_table(Meta.__tablename__):
                Base.metadata.create_all(conn)
                conn.execute(insert(Meta), [{"key": "schema_version", "value": SCHEMA_VERSION},
                                            {"key": "app", "value": "signsim"}])
            conn.commit()

    def _use_wal(self, conn: Connection) -> None:
        """Switch a signsim SQLite file to WAL (persistent; only on our own files).

        Changing the journal mode needs the file to itself and SQLite does not wait for
        it (no busy handler), so while another process opens the same new file this
        retries for up to the busy timeout.
        """
        if not self.is_sqlite or self.read_only:
            return
        deadline = time.monotonic() + _WAL_WAIT_S
        while True:
            try:
                if conn.exec_driver_sql("PRAGMA journal_mode").scalar() != "wal":
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                return
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                    raise
                conn.rollback()
                time.sleep(0.02)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """Open one transaction (committed on success, rolled back on error).

        Raises:
            SignsimError: When the database refuses the transaction (read-only file,
                missing rights, full disk): one line from the driver, without the SQL.
        """
        try:
            with self.engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise self.write_error(exc) from None

    def write_error(self, exc: BaseException) -> SignsimError:
        """The one-paragraph error of a write the database refused."""
        return SignsimError(
            f"Cannot write to database {describe_url(self.url)}: {describe_exception(exc)}. "
            "Check that the file or server accepts writes from this user (file "
            "permissions, a read-only mount, the role's rights on tables and sequences) "
            "and that the disk has room; everything committed before is kept."
        )

    # -- runs ------------------------------------------------------------------------
    def create_run(
        self,
        *,
        scenario: str,
        arm: str = "baseline",
        seed: int = 0,
        kind: str = "simulated",
        scenario_text: str = "",
        horizon: float = 0.0,
    ) -> int:
        """Insert a run row with status ``running`` and return its id.

        Raises:
            RunSuperseded: When :attr:`guard` refuses the run (nothing is inserted).
        """
        row = {
            "scenario": scenario,
            "arm": arm,
            "seed": int(seed),
            "kind": kind,
            "status": "running",
            "scenario_text": scenario_text,
            "scenario_sha256": hashlib.sha256(scenario_text.encode()).hexdigest(),
            "code_version": code_version(),
            "started_at": datetime.now(UTC).replace(tzinfo=None),
            "horizon": float(horizon),
            "n_agents": 0,
            "n_interactions": 0,
        }
        with self.begin() as conn:
            run_id = int(conn.execute(insert(Run).returning(Run.id), row).scalar_one())
            if self.guard is not None:
                self.guard.started(conn, run_id)
            return run_id

    def finish_run(self, run_id: int, status: str = "complete", error: str | None = None) -> None:
        """Mark a run finished (``complete``, ``failed`` or ``aborted``).

        Raises:
            RunSuperseded: When :attr:`guard` says the run may not be complete; it is
                marked ``aborted`` with the reason instead.
        """
        lost: str | None = None
        with self.begin() as conn:
            if self.guard is not None:
                lost = self.guard.finishing(conn, run_id, status)
                if lost is not None:
                    status, error = "aborted", lost
            conn.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(
                    status=status,
                    error=error,
                    finished_at=datetime.now(UTC).replace(tzinfo=None),
                )
            )
        if lost is not None:
            raise RunSuperseded(lost)

    def write_agents(self, run_id: int, agent_id: Sequence[int], kind: Sequence[str],
                     group: Sequence[int], initial_opinion: Sequence[float],
                     activity_rate: Sequence[float]) -> None:
        """Write a run's agents, given column by column, in one transaction with their count."""
        n = len(agent_id)
        table = np.empty((n, len(AGENT_COLUMNS)), dtype=object)
        table[:, 0] = run_id
        for j, column in enumerate((agent_id, kind, group, initial_opinion, activity_rate), 1):
            table[:, j] = column
        with self.begin() as conn:
            self.insert_flat(conn, AgentRow.__tablename__, AGENT_COLUMNS, table.ravel().tolist())
            conn.execute(update(Run).where(Run.id == run_id).values(n_agents=n))

    def bulk_insert(self, conn: Connection, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert dict rows with SQLAlchemy Core ``insert`` in the open transaction."""
        if rows:
            conn.execute(insert(Base.metadata.tables[table]), list(rows))

    def insert_flat(self, conn: Connection, table: str, columns: Sequence[str],
                    flat: list[Any]) -> None:
        """Insert rows given as one flat list of values (row after row).

        SQLite gets multi-row ``VALUES`` statements (about 2.4x faster than
        ``executemany`` there); PostgreSQL gets ``COPY``. Events written to a SQLite
        file take the native path of :mod:`sim.store.writer` instead, where it is available.
        """
        width = len(columns)
        n = len(flat) // width
        if n == 0:
            return
        cols = ", ".join(f'"{c}"' for c in columns)
        if self.is_sqlite:
            per = max(1, _SQLITE_MAX_VARS // width)
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            full = insert_sql(table, columns, per)
            for start in range(0, n, per):
                m = min(per, n - start)
                sql = full if m == per else insert_sql(table, columns, m)
                cursor.execute(sql, flat[start * width:(start + m) * width])
            cursor.close()
        elif self.url.startswith("postgresql"):
            raw = conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
                f"COPY {table} ({cols}) FROM STDIN"
            ) as copy:
                for start in range(0, n * width, width):
                    copy.write_row(flat[start:start + width])
        else:
            rows = [tuple(flat[i:i + width]) for i in range(0, n * width, width)]
            conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES "
                              + "(" + ",".join(f":c{j}" for j in range(width)) + ")"),
                         [{f"c{j}": v for j, v in enumerate(r)} for r in rows])

    def write_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert dict rows into ``table`` in one transaction."""
        with self.begin() as conn:
            self.bulk_insert(conn, table, rows)

    # -- reading ---------------------------------------------------------------------
    def frame(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a SELECT and return a DataFrame.

        Raises:
            SignsimError: When the database refuses the read (one line, without SQL).
        """
        try:
            with self.engine.connect() as conn:
                result = conn.execute(text(sql), params or {})
                return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        except DBAPIError as exc:
            raise SignsimError(f"Cannot read database {describe_url(self.url)}: "
                               f"{describe_exception(exc)}.") from None

    def runs(self) -> pd.DataFrame:
        """All runs, newest last."""
        return self.frame(
            "SELECT id, scenario, arm, seed, kind, status, n_agents, n_interactions, horizon, "
            "started_at, finished_at FROM runs ORDER BY id"
        )

    def run(self, run_id: int) -> dict[str, Any]:
        """One run row as a dict; a clear error when it does not exist."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(Run.__table__).where(Run.__table__.c.id == run_id)
            ).mappings().first()
        if row is None:
            raise SignsimError(f"No run with id {run_id} in {describe_url(self.url)}.")
        return dict(row)

    def resolve_run(self, ref: str | int) -> int:
        """Run id of ``ref``: an id, ``latest`` / ``-1`` / ``-2`` ..., or a scenario name.

        See :func:`sim.store.refs.resolve_run`; a clear error when nothing matches.
        """
        return refs.resolve_run(self, ref)

    def resolve_model(self, ref: str | int) -> int:
        """Model id of ``ref``: an id, ``latest`` / ``-1`` / ``-2`` ..., or a model name.

        See :func:`sim.store.refs.resolve_model`; a clear error when nothing matches.
        """
        return refs.resolve_model(self, ref)

    def interactions(self, run_id: int, *, delivered_only: bool = False) -> dict[str, np.ndarray]:
        """A run's interactions as numpy columns, ordered by ``seq``."""
        where = "run_id = :r" + (" AND delivered" if delivered_only else "")
        df = self.frame(
            f"SELECT seq, t, src, dst, sign, weight, delivered, cause, blocked_by "
            f"FROM interactions WHERE {where} ORDER BY t, seq",
            {"r": run_id},
        )
        return {c: df[c].to_numpy() for c in df.columns}

    def table_hash(self, run_id: int, table: str = "interactions") -> str:
        """SHA-256 of a run's rows in a table (ordered), for reproducibility checks."""
        order = {"interactions": "seq", "opinions": "t, agent_id", "metrics": "t, name",
                 "agents": "agent_id", "interventions": "id"}[table]
        df = self.frame(f"SELECT * FROM {table} WHERE run_id = :r ORDER BY {order}", {"r": run_id})
        cols = [c for c in df.columns if c not in ("run_id", "id")]
        for c in cols:  # booleans are 0/1 in SQLite and true/false in PostgreSQL
            if df[c].dtype == bool:
                df[c] = df[c].astype(int)
        return hashlib.sha256(df[cols].to_csv(index=False).encode()).hexdigest()


def open_store(db: str, *, create: bool = True, read_only: bool = False) -> Store:
    """Open a signsim database; see :class:`Store`."""
    return Store(db, create=create, read_only=read_only)
