"""The one exception type users see: a readable message, never a traceback."""

from __future__ import annotations

__all__ = ["SignsimError", "describe_exception"]


class SignsimError(Exception):
    """A user-facing error: bad input, unreachable database, refused query.

    The message is one paragraph that names what went wrong and where (file, key,
    line, URL). The CLI prints it and exits with a non-zero status.
    """


def describe_exception(exc: BaseException) -> str:
    """``"Type: message"`` of an error in one line, without SQL text or bound parameters.

    A database driver's error wrapped by SQLAlchemy is described by the driver's own
    first line (``permission denied for sequence runs_id_seq``), not by the wrapper's
    text, which repeats the statement and its parameters.

    Args:
        exc: The error.

    Returns:
        One line naming the error's type and message.
    """
    orig = getattr(exc, "orig", None)
    inner = orig if isinstance(orig, BaseException) else exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0] if lines else ''}".rstrip(": ")
