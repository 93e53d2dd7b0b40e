"""The one exception type users see: a readable message, never a traceback."""

from __future__ import annotations

__all__ = ["SignsimError"]


class SignsimError(Exception):
    """A user-facing error: bad input, unreachable database, refused query.

    The message is one paragraph that names what went wrong and where (file, key,
    line, URL). The CLI prints it and exits with a non-zero status.
    """
