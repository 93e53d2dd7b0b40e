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
absent), rebuilt on :meth:`SignedTriads.observe`. A query expands, for each pair, the
neighbours of its endpoint of smaller degree and looks the other endpoint's entries up
by binary search: all tensor operations, on any device.
"""

from __future__ import annotations

import torch
from torch import Tensor

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

    Args:
        num_nodes: Number of nodes.
    """

    def __init__(self, num_nodes: int) -> None:
        self.num_nodes = num_nodes
        self.reset()

    def reset(self, device: torch.device | str | None = None) -> None:
        """Forget every edge."""
        dev = torch.device("cpu") if device is None else torch.device(device)
        # Directed table: sorted keys src * n + dst and latest sign (+1/-1).
        self.dkey = torch.zeros(0, dtype=torch.long, device=dev)
        self.dsign = torch.zeros(0, dtype=torch.int8, device=dev)
        # Undirected neighbour entries: sorted keys x * n + w; sign of x -> w, of w -> x.
        self.nkey = torch.zeros(0, dtype=torch.long, device=dev)
        self.nout = torch.zeros(0, dtype=torch.int8, device=dev)
        self.nin = torch.zeros(0, dtype=torch.int8, device=dev)

    def __len__(self) -> int:
        """Number of directed pairs seen."""
        return int(self.dkey.numel())

    def state(self) -> tuple[Tensor, ...]:
        """The whole state (tensors are replaced, never modified, by :meth:`observe`)."""
        return (self.dkey, self.dsign, self.nkey, self.nout, self.nin)

    def load_state(self, state: tuple[Tensor, ...]) -> None:
        """Restore a state returned by :meth:`state`."""
        self.dkey, self.dsign, self.nkey, self.nout, self.nin = state

    def nbytes(self) -> int:
        """Bytes held by the tables."""
        return sum(x.numel() * x.element_size() for x in self.state())

    @torch.no_grad()
    def observe(self, src: Tensor, dst: Tensor, sign: Tensor) -> None:
        """Record true events in order (a later event of a directed pair replaces its sign)."""
        if src.numel() == 0:
            return
        n, dev = self.num_nodes, src.device
        if self.dkey.device != dev:
            self.load_state(tuple(x.to(dev) for x in self.state()))
        keep = src != dst
        key = torch.cat([self.dkey, (src * n + dst)[keep]])
        sgn = torch.cat([self.dsign, torch.where(sign[keep] > 0, 1, -1).to(torch.int8)])
        # Stable sort: the last occurrence of a key is the latest sign.
        key, order = torch.sort(key, stable=True)
        sgn = sgn[order]
        last = torch.ones_like(key, dtype=torch.bool)
        last[:-1] = key[1:] != key[:-1]
        self.dkey, self.dsign = key[last], sgn[last]
        a, b = self.dkey // n, self.dkey % n
        both = torch.cat([a * n + b, b * n + a])
        zero = torch.zeros_like(self.dsign)
        out = torch.cat([self.dsign, zero])
        inn = torch.cat([zero, self.dsign])
        nkey, inverse = torch.unique(both, return_inverse=True)
        # Each directed pair appears once, so every entry gets at most one of each sign.
        self.nkey = nkey
        self.nout = torch.zeros(nkey.numel(), dtype=torch.int8, device=dev).index_add_(
            0, inverse, out)
        self.nin = torch.zeros(nkey.numel(), dtype=torch.int8, device=dev).index_add_(
            0, inverse, inn)

    @torch.no_grad()
    def query(self, u: Tensor, v: Tensor) -> Tensor:
        """Triad features of pairs ``u[i] -> v[i]`` (``[len(u), NUM_TRIAD_FEATURES]``)."""
        p, n, dev = u.numel(), self.num_nodes, u.device
        out = torch.zeros(p, NUM_TRIAD_FEATURES, device=dev)
        if p == 0 or self.nkey.numel() == 0:
            return out
        nkey, nout, nin = self.nkey.to(dev), self.nout.to(dev), self.nin.to(dev)
        start_u = torch.searchsorted(nkey, u * n)
        deg_u = torch.searchsorted(nkey, (u + 1) * n) - start_u
        start_v = torch.searchsorted(nkey, v * n)
        deg_v = torch.searchsorted(nkey, (v + 1) * n) - start_v
        # Expand the endpoint with fewer neighbours; look the other one's entries up.
        from_u = deg_u <= deg_v
        start = torch.where(from_u, start_u, start_v)
        deg = torch.where(from_u, deg_u, deg_v)
        other = torch.where(from_u, v, u)
        pair = torch.repeat_interleave(torch.arange(p, device=dev), deg)
        if pair.numel() == 0:
            return out
        first = torch.cumsum(deg, 0) - deg
        pos = start[pair] + torch.arange(pair.numel(), device=dev) - first[pair]
        w = nkey[pos] % n
        look = other[pair] * n + w
        hit = torch.searchsorted(nkey, look).clamp(max=nkey.numel() - 1)
        found = (nkey[hit] == look) & (w != u[pair]) & (w != v[pair])
        pair, pos, hit = pair[found], pos[found], hit[found]
        fu = from_u[pair]
        # Signs seen from u (x = u) and from v (x = v): out = x -> w, in = w -> x.
        u_out = torch.where(fu, nout[pos], nout[hit]).long()
        u_in = torch.where(fu, nin[pos], nin[hit]).long()
        v_out = torch.where(fu, nout[hit], nout[pos]).long()
        v_in = torch.where(fu, nin[hit], nin[pos]).long()
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
