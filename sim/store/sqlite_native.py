"""Native SQLite writes: event columns go from numpy arrays to SQLite without Python objects.

Python's ``sqlite3`` module binds every value from a Python object while holding the
GIL. For an event log of ten columns that caps inserts near 200k rows/s on one core and
takes the GIL away from the simulation. :class:`NativeConnection` instead calls SQLite's
C API (``sqlite3_bind_*``, ``sqlite3_step``) from a numba-compiled loop over numpy
columns, with the GIL released, so the simulation and the writer run on two cores.

Safety: it uses the very SQLite library that Python's ``sqlite3`` module is linked to
(looked up through that extension module with ctypes, and checked by version). Two
copies of SQLite in one process would not see each other's POSIX locks (a documented
way to corrupt a database), so when the library cannot be found this way
:func:`available` says no and the caller keeps to the ``sqlite3`` path. Setting
``SIGNSIM_NATIVE_SQLITE=0`` (or ``NUMBA_DISABLE_JIT=1``) turns this module off as well.
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import numba
import numpy as np
from numba import njit

from sim.errors import SignsimError
from sim.store.connect import insert_sql
from sim.store.database import INTERACTION_COLUMNS

__all__ = ["NativeConnection", "available"]

_OK, _DONE = 0, 101
_OPEN_READWRITE = 0x2
_STATIC = 0  # SQLITE_STATIC: the bound bytes outlive the statement's step
_TRANSIENT = ctypes.c_size_t(-1).value  # SQLITE_TRANSIENT: SQLite copies the bytes
_ROWS_PER_STATEMENT = 100  # rows bound into one multi-row INSERT

# Handles and pointers travel as size_t so that numba can pass them to C.
_H = ctypes.c_size_t
_SIGNATURES: dict[str, tuple[Any, ...]] = {
    "sqlite3_libversion": (ctypes.c_char_p,),
    "sqlite3_open_v2": (ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_H), ctypes.c_int, _H),
    "sqlite3_close_v2": (ctypes.c_int, _H),
    "sqlite3_exec": (ctypes.c_int, _H, ctypes.c_char_p, _H, _H, _H),
    "sqlite3_errmsg": (ctypes.c_char_p, _H),
    "sqlite3_prepare_v2": (ctypes.c_int, _H, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_H), _H),
    "sqlite3_finalize": (ctypes.c_int, _H),
    "sqlite3_bind_int64": (ctypes.c_int, _H, ctypes.c_int, ctypes.c_int64),
    "sqlite3_bind_double": (ctypes.c_int, _H, ctypes.c_int, ctypes.c_double),
    "sqlite3_bind_text": (ctypes.c_int, _H, ctypes.c_int, _H, ctypes.c_int, _H),
    "sqlite3_bind_null": (ctypes.c_int, _H, ctypes.c_int),
    "sqlite3_step": (ctypes.c_int, _H),
    "sqlite3_reset": (ctypes.c_int, _H),
    "sqlite3_changes": (ctypes.c_int, _H),
}


@cache
def _library() -> Any:
    """SQLite's C functions from the library ``sqlite3`` uses, or None."""
    if os.environ.get("SIGNSIM_NATIVE_SQLITE", "1") == "0" or getattr(numba.config, "DISABLE_JIT", False):
        return None  # off by request, or the loop would run as (slow) Python
    try:
        import _sqlite3

        lib = ctypes.CDLL(_sqlite3.__file__)  # symbols resolve in its linked libsqlite3
        for name, (restype, *argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        if lib.sqlite3_libversion().decode() != sqlite3.sqlite_version:
            return None
    except (ImportError, OSError, AttributeError):
        return None
    return lib


def available() -> bool:
    """Whether native writes can be used in this process."""
    return _library() is not None


@cache
def _event_loop() -> Any:
    """Compile (once per process) the loop that binds and inserts event rows.

    numba freezes the ctypes functions below into the machine code as addresses, which
    is why the loop is built here, after :func:`_library` has typed them, and why it
    cannot go to numba's on-disk cache (the addresses change from process to process).
    """
    lib = _library()
    bind_int = lib.sqlite3_bind_int64
    bind_double = lib.sqlite3_bind_double
    bind_text = lib.sqlite3_bind_text
    bind_null = lib.sqlite3_bind_null
    step = lib.sqlite3_step
    reset = lib.sqlite3_reset

    @njit(nogil=True)
    def insert_events(many: int, one: int, per: int, run_id: int, seq0: int,
                      t: np.ndarray, src: np.ndarray, dst: np.ndarray, sign: np.ndarray,
                      weight: np.ndarray, cause: np.ndarray, blocked: np.ndarray,
                      cause_ptr: np.ndarray, cause_len: np.ndarray,
                      block_ptr: np.ndarray, block_len: np.ndarray) -> int:
        """Insert rows ``per`` at a time through ``many``, the rest through ``one``.

        Returns the number of rows inserted, or minus SQLite's error code.
        """
        n = t.shape[0]
        i = 0
        while i < n:
            stmt = many if n - i >= per else one
            rows = per if n - i >= per else 1
            for r in range(rows):
                j = i + r
                b = r * 10
                bind_int(stmt, b + 1, run_id)
                bind_int(stmt, b + 2, seq0 + j)
                bind_double(stmt, b + 3, t[j])
                bind_int(stmt, b + 4, src[j])
                bind_int(stmt, b + 5, dst[j])
                bind_int(stmt, b + 6, sign[j])
                bind_double(stmt, b + 7, weight[j])
                bind_int(stmt, b + 8, 1 if blocked[j] == 0 else 0)
                c = cause[j]
                bind_text(stmt, b + 9, cause_ptr[c], cause_len[c], _STATIC)
                k = blocked[j]
                if block_len[k] < 0:
                    bind_null(stmt, b + 10)
                else:
                    bind_text(stmt, b + 10, block_ptr[k], block_len[k], _STATIC)
            rc = step(stmt)
            reset(stmt)
            if rc != _DONE:
                return -rc
            i += rows
        return i

    return insert_events


class _Names:
    """Code -> text lookup kept alive for SQLITE_STATIC binding (None binds NULL)."""

    def __init__(self, names: Sequence[str | None]) -> None:
        encoded = [n.encode() if n is not None else None for n in names]
        self._buffers = [ctypes.create_string_buffer(e) if e is not None else None
                         for e in encoded]
        self.ptr = np.array([ctypes.addressof(b) if b is not None else 0
                             for b in self._buffers], dtype=np.uint64)
        self.length = np.array([len(e) if e is not None else -1 for e in encoded],
                               dtype=np.int64)


class NativeConnection:
    """One SQLite connection driven through the C API (used by one thread at a time).

    Args:
        path: The database file (it must exist and hold the signsim schema).
        pragmas: Statements run once after opening (busy timeout, synchronous ...).
    """

    def __init__(self, path: str, pragmas: Sequence[str] = ()) -> None:
        lib = _library()
        if lib is None:
            raise SignsimError("Native SQLite writes are not available in this Python.")
        self._lib = lib
        self.path = path
        handle = _H(0)
        rc = lib.sqlite3_open_v2(path.encode(), ctypes.byref(handle), _OPEN_READWRITE, 0)
        self._db = int(handle.value)
        if rc != _OK:
            message = self._message()
            self.close()
            raise SignsimError(f"Cannot open SQLite database '{path}' for writing: {message}")
        self._statements: dict[str, int] = {}
        self._names: dict[tuple[str | None, ...], _Names] = {}
        for pragma in pragmas:
            self.execute(pragma)

    # -- basics ------------------------------------------------------------------------
    def _message(self) -> str:
        raw = self._lib.sqlite3_errmsg(self._db) if self._db else None
        return raw.decode(errors="replace") if raw else "unknown error"

    def _fail(self, what: str) -> SignsimError:
        return SignsimError(f"SQLite error on '{self.path}' while {what}: {self._message()}")

    def execute(self, sql: str) -> None:
        """Run statements that take no parameters and return no rows."""
        if self._lib.sqlite3_exec(self._db, sql.encode(), 0, 0, 0) != _OK:
            raise self._fail(f"running {sql.split()[0]}")

    def _statement(self, sql: str) -> int:
        stmt = self._statements.get(sql)
        if stmt is None:
            handle = _H(0)
            if self._lib.sqlite3_prepare_v2(self._db, sql.encode(), -1,
                                            ctypes.byref(handle), 0) != _OK:
                raise self._fail("preparing a statement")
            stmt = self._statements[sql] = int(handle.value)
        return stmt

    def close(self) -> None:
        """Finalize statements and close the connection (idempotent)."""
        for stmt in getattr(self, "_statements", {}).values():
            self._lib.sqlite3_finalize(stmt)
        self._statements = {}
        if self._db:
            self._lib.sqlite3_close_v2(self._db)
            self._db = 0

    # -- writing -----------------------------------------------------------------------
    def rollback(self) -> None:
        """Roll back the open transaction, if any (errors here are ignored)."""
        self._lib.sqlite3_exec(self._db, b"ROLLBACK", 0, 0, 0)

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of Python values (side tables, counters)."""
        stmt = self._statement(sql)
        lib = self._lib
        for row in rows:
            keep = []  # text buffers live until the step
            for j, value in enumerate(row, 1):
                if value is None:
                    lib.sqlite3_bind_null(stmt, j)
                elif isinstance(value, bool | int | np.integer):
                    lib.sqlite3_bind_int64(stmt, j, int(value))
                elif isinstance(value, float | np.floating):
                    lib.sqlite3_bind_double(stmt, j, float(value))
                else:
                    data = str(value).encode()
                    keep.append(ctypes.create_string_buffer(data, len(data) + 1))
                    lib.sqlite3_bind_text(stmt, j, ctypes.addressof(keep[-1]), len(data),
                                          _TRANSIENT)
            rc = lib.sqlite3_step(stmt)
            lib.sqlite3_reset(stmt)
            if rc != _DONE:
                raise self._fail(f"running {' '.join(sql.split()[:3])}")

    def changes(self) -> int:
        """Rows changed by the latest INSERT, UPDATE or DELETE on this connection."""
        return int(self._lib.sqlite3_changes(self._db))

    def insert_dicts(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows given as dicts that share their keys (side tables)."""
        if rows:
            columns = list(rows[0])
            self.execute_many(insert_sql(table, columns), ([r[c] for c in columns] for r in rows))

    def insert_events(self, run_id: int, seq0: int,
                      arrays: dict[str, np.ndarray], cause_names: Sequence[str | None],
                      block_names: Sequence[str | None]) -> None:
        """Insert event rows ``seq0, seq0+1, ...`` from numpy columns, GIL released.

        The loop binds the columns in ``INTERACTION_COLUMNS`` order.

        Args:
            run_id: The run the rows belong to.
            seq0: ``seq`` of the first row.
            arrays: ``t, src, dst, sign, weight, cause, blocked`` columns; ``cause`` and
                ``blocked`` are codes into ``cause_names`` and ``block_names``.
            cause_names: Text of each cause code.
            block_names: Text of each blocking code (None: delivered, stored as NULL).
        """
        n = len(arrays["t"])
        if n == 0:
            return
        causes = self._lookup(cause_names)
        blocks = self._lookup(block_names)
        for name, table in (("cause", causes), ("blocked", blocks)):
            codes = arrays[name]
            if codes.min() < 0 or codes.max() >= len(table.length):
                raise SignsimError(f"Event {name} codes outside 0..{len(table.length) - 1}.")
        many = self._statement(
            insert_sql("interactions", INTERACTION_COLUMNS, _ROWS_PER_STATEMENT))
        single = self._statement(insert_sql("interactions", INTERACTION_COLUMNS))
        done = _event_loop()(
            many, single, _ROWS_PER_STATEMENT, int(run_id), int(seq0),
            np.ascontiguousarray(arrays["t"], dtype=np.float64),
            np.ascontiguousarray(arrays["src"], dtype=np.int64),
            np.ascontiguousarray(arrays["dst"], dtype=np.int64),
            np.ascontiguousarray(arrays["sign"], dtype=np.int64),
            np.ascontiguousarray(arrays["weight"], dtype=np.float64),
            np.ascontiguousarray(arrays["cause"], dtype=np.int64),
            np.ascontiguousarray(arrays["blocked"], dtype=np.int64),
            causes.ptr, causes.length, blocks.ptr, blocks.length,
        )
        if done != n:
            raise self._fail("inserting interactions")

    def _lookup(self, names: Sequence[str | None]) -> _Names:
        key = tuple(names)
        found = self._names.get(key)
        if found is None:
            found = self._names[key] = _Names(key)
        return found
