"""Run and model references as people type them: ``12``, ``latest``, ``-1``, ``-2``, a name.

One resolver for every command and library function that takes a run or a model:

* a number is an id (``12``);
* ``latest`` or ``-1`` is the newest row (highest id, whatever its status: the last row
  of ``signsim runs``), ``-2`` the one before, and so on;
* anything else is a name: for runs the scenario name (an imported network is named
  after its file stem), picking the newest *complete* run of that name; for models the
  model name, picking the newest model of that name.

:class:`sim.store.database.Store` exposes them as ``Store.resolve_run`` and
``Store.resolve_model``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sim.errors import SignsimError

if TYPE_CHECKING:
    from sim.store.database import Store

__all__ = ["LATEST", "resolve_model", "resolve_run"]

LATEST = "latest"
"""The word for the newest run or model (same as ``-1``)."""

_ID = re.compile(r"[0-9]+")
_BACK = re.compile(r"-[0-9]+")
_HOW = "use an id, latest or -1 (the newest), -2 (the one before) and so on"


def _from_the_end(store: Store, table: str, noun: str, text: str, typed: str) -> int:
    """The id ``text`` (``-k``) rows back from the newest in ``table``; ``typed`` as given."""
    back = int(text[1:])
    if back == 0:
        raise SignsimError(f"'{typed}' is not a {noun} reference: {_HOW}.")
    df = store.frame(f"SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET :k", {"k": back - 1})
    if df.empty:
        n = int(store.frame(f"SELECT count(*) AS n FROM {table}")["n"].iloc[0])
        if n == 0:
            raise SignsimError(f"No {noun} '{typed}': the database holds no {noun}s yet.")
        raise SignsimError(f"No {noun} '{typed}': the database holds {n} {noun}"
                           f"{'s' if n != 1 else ''}, so -1 to -{n} (or an id) are valid.")
    return int(df["id"].iloc[0])


def _normalise(ref: str | int) -> str:
    """The reference as stripped text, with ``latest`` (any case) as ``-1``."""
    text = str(ref).strip()
    return "-1" if text.lower() == LATEST else text


def resolve_run(store: Store, ref: str | int) -> int:
    """Turn a run reference into a run id.

    Args:
        store: The open store.
        ref: A run id (``12``); ``latest`` or ``-1`` for the newest run in the database
            (whatever its status), ``-2`` for the one before, ...; or a scenario name
            (an imported network is named after its file stem), which picks the newest
            complete run of that name.

    Returns:
        The id of an existing run.

    Raises:
        SignsimError: No run matches; the message lists the known names.
    """
    text = _normalise(ref)
    if _BACK.fullmatch(text):
        return _from_the_end(store, "runs", "run", text, str(ref).strip())
    if _ID.fullmatch(text):
        store.run(int(text))  # a clear error when there is no such run
        return int(text)
    df = store.frame(
        "SELECT id FROM runs WHERE scenario = :s AND status = 'complete' ORDER BY id DESC",
        {"s": text},
    )
    if df.empty:
        known = store.frame("SELECT DISTINCT scenario FROM runs ORDER BY scenario")
        names = ", ".join(map(str, known["scenario"].tolist()[:10])) or "none"
        raise SignsimError(f"No complete run with id or name '{text}' in the database "
                           f"(known names: {names}); {_HOW}, or a scenario name.")
    return int(df["id"].iloc[0])


def resolve_model(store: Store, ref: str | int) -> int:
    """Turn a model reference into a model id.

    Args:
        store: The open store.
        ref: A model id (``3``); ``latest`` or ``-1`` for the newest trained model,
            ``-2`` for the one before, ...; or a model name (the newest model of that
            name).

    Returns:
        The id of an existing model.

    Raises:
        SignsimError: No model matches; the message lists the models.
    """
    text = _normalise(ref)
    if _BACK.fullmatch(text):
        return _from_the_end(store, "models", "model", text, str(ref).strip())
    if _ID.fullmatch(text):
        df = store.frame("SELECT id FROM models WHERE id = :i", {"i": int(text)})
    else:
        df = store.frame("SELECT id FROM models WHERE name = :n ORDER BY id DESC", {"n": text})
    if df.empty:
        known = store.frame("SELECT id, name FROM models ORDER BY id")
        listing = ", ".join(f"{r.id} ({r.name})" for r in known.itertuples()) or "none"
        what = f"id {text}" if _ID.fullmatch(text) else f"id or name '{text}'"
        raise SignsimError(f"No model with {what} in the database (models: {listing}); "
                           f"{_HOW}, or a model name.")
    return int(df["id"].iloc[0])
