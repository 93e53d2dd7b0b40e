"""Online signed-triad features of node pairs, from revealed events only.

For a pair ``u -> v`` every common neighbour ``w`` (a node with an edge to or from ``u``
and an edge to or from ``v``, ``w`` not ``u`` or ``v``) closes one or more triads. The
edge between ``u`` and ``w`` has a direction (``u -> w`` or ``w -> u``) and a sign, and
so has the edge between ``w`` and ``v``: 16 directed signed triad types, the features of
Leskovec, Huttenlocher and Kleinberg ("Predicting positive and negative links in online
social networks", WWW 2010). Each directed pair counts with its latest sign; when both
directions exist between two nodes, ``w`` contributes one triad per combination.

Features (``TRIAD_NAMES``), for ``u -> v`` as of before the current batch: log1p counts of
the 16 types, log1p embeddedness (number of common neighbours), and two summaries over
all the pair's triads: the **balance** score (mean of ``s_uw * s_wv``: +1 when a
friend's friend or an enemy's enemy, -1 otherwise) and the **status** score (mean of
``(x + y) / 2`` where ``x = +s`` for ``u -> w`` and ``-s`` for ``w -> u``, ``y = +s`` for
``w -> v`` and ``-s`` for ``v -> w``: status theory predicts ``u -> v`` positive when
``v`` ranks above ``u``); both 0 without triads.

Type index ``((du * 2 + nu) * 2 + dv) * 2 + nv``: ``du`` 0 for ``u -> w``, 1 for
``w -> u``; ``dv`` 0 for ``w -> v``, 1 for ``v -> w``; ``nu``/``nv`` 0 for a positive
and 1 for a negative edge. Names read e.g. ``t_uw+_wv-``.

The state is a sorted table of undirected neighbour entries ``(x, w)`` (key
``x * num_nodes + w``) with the latest sign of ``x -> w`` and of ``w -> x`` (0 when
absent). :meth:`SignedTriads.observe` updates it in place of a rebuild: a batch's new
entries are merged into the sorted table (work linear in the table, no sort of it). A
query expands, for each pair, the neighbours of its endpoint of smaller degree and looks
the other endpoint's entries up by binary search: all tensor operations, on any device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.memory import group_positions
from models.sorted_tables import SortedTables

__all__ = ["NUM_TRIAD_FEATURES", "TRIAD_NAMES", "SignedTriads", "triad_type_names"]


def triad_type_names() -> tuple[str, ...]:
    """Names of the 16 types in index order (``t_uw+_wv-``: ``u -> w`` positive, ...)."""
    names = []
    for du in ("uw", "wu"):
        for nu in "+-":
            for dv in ("wv", "vw"):
                for nv in "+-":
                    names.append(f"t_{du}{nu}_{dv}{nv}")
    return tuple(names)


TRIAD_NAMES = (*triad_type_names(), "embeddedness", "balance_score", "status_score")
NUM_TRIAD_FEATURES = len(TRIAD_NAMES)


class SignedTriads:
    """Latest signs of every directed pair, indexed for common-neighbour queries.

    The entries are kept in :class:`models.sorted_tables.SortedTables`: a main table and
    a small recent one with disjoint keys. Observing sets the signs of entries already in
    the main table where they are, merges new entries into the recent table, and merges
    that into the main table once it holds more than an eighth of it (at least
    ``min_recent`` entries), so the update costs a constant amount per event on average
    instead of a pass over the whole index per batch.

    Args:
        num_nodes: Number of nodes.
        min_recent: Entries the recent table may hold before it is merged.
    """

    def __init__(self, num_nodes: int, min_recent: int = 65_536) -> None:
        self.num_nodes = num_nodes
        # Keys x * n + w; the sign of x -> w and of w -> x (0: none).
        self.tables = SortedTables((torch.int8, torch.int8), min_recent)

    def reset(self, device: torch.device | str | None = None) -> None:
        """Forget every edge."""
        self.tables.reset(device)

    def __len__(self) -> int:
        """Number of directed pairs seen."""
        return int(sum((t[1] != 0).sum() for t in (self.tables.main, self.tables.recent)))

    def state(self) -> tuple[Tensor, ...]:
        """A copy of the whole state (observing changes the main table in place)."""
        return self.tables.state()

    def load_state(self, state: tuple[Tensor, ...]) -> None:
        """Restore a state returned by :meth:`state`."""
        self.tables.load_state(state)

    def table(self) -> tuple[Tensor, ...]:
        """Every entry as one sorted table ``(key, sign out, sign in)``."""
        return self.tables.table()

    def nbytes(self) -> int:
        """Bytes held by the tables."""
        return self.tables.nbytes()

    @torch.no_grad()
    def observe(self, src: Tensor, dst: Tensor, sign: Tensor) -> None:
        """Record true events in order (a later event of a directed pair replaces its sign)."""
        n, dev = self.num_nodes, src.device
        keep = src != dst
        if not bool(keep.any()):
            return
        self.tables.to(dev)
        key = (src * n + dst)[keep]
        perm, pos, size, uc = group_positions(key)
        # The last event of a directed pair in the batch gives its sign.
        key = uc[0]
        sgn = torch.where(sign[keep][perm[pos == size - 1]] > 0, 1, -1).to(torch.int8)
        # u -> w sets the "out" sign of entry (u, w) and the "in" sign of entry (w, u).
        back = (key % n) * n + key // n
        entry, inverse = torch.unique(torch.cat([key, back]), return_inverse=True)
        updates = []
        for rows in (inverse[:key.numel()], inverse[key.numel():]):
            values = torch.zeros(entry.numel(), dtype=torch.int8, device=dev)
            mask = torch.zeros(entry.numel(), dtype=torch.bool, device=dev)
            values[rows], mask[rows] = sgn, True
            updates.append((values, mask))
        self.tables.update(entry, updates)

    @torch.no_grad()
    def query(self, u: Tensor, v: Tensor) -> Tensor:
        """Triad features of pairs ``u[i] -> v[i]`` (``[len(u), NUM_TRIAD_FEATURES]``)."""
        p, n, dev = u.numel(), self.num_nodes, u.device
        out = torch.zeros(p, NUM_TRIAD_FEATURES, device=dev)
        if p == 0 or len(self.tables) == 0:
            return out
        self.tables.to(dev)
        tables = (self.tables.main, self.tables.recent)
        ranges_u = [_node_range(t[0], u, n) for t in tables]
        ranges_v = [_node_range(t[0], v, n) for t in tables]
        # Expand the endpoint with fewer neighbours; look the other one's entries up.
        from_u = ranges_u[0][1] + ranges_u[1][1] <= ranges_v[0][1] + ranges_v[1][1]
        other = torch.where(from_u, v, u)
        parts = []
        for t, ru, rv in zip(tables, ranges_u, ranges_v, strict=True):
            start = torch.where(from_u, ru[0], rv[0])
            deg = torch.where(from_u, ru[1], rv[1])
            pair = torch.repeat_interleave(torch.arange(p, device=dev), deg)
            first = torch.cumsum(deg, 0) - deg
            pos = start[pair] + torch.arange(pair.numel(), device=dev) - first[pair]
            parts.append((pair, t[0][pos] % n, t[1][pos], t[2][pos]))
        pair, w, x_out, x_in = (torch.cat(c) for c in zip(*parts, strict=True))
        if pair.numel() == 0:
            return out
        # The other endpoint's entry (x, w); every stored entry holds at least one sign,
        # so an absent one reads as two zeros.
        o_out, o_in = self.tables.lookup(other[pair] * n + w)
        found = ((o_out != 0) | (o_in != 0)) & (w != u[pair]) & (w != v[pair])
        pair, fu = pair[found], from_u[pair[found]]
        x_out, x_in, o_out, o_in = x_out[found], x_in[found], o_out[found], o_in[found]
        # Signs seen from u (x = u) and from v (x = v): out = x -> w, in = w -> x.
        u_out = torch.where(fu, x_out, o_out).long()
        u_in = torch.where(fu, x_in, o_in).long()
        v_out = torch.where(fu, o_out, x_out).long()
        v_in = torch.where(fu, o_in, x_in).long()
        counts = torch.zeros(p * 16, device=dev)
        balance = torch.zeros(p, device=dev)
        status = torch.zeros(p, device=dev)
        total = torch.zeros(p, device=dev)
        # (du, sign of the u-w edge, x), (dv, sign of the w-v edge, y).
        legs_u = ((0, u_out, 1), (1, u_in, -1))
        legs_v = ((0, v_in, 1), (1, v_out, -1))
        for du, su, xu in legs_u:
            for dv, sv, yv in legs_v:
                ok = (su != 0) & (sv != 0)
                typ = ((du * 2 + (su < 0).long()) * 2 + dv) * 2 + (sv < 0).long()
                okf = ok.float()
                counts.index_add_(0, pair * 16 + typ, okf)
                balance.index_add_(0, pair, okf * (su * sv).float())
                status.index_add_(0, pair, okf * (xu * su + yv * sv).float() / 2)
                total.index_add_(0, pair, okf)
        out[:, :16] = torch.log1p(counts.view(p, 16))
        out[:, 16] = torch.log1p(torch.zeros(p, device=dev).index_add_(
            0, pair, torch.ones_like(pair, dtype=torch.float)))
        out[:, 17] = balance / total.clamp(min=1.0)
        out[:, 18] = status / total.clamp(min=1.0)
        return out


def _node_range(keys: Tensor, nodes: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """First row and number of rows of each node's entries in a sorted key table."""
    start = torch.searchsorted(keys, nodes * n)
    return start, torch.searchsorted(keys, (nodes + 1) * n) - start
