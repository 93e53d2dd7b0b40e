"""Sorted key tables: keyed columns kept as tensors, updated in place or by merging.

A table is a tuple ``(keys, column 1, column 2, ...)`` with the keys sorted and unique;
a lookup is a binary search (:func:`find_keys`), an insertion a merge (:func:`upsert`,
work linear in the table, no sort of it). :class:`SortedTables` keeps two such tables
with disjoint keys, a main one and a small recent one: existing keys are set in place in
the main table, new keys are merged into the recent one, and the recent table is merged
into the main one once it holds more than an eighth of it, so an update costs a constant
amount per key on average. :class:`models.triads.SignedTriads` keeps its neighbour
index in one and :class:`models.features.PairTable` the history of every directed pair.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SortedTables", "find_keys", "upsert"]


class SortedTables:
    """Columns keyed by int64 keys, in a main and a recent sorted table.

    Args:
        dtypes: The dtype of each column (an absent key reads as 0 in every column).
        min_recent: Keys the recent table may hold before it is merged.
    """

    def __init__(self, dtypes: tuple[torch.dtype, ...], min_recent: int = 65_536) -> None:
        self.dtypes = dtypes
        self.min_recent = min_recent
        self.reset()

    def reset(self, device: torch.device | str | None = None) -> None:
        """Forget every key (the tables live on ``device``, the CPU by default)."""
        dev = torch.device("cpu") if device is None else torch.device(device)
        self.main = self._empty(dev)
        self.recent = self._empty(dev)

    def _empty(self, device: torch.device) -> tuple[Tensor, ...]:
        return (torch.zeros(0, dtype=torch.long, device=device),
                *(torch.zeros(0, dtype=d, device=device) for d in self.dtypes))

    def to(self, device: torch.device) -> None:
        """Move both tables to ``device`` (nothing to do when they are there)."""
        if self.main[0].device != device:
            self.main = tuple(x.to(device) for x in self.main)
            self.recent = tuple(x.to(device) for x in self.recent)

    def __len__(self) -> int:
        """Number of keys held."""
        return int(self.main[0].numel() + self.recent[0].numel())

    def nbytes(self) -> int:
        """Bytes held by the tables."""
        return sum(x.numel() * x.element_size() for x in (*self.main, *self.recent))

    def state(self) -> tuple[Tensor, ...]:
        """A copy of both tables (setting keys changes the main table in place)."""
        return tuple(x.clone() for x in (*self.main, *self.recent))

    def load_state(self, state: tuple[Tensor, ...]) -> None:
        """Restore what :meth:`state` returned."""
        k = len(self.dtypes) + 1
        self.main, self.recent = tuple(state[:k]), tuple(state[k:])

    def table(self) -> tuple[Tensor, ...]:
        """Every key and column as one sorted table (a new one; the state is unchanged)."""
        every = torch.ones_like(self.recent[0], dtype=torch.bool)
        return upsert(self.main, self.recent[0], [(c, every) for c in self.recent[1:]])

    def lookup(self, keys: Tensor) -> list[Tensor]:
        """Each column's value at ``keys`` (any order, repeats allowed; 0 where absent).

        The keys are searched in sorted order (binary searches for nearby keys share
        cache lines) and the answers put back in the given order.
        """
        out = [torch.zeros(keys.numel(), dtype=d, device=keys.device) for d in self.dtypes]
        look, order = torch.sort(keys)
        for table in (self.main, self.recent):
            row, ok = find_keys(table[0], look)
            for col, values in zip(out, table[1:], strict=True):
                col[order[ok]] = values[row[ok]]
        return out

    def update(self, keys: Tensor, updates: list[tuple[Tensor, Tensor]]) -> None:
        """Set columns at sorted unique ``keys``, inserting the keys not held yet.

        Args:
            keys: Keys to set, sorted and unique.
            updates: For each column, ``(values, mask)``: the column is set to
                ``values`` at the keys where ``mask`` holds (an inserted key holds 0
                elsewhere).
        """
        if keys.numel() == 0:
            return
        row, in_main = find_keys(self.main[0], keys)
        for col, (values, mask) in zip(self.main[1:], updates, strict=True):
            sel = in_main & mask
            col[row[sel]] = values[sel]
        rest = ~in_main
        self.recent = upsert(self.recent, keys[rest],
                             [(values[rest], mask[rest]) for values, mask in updates])
        if self.recent[0].numel() > max(self.min_recent, self.main[0].numel() // 8):
            self.main, self.recent = self.table(), self._empty(self.main[0].device)


def find_keys(keys: Tensor, look: Tensor) -> tuple[Tensor, Tensor]:
    """Where each ``look`` key is or would go in a sorted key table, and whether it is there.

    The first tensor is the key's row when it is there and its insertion row otherwise
    (which may be ``len(keys)``).
    """
    pos = torch.searchsorted(keys, look)
    if keys.numel() == 0:
        return pos, torch.zeros_like(look, dtype=torch.bool)
    return pos, keys[pos.clamp(max=keys.numel() - 1)] == look


def upsert(table: tuple[Tensor, ...], keys: Tensor,
           updates: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, ...]:
    """Set columns of a sorted table at sorted unique ``keys``, inserting absent keys.

    Args:
        table: ``(keys, column 1, column 2, ...)``, keys sorted and unique.
        keys: Keys to set, sorted and unique.
        updates: For each column, ``(values, mask)``: the column is set to ``values`` at
            the keys where ``mask`` holds (an inserted key holds 0 elsewhere).

    Returns:
        A new table (the given tensors are left as they were).
    """
    old, dev = table[0], table[0].device
    pos, found = find_keys(old, keys)
    new = ~found
    m = int(new.sum())
    if m == 0:
        cols = [c.clone() for c in table[1:]]
        for c, (values, mask) in zip(cols, updates, strict=True):
            c[pos[mask]] = values[mask]
        return (old, *cols)
    # New key i goes before old row pos[i]; each old row moves down by the number of new
    # keys that sort before it.
    at = torch.zeros_like(pos)
    at[new] = pos[new] + torch.arange(m, device=dev)
    shift = torch.zeros(old.numel() + 1, dtype=torch.long, device=dev)
    shift = shift.index_add_(0, pos[new], torch.ones_like(pos[new])).cumsum(0)[:-1]
    at_old = torch.arange(old.numel(), device=dev) + shift
    at[found] = at_old[pos[found]]
    out = [torch.empty(old.numel() + m, dtype=old.dtype, device=dev)]
    out[0][at_old], out[0][at[new]] = old, keys[new]
    for c, (values, mask) in zip(table[1:], updates, strict=True):
        grown = torch.zeros(old.numel() + m, dtype=c.dtype, device=dev)
        grown[at_old] = c
        grown[at[mask]] = values[mask]
        out.append(grown)
    return tuple(out)
