"""Read-only SQL over a signsim database (``signsim query``).

Three guards, each enough on its own against the writes users have tried:

1. The text is parsed (:mod:`sim.store.sqlguard`): exactly one statement, a read, with no
   write node or side-effecting function inside; anything else is refused before a
   connection is opened.
2. The backend runs one statement only, inside a read-only transaction that signsim
   starts and always rolls back: SQLite through :mod:`sqlite3` (which refuses a second
   statement) on a ``mode=ro`` + ``query_only`` connection; PostgreSQL through a
   prepared statement (the extended protocol refuses several commands, so a
   ``COMMIT; BEGIN READ WRITE`` cannot end the transaction) after
   ``BEGIN TRANSACTION READ ONLY`` on a session whose default is read-only too.
3. A time limit: SQLite's progress handler interrupts the statement, PostgreSQL gets
   ``SET LOCAL statement_timeout``.

``docs/security.md`` describes the guarantees and the read-only role for shared servers.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
import time
from typing import Any

import pandas as pd
from sqlalchemy.exc import DBAPIError

from sim.errors import SignsimError
from sim.store.connect import resolve_url
from sim.store.database import Store
from sim.store.sqlguard import READ_KEYWORDS, WRITE_KEYWORDS, check_read_only_sql

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "READ_KEYWORDS",
    "WRITE_KEYWORDS",
    "format_frame",
    "list_runs",
    "run_query",
]

#: Default time limit of one ``signsim query`` statement, in seconds.
DEFAULT_TIMEOUT_S = 60.0

#: SQLite virtual-machine steps between two looks at the clock.
_SQLITE_STEPS = 10_000


def _check_timeout(timeout: float) -> float:
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and 0 < timeout <= 86_400):
        raise SignsimError(f"--timeout: {timeout!r} must be a number of seconds in (0, 86400].")
    return float(timeout)


def _sqlite_rows(raw: sqlite3.Connection, sql: str, timeout: float) -> tuple[list[Any], list[str]]:
    deadline = time.monotonic() + timeout
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), _SQLITE_STEPS)
    try:
        cur = raw.execute(sql)  # sqlite3 refuses a second statement
        rows = cur.fetchall()
        return rows, [d[0] for d in cur.description or ()]
    finally:
        raw.set_progress_handler(None, 0)
        raw.rollback()


def _postgres_rows(raw: Any, sql: str, timeout: float) -> tuple[list[Any], list[str]]:
    raw.rollback()
    raw.autocommit = True  # signsim alone issues BEGIN and ROLLBACK
    with raw.cursor() as cur:
        cur.execute("BEGIN TRANSACTION READ ONLY")
        try:
            cur.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
            cur.execute(sql, prepare=True)  # a prepared statement holds one command only
            rows = cur.fetchall() if cur.description is not None else []
            return rows, [d.name for d in cur.description or ()]
        finally:
            cur.execute("ROLLBACK")


def _failure(exc: BaseException, timeout: float) -> SignsimError:
    msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    flat = msg.replace("-", "").replace(" ", "").lower()
    if "readonly" in flat or "multiplecommands" in flat or "onestatementatatime" in flat:
        return SignsimError(f"signsim query is read-only; the statement was refused ({msg}). "
                            "Nothing was changed.")
    if "statementtimeout" in flat or msg == "interrupted":
        return SignsimError(f"The SQL statement ran longer than the --timeout of {timeout:g} s "
                            "and was stopped. Nothing was changed.")
    return SignsimError(f"The SQL statement failed: {msg}. Nothing was changed.")


def run_query(db: str, sql: str, timeout: float = DEFAULT_TIMEOUT_S) -> pd.DataFrame:
    """Run one read-only SQL statement and return its rows.

    Args:
        db: Database path or URL.
        sql: One SELECT / WITH / EXPLAIN / VALUES statement.
        timeout: Seconds the statement may run before it is stopped.

    Raises:
        SignsimError: For a write statement or several statements (refused, read-only),
            malformed SQL, a statement over the time limit, or a database that cannot
            be opened.
    """
    timeout = _check_timeout(timeout)
    url = resolve_url(db)
    if not url.startswith(("sqlite", "postgresql")):
        raise SignsimError(f"signsim query reads SQLite files and PostgreSQL URLs; "
                           f"'{url.split('://', 1)[0]}://' is neither. Nothing was run.")
    check_read_only_sql(sql, "sqlite" if url.startswith("sqlite") else "postgres")
    store = Store(db, create=False, read_only=True)
    try:
        proxy = store.engine.raw_connection()
        try:
            raw = proxy.driver_connection
            if store.is_sqlite:
                rows, columns = _sqlite_rows(raw, sql, timeout)  # type: ignore[arg-type]
            else:
                rows, columns = _postgres_rows(raw, sql, timeout)
        finally:
            proxy.invalidate()  # never hand this session back to a pool
        return pd.DataFrame(rows, columns=columns)
    except SignsimError:
        raise
    except (DBAPIError, sqlite3.Error, OverflowError, ValueError) as exc:
        raise _failure(getattr(exc, "orig", None) or exc, timeout) from None
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):
            raise _failure(exc, timeout) from None
        raise
    finally:
        store.dispose()


def list_runs(db: str) -> pd.DataFrame:
    """All runs of a database (opened read-only), oldest first."""
    store = Store(db, create=False, read_only=True)
    try:
        return store.runs()
    finally:
        store.dispose()


def format_frame(df: pd.DataFrame, fmt: str) -> str:
    """Render rows as ``table``, ``csv`` or ``json`` (records)."""
    if fmt == "csv":
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        return buf.getvalue().rstrip("\n")
    if fmt == "json":
        return json.dumps(json.loads(df.to_json(orient="records", date_format="iso")), indent=1)
    if fmt == "table":
        if df.empty:
            return "(no rows)" if not len(df.columns) else " | ".join(df.columns) + "\n(no rows)"
        return df.to_string(index=False)
    raise SignsimError(f"Unknown output format '{fmt}'; use table, csv or json.")
