"""Read-only SQL over a signsim database (``signsim query``).

Two guards: statements that are not reads are refused before they reach the database,
and the connection itself is read-only (SQLite ``mode=ro`` + ``query_only``; PostgreSQL
``default_transaction_read_only``), so nothing can write even if the first guard is fooled.
"""

from __future__ import annotations

import io
import json
import re

import pandas as pd
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, StatementError

from sim.errors import SignsimError
from sim.store import Store

__all__ = ["READ_KEYWORDS", "WRITE_KEYWORDS", "format_frame", "list_runs", "run_query"]

#: First keywords of statements that change something (refused outright).
WRITE_KEYWORDS = (
    "insert", "update", "delete", "replace", "upsert", "merge", "create", "drop", "alter",
    "truncate", "attach", "detach", "pragma", "vacuum", "reindex", "analyze", "grant",
    "revoke", "copy", "begin", "commit", "rollback", "savepoint", "release", "set", "lock",
)

#: First keywords of statements that only read.
READ_KEYWORDS = ("select", "with", "explain", "values", "show", "table")


def _first_keyword(sql: str) -> str:
    body = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).strip()
    match = re.match(r"[A-Za-z]+", body)
    return match.group(0).lower() if match else ""


def run_query(db: str, sql: str) -> pd.DataFrame:
    """Run one read-only SQL statement and return its rows.

    Args:
        db: Database path or URL.
        sql: One SELECT / WITH / EXPLAIN / VALUES statement.

    Raises:
        SignsimError: For a write statement (refused), malformed SQL, or a database
            that cannot be opened.
    """
    keyword = _first_keyword(sql)
    if keyword in WRITE_KEYWORDS:
        raise SignsimError(
            f"signsim query is read-only: a {keyword.upper()} statement was refused; "
            "nothing was changed. Use SELECT (or WITH ... SELECT, EXPLAIN)."
        )
    if keyword not in READ_KEYWORDS:
        raise SignsimError(
            f"Malformed SQL: {sql.strip()[:60]!r} does not start with SELECT, WITH, EXPLAIN "
            "or VALUES. Nothing was run."
        )
    store = Store(db, create=False, read_only=True)
    try:
        with store.engine.connect() as conn:
            result = conn.execute(text(sql))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    except (DBAPIError, StatementError) as exc:
        orig = getattr(exc, "orig", None)
        msg = str(orig if orig is not None else exc).strip().splitlines()[0]
        if "readonly" in msg.replace("-", "").replace(" ", "").lower():
            raise SignsimError(f"signsim query is read-only; the statement was refused ({msg}).") from None
        raise SignsimError(f"The SQL statement failed: {msg}. Nothing was changed.") from None
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
