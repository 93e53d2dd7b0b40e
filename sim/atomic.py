"""Atomic file writes: a file appears whole under its name, or not at all.

Each output is written to a temporary file in the same folder and renamed over its name
(``os.replace``, atomic on POSIX file systems), so a full disk, a kill or an error while
writing never leaves a truncated report or a 0-byte PNG; an earlier version of the file
stays as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_text_atomic"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``.

    On any error the temporary file is removed and the error propagates.

    Args:
        path: The final file.

    Yields:
        A path in the same folder, unique to this process.
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
