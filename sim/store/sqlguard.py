"""The statement check of ``signsim query``: exactly one statement, and one that only reads.

The SQL text is parsed with a real SQL parser (sqlglot, in the backend's dialect). It is
accepted only when it holds exactly one statement whose root is a query (``SELECT``,
``WITH ... SELECT``, a set operation, ``VALUES``, ``TABLE``), an ``EXPLAIN`` of such a
query, or (PostgreSQL) ``SHOW name``; and when no node inside it writes (a data-changing
CTE, ``SELECT ... INTO``, ``FOR UPDATE``) or calls a function with side effects outside
the database's tables (large objects, server files, signals to other sessions, settings,
advisory locks, notifications, SQL text run by a function). This check is the first of
three guards; the backend's own guarantees (:mod:`sim.store.query`) hold even if it is fooled.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sim.errors import SignsimError

__all__ = ["DENIED_FUNCTION_PREFIXES", "READ_KEYWORDS", "WRITE_KEYWORDS", "check_read_only_sql",
           "first_keyword"]

#: First keywords of statements that change something (refused outright).
WRITE_KEYWORDS = (
    "insert", "update", "delete", "replace", "upsert", "merge", "create", "drop", "alter",
    "truncate", "attach", "detach", "pragma", "vacuum", "reindex", "analyze", "grant",
    "revoke", "copy", "begin", "commit", "rollback", "savepoint", "release", "set", "lock",
    "start", "end", "abort", "prepare", "execute", "deallocate", "do", "call", "listen",
    "notify", "unlisten", "load", "reset", "discard", "checkpoint", "cluster", "comment",
    "security", "refresh", "import", "declare", "fetch", "move", "close",
)

#: First keywords of statements that only read.
READ_KEYWORDS = ("select", "with", "explain", "values", "show", "table")

#: Functions refused anywhere in a statement (by name prefix, lower case): they act
#: outside the tables even in a read-only transaction, or run SQL text of their own.
DENIED_FUNCTION_PREFIXES = (
    "lo_", "loread", "lowrite", "pg_read_", "pg_ls_", "pg_stat_file", "pg_file_",
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_promote", "pg_switch_wal", "pg_create_", "pg_drop_", "pg_replication_",
    "pg_logical_", "pg_log_", "pg_import_", "pg_advisory", "pg_try_advisory", "pg_notify",
    "set_config", "dblink", "query_to_xml", "cursor_to_xml", "query_to_xmlschema",
    "nextval", "setval", "txid_current", "pg_current_xact_id", "load_extension",
    "readfile", "writefile", "edit", "fts3_tokenizer",
)

#: Node types that make a statement write, wherever they occur in it.
_WRITE_NODES: tuple[type, ...] = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
    exp.TruncateTable, exp.Copy, exp.Command, exp.Into, exp.Lock, exp.Transaction,
    exp.Commit, exp.Rollback, exp.Set, exp.Pragma, exp.Attach, exp.Detach, exp.Grant,
    exp.Revoke, exp.Analyze, exp.Use, exp.LoadData, exp.Declare, exp.Execute, exp.Kill,
    exp.Comment, exp.Refresh, exp.Cache, exp.Uncache,
)

#: Root node types of a statement that only reads.
_READ_ROOTS: tuple[type, ...] = (exp.Query, exp.Values)

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_EXPLAIN = re.compile(
    r"^\s*explain\b(\s+query\s+plan\b)?((\s+(analyze|analyse|verbose|costs|buffers|"
    r"timing|summary|settings|wal)\b)|\s*\([^()]*\))*", re.I)
_SHOW = re.compile(r"^\s*show\s+(all|[a-z_][a-z0-9_.]*)\s*;?\s*$", re.I)

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # no "falling back to Command" noise


def first_keyword(sql: str) -> str:
    """The statement's first keyword, lower case, comments skipped ("" when none)."""
    match = re.match(r"[A-Za-z]+", _COMMENTS.sub(" ", sql).strip())
    return match.group(0).lower() if match else ""


def _refused(what: str) -> SignsimError:
    return SignsimError(
        f"signsim query is read-only: {what} was refused; nothing was run or changed. "
        "Use one SELECT (or WITH ... SELECT, VALUES, EXPLAIN SELECT)."
    )


def check_read_only_sql(sql: str, dialect: str) -> None:
    """Accept one statement that only reads; raise otherwise.

    Args:
        sql: The SQL text given to ``signsim query``.
        dialect: ``sqlite`` or ``postgres`` (the parser's dialect).

    Raises:
        SignsimError: "read-only ... refused" for a write, several statements, a denied
            function; "Malformed SQL" / "The SQL statement failed" for text that is not
            one parseable read.
    """
    keyword = first_keyword(sql)
    if keyword in WRITE_KEYWORDS:
        raise _refused(f"a {keyword.upper()} statement")
    if keyword not in READ_KEYWORDS:
        raise SignsimError(
            f"Malformed SQL: {sql.strip()[:60]!r} does not start with SELECT, WITH, EXPLAIN, "
            "VALUES, TABLE or SHOW. Nothing was run."
        )
    if keyword == "explain":
        body = _EXPLAIN.sub("", _COMMENTS.sub(" ", sql), count=1)
        if first_keyword(body) not in READ_KEYWORDS or first_keyword(body) == "explain":
            raise _refused("an EXPLAIN of a statement that is not a read")
        check_read_only_sql(body, dialect)
        return
    if keyword == "show":
        if dialect != "postgres" or not _SHOW.match(_COMMENTS.sub(" ", sql)):
            raise _refused("this SHOW statement")
        return
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect)
                      if s is not None and not isinstance(s, exp.Semicolon)]
    except SqlglotError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SignsimError(
            f"The SQL statement failed: it does not parse as one {dialect} statement "
            f"({detail[:200]}). Nothing was run."
        ) from None
    except RecursionError:
        raise SignsimError("The SQL statement failed: it is nested too deeply to check. "
                           "Nothing was run.") from None
    if len(statements) != 1:
        raise _refused(f"a text of {len(statements)} statements (one statement only)")
    _check_tree(statements[0])


def _check_tree(tree: exp.Expr) -> None:
    if not isinstance(tree, _READ_ROOTS):
        raise _refused(f"a {type(tree).__name__.upper()} statement")
    for node in tree.walk():
        if isinstance(node, _WRITE_NODES):
            raise _refused(f"a statement containing {node.key.upper()}")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name.startswith(DENIED_FUNCTION_PREFIXES):
                raise _refused(f"a call of {name}()")
