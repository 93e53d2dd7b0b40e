"""PostgreSQL binary ``COPY`` of event rows, encoded from numpy columns in compiled code.

PostgreSQL's binary copy format (documented with the ``COPY`` command, "Binary Format")
is an 11-byte signature, two 32-bit header words (flags, extension length), then per row
a 16-bit field count and, per field, a 32-bit byte length (-1 for NULL) followed by the
value in the type's binary send format, all integers big-endian; a 16-bit -1 ends the
stream. Each ``interactions`` row is therefore 77 bytes plus its ``cause`` and
``blocked_by`` text.

:func:`encode_interactions` writes a whole batch into one ``uint8`` array from a
numba-compiled loop that releases the GIL, so the writer thread encodes while the
simulation thread keeps running; :func:`copy_payload` hands the bytes to the server in
one ``COPY interactions (...) FROM STDIN (FORMAT BINARY)``. Every value is range-checked
first: in binary format a value that does not fit its column would not be refused by
the server but stored truncated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numba import njit

from sim.errors import SignsimError
from sim.store.database import INTERACTION_COLUMNS

__all__ = [
    "COPY_SIGNATURE",
    "COPY_TRAILER",
    "INTERACTIONS_COPY_SQL",
    "ROW_FIXED_BYTES",
    "copy_payload",
    "encode_interactions",
]

#: Signature, flags word and header-extension length that open every binary copy stream.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
#: The 16-bit -1 that ends a binary copy stream.
COPY_TRAILER = b"\xff\xff"
#: Bytes of an ``interactions`` row besides its two texts: a 16-bit field count, ten
#: 32-bit lengths and the values (int4 run_id, seq, src, dst; float8 t, weight; int2
#: sign; bool delivered).
ROW_FIXED_BYTES = 2 + 10 * 4 + 4 + 4 + 8 + 4 + 4 + 2 + 8 + 1

#: The statement :func:`copy_payload` runs.
INTERACTIONS_COPY_SQL = (
    "COPY interactions (" + ", ".join(f'"{c}"' for c in INTERACTION_COLUMNS)
    + ") FROM STDIN (FORMAT BINARY)"
)

_INT4 = (-(2**31), 2**31 - 1)
_INT2 = (-(2**15), 2**15 - 1)


@njit(inline="always")
def _put16(buf: np.ndarray, p: int, v: int) -> int:
    buf[p] = (v >> 8) & 0xFF
    buf[p + 1] = v & 0xFF
    return p + 2


@njit(inline="always")
def _put32(buf: np.ndarray, p: int, v: int) -> int:
    buf[p] = (v >> 24) & 0xFF
    buf[p + 1] = (v >> 16) & 0xFF
    buf[p + 2] = (v >> 8) & 0xFF
    buf[p + 3] = v & 0xFF
    return p + 4


@njit(inline="always")
def _put64(buf: np.ndarray, p: int, v: int) -> int:
    for k in range(8):
        buf[p + k] = (v >> (56 - 8 * k)) & 0xFF
    return p + 8


@njit(inline="always")
def _put_text(buf: np.ndarray, p: int, text: np.ndarray, start: int, length: int) -> int:
    if length < 0:
        return _put32(buf, p, -1)
    p = _put32(buf, p, length)
    for k in range(length):
        buf[p + k] = text[start + k]
    return p + length


@njit(nogil=True, cache=True)
def _encode_rows(buf: np.ndarray, pos: int, run_id: int, seq0: int, t_bits: np.ndarray,
                 src: np.ndarray, dst: np.ndarray, sign: np.ndarray, w_bits: np.ndarray,
                 cause: np.ndarray, blocked: np.ndarray, cause_text: np.ndarray,
                 cause_start: np.ndarray, cause_len: np.ndarray, block_text: np.ndarray,
                 block_start: np.ndarray, block_len: np.ndarray) -> int:
    """Write the rows from ``pos`` on; returns the position after the last row."""
    p = pos
    for i in range(t_bits.shape[0]):
        p = _put16(buf, p, 10)
        p = _put32(buf, p, 4)
        p = _put32(buf, p, run_id)
        p = _put32(buf, p, 4)
        p = _put32(buf, p, seq0 + i)
        p = _put32(buf, p, 8)
        p = _put64(buf, p, t_bits[i])
        p = _put32(buf, p, 4)
        p = _put32(buf, p, src[i])
        p = _put32(buf, p, 4)
        p = _put32(buf, p, dst[i])
        p = _put32(buf, p, 2)
        p = _put16(buf, p, sign[i])
        p = _put32(buf, p, 8)
        p = _put64(buf, p, w_bits[i])
        p = _put32(buf, p, 1)
        b = blocked[i]
        buf[p] = 1 if b == 0 else 0
        p += 1
        c = cause[i]
        p = _put_text(buf, p, cause_text, cause_start[c], cause_len[c])
        p = _put_text(buf, p, block_text, block_start[b], block_len[b])
    return p


def _names(names: Sequence[str | None], encoding: str) -> tuple[np.ndarray, ...]:
    """Concatenated bytes, start offsets and lengths (-1: NULL) of a code table."""
    encoded = [n.encode(encoding) if n is not None else None for n in names]
    text = np.frombuffer(b"".join(e for e in encoded if e is not None) or b"\0", dtype=np.uint8)
    length = np.array([len(e) if e is not None else -1 for e in encoded], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(np.maximum(length, 0))[:-1]]).astype(np.int64)
    return text, start, length


def _check_range(name: str, values: np.ndarray, bounds: tuple[int, int]) -> None:
    if values.size and (int(values.min()) < bounds[0] or int(values.max()) > bounds[1]):
        raise SignsimError(f"Event {name} values outside the column's range "
                           f"{bounds[0]}..{bounds[1]}; nothing of this batch was written.")


def encode_interactions(run_id: int, seq0: int, events: Mapping[str, np.ndarray],
                        cause_names: Sequence[str | None], block_names: Sequence[str | None],
                        encoding: str = "utf-8") -> np.ndarray:
    """A complete binary ``COPY`` stream of ``interactions`` rows ``seq0, seq0 + 1, ...``.

    The columns are those of ``INTERACTION_COLUMNS``: ``delivered`` is ``blocked == 0``,
    ``cause`` and ``blocked_by`` the names of the codes (a None name is NULL).

    Args:
        run_id: The run the rows belong to.
        seq0: ``seq`` of the first row.
        events: ``t, src, dst, sign, weight, cause, blocked`` columns of equal length.
        cause_names: Text of each cause code.
        block_names: Text of each blocking code (None: delivered, stored as NULL).
        encoding: Python codec of the connection's client encoding (for the texts).

    Returns:
        The stream (signature, rows, trailer) as a ``uint8`` array.

    Raises:
        SignsimError: When a code has no name or a value does not fit its column.
    """
    t = np.ascontiguousarray(events["t"], dtype=np.float64)
    n = t.shape[0]
    src = np.ascontiguousarray(events["src"], dtype=np.int64)
    dst = np.ascontiguousarray(events["dst"], dtype=np.int64)
    sign = np.ascontiguousarray(events["sign"], dtype=np.int64)
    weight = np.ascontiguousarray(events["weight"], dtype=np.float64)
    cause = np.ascontiguousarray(events["cause"], dtype=np.int64)
    blocked = np.ascontiguousarray(events["blocked"], dtype=np.int64)
    if not all(a.shape == (n,) for a in (src, dst, sign, weight, cause, blocked)):
        raise SignsimError("Event columns of different lengths; nothing was written.")
    cause_text, cause_start, cause_len = _names(cause_names, encoding)
    block_text, block_start, block_len = _names(block_names, encoding)
    for name, codes, table in (("cause", cause, cause_len), ("blocked", blocked, block_len)):
        if codes.size and (codes.min() < 0 or codes.max() >= table.size):
            raise SignsimError(f"Event {name} codes outside 0..{table.size - 1}.")
    if cause.size and np.any(cause_len[np.unique(cause)] < 0):
        raise SignsimError("Event cause codes name no text; cause is NOT NULL.")
    _check_range("run_id", np.array([run_id, run_id]), _INT4)
    _check_range("seq", np.array([seq0, seq0 + max(n - 1, 0)]), _INT4)
    _check_range("src", src, _INT4)
    _check_range("dst", dst, _INT4)
    _check_range("sign", sign, _INT2)
    size = (len(COPY_SIGNATURE) + len(COPY_TRAILER) + n * ROW_FIXED_BYTES
            + int(np.maximum(cause_len, 0)[cause].sum())
            + int(np.maximum(block_len, 0)[blocked].sum()))
    buf = np.empty(size, dtype=np.uint8)
    buf[:len(COPY_SIGNATURE)] = np.frombuffer(COPY_SIGNATURE, dtype=np.uint8)
    end = _encode_rows(buf, len(COPY_SIGNATURE), int(run_id), int(seq0), t.view(np.int64),
                       src, dst, sign, weight.view(np.int64), cause, blocked,
                       cause_text, cause_start, cause_len, block_text, block_start, block_len)
    buf[end:] = np.frombuffer(COPY_TRAILER, dtype=np.uint8)
    if end + len(COPY_TRAILER) != size:  # pragma: no cover - the sizes are computed above
        raise AssertionError("binary copy size mismatch")
    return buf


def copy_payload(connection: Any, payload: np.ndarray, sql: str = INTERACTIONS_COPY_SQL) -> None:
    """Send a binary copy stream on a psycopg 3 connection, in its open transaction.

    Args:
        connection: A ``psycopg.Connection`` (not in autocommit: the caller commits).
        payload: A stream from :func:`encode_interactions`.
        sql: The ``COPY ... FROM STDIN (FORMAT BINARY)`` statement.
    """
    with connection.cursor() as cur, cur.copy(sql) as copy:
        copy.write(payload.data)
