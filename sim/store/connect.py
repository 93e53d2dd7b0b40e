"""How signsim reaches a database: ``--db`` values as URLs, SQLite connection settings.

A ``--db`` value is a file path (SQLite) or a SQLAlchemy URL; PostgreSQL URLs get the
psycopg 3 driver. Read-write SQLite connections share one set of pragmas; read-only ones
are opened so that nothing can write through them, even on a read-only mount.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "SQLITE_PRAGMAS",
    "apply_sqlite_pragmas",
    "describe_url",
    "insert_sql",
    "resolve_url",
    "sqlite_read_only",
]


def insert_sql(table: str, columns: Sequence[str], rows: int = 1) -> str:
    """``INSERT INTO table ("a", "b") VALUES (?,?),(?,?)...`` for ``rows`` rows (qmark style)."""
    names = ", ".join(f'"{c}"' for c in columns)
    one = "(" + ",".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({names}) VALUES " + ",".join([one] * rows)


def resolve_url(db: str) -> str:
    """Turn a ``--db`` value (a path or a SQLAlchemy URL) into a SQLAlchemy URL.

    ``postgresql://`` URLs get the psycopg (v3) driver.
    """
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser()}"
    if db.startswith("postgresql://") or db.startswith("postgres://"):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    return db


def describe_url(db: str) -> str:
    """Name a database (a ``--db`` path or a URL) for messages without leaking a password.

    A path is shown as given; a URL with its password hidden, or only its scheme when it
    cannot be parsed.
    """
    if "://" not in db:
        return db
    try:
        return make_url(db).render_as_string(hide_password=True)
    except ArgumentError:
        return db.split("://", 1)[0] + "://..."


#: Settings of every read-write SQLite connection (WAL itself is set once per file).
SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=60000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-262144",  # 256 MiB page cache: inserts stay O(1)-ish as runs grow
)


def sqlite_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a SQLite file (``mode=ro`` and ``query_only``).

    A WAL database in a folder this process cannot write (a read-only mount) cannot be
    opened with ``mode=ro`` alone, because SQLite must create its shared-memory file;
    it is then opened ``immutable=1``, which reads the main file as it is (no locks;
    nothing may write it meanwhile, which a read-only mount guarantees).
    """
    for options in ("mode=ro", "mode=ro&immutable=1"):
        con = sqlite3.connect(f"file:{path}?{options}", uri=True, check_same_thread=False)
        try:
            con.execute("PRAGMA query_only=ON")
            con.execute("PRAGMA busy_timeout=60000")
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.OperationalError:
            con.close()
            if options != "mode=ro" or not _unwritable_folder(path):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _unwritable_folder(path: Path) -> bool:
    """Whether SQLite could not create files next to ``path`` (read-only mount etc.)."""
    probe = path.parent / f".{path.name}.signsim-probe"
    try:
        probe.touch(exist_ok=False)
    except FileExistsError:
        return False
    except OSError:
        return True
    probe.unlink(missing_ok=True)
    return False


def apply_sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """SQLAlchemy ``connect`` hook: set :data:`SQLITE_PRAGMAS` on a new connection."""
    cur = dbapi_conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        cur.execute(pragma)
    cur.close()
