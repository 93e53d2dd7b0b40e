"""Leakage-free online features of node pairs, computed from past events only.

:class:`OnlineFeatures` keeps per-node counters and a pair table, updated only by
:meth:`OnlineFeatures.observe` with true events; :meth:`OnlineFeatures.query` reads them
for any ``(u, v)`` pair as they stood before the current batch. The same state serves
the model's heads (all features) and the feature-based baselines (the count features).

Features (``FEATURE_NAMES``), for a pair ``u -> v`` at reference time ``t``:
counts (log1p) of positive/negative interactions ``u`` and ``v`` received and gave,
log1p pair counts ``u->v`` and ``v->u``; ``v``'s smoothed share of negatives received,
mean signed weight received and min(0, signed weights received); ``u``'s smoothed share
of negatives given and mean signed weight given; ``v``'s last received sign and log1p
time since, ``u``'s last given sign and log1p time since; event-count EMAs of negatives
given by ``u`` and received by ``v``; the last sign ``u->v`` and ``v->u`` (0 if none);
goodness of ``v`` and fairness of ``u`` (Kumar et al., ICDM 2016) over all past events;
log1p ages of ``v`` and ``u`` since first seen (-1 when unseen).

With ``activity=True`` (not with ``counts_only``) the recent activity of both ends
follows (``ACTIVITY_NAMES``): log1p time-decayed counts of events received and given by
``u`` and ``v`` with half-lives of 1, 7 and 30 time units (days for imported networks),
decayed to the reference time. With ``triads=True`` the signed-triad features of
:mod:`models.triads` (``TRIAD_NAMES``) come last, with or without ``counts_only``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.memory import group_positions
from models.sorted_tables import SortedTables
from models.triads import NUM_TRIAD_FEATURES, SignedTriads

__all__ = [
    "ACTIVITY_NAMES", "COUNT_FEATURES", "FEATURE_NAMES", "HALF_LIVES", "NUM_FEATURES",
    "OnlineFeatures", "PairTable", "feature_dim",
]

FEATURE_NAMES = (
    "u_in_pos", "u_in_neg", "u_out_pos", "u_out_neg",
    "v_in_pos", "v_in_neg", "v_out_pos", "v_out_neg",
    "pair_count_uv", "pair_count_vu",
    "v_neg_share_in", "v_mean_sw_in", "v_min_sw_in", "u_neg_share_out", "u_mean_sw_out",
    "v_last_in_sign", "v_since_last_in", "u_last_out_sign", "u_since_last_out",
    "u_ema_neg_out", "v_ema_neg_in", "pair_last_sign_uv", "pair_last_sign_vu",
    "v_goodness", "u_fairness", "v_age", "u_age",
)
NUM_FEATURES = len(FEATURE_NAMES)
COUNT_FEATURES = tuple(range(10))
"""Indices of the degree and sign-count features (what the count baselines read)."""


HALF_LIVES = (1.0, 7.0, 30.0)
"""Half-lives (time units) of the decayed activity counts."""
ACTIVITY_NAMES = tuple(f"{end}_{way}_rate_{h:g}" for end in ("u", "v") for way in ("in", "out")
                       for h in HALF_LIVES)


def feature_dim(triads: bool, counts_only: bool = False, activity: bool = False) -> int:
    """Columns returned by :meth:`OnlineFeatures.query` with these settings."""
    base = len(COUNT_FEATURES) if counts_only else NUM_FEATURES
    if activity and not counts_only:
        base += len(ACTIVITY_NAMES)
    return base + (NUM_TRIAD_FEATURES if triads else 0)


_PRIOR_NEG = 0.1  # smoothing prior for negative shares
_EMA = 0.7  # per-event decay of the negativity EMAs


class PairTable:
    """Count, last sign and last time of every directed pair seen so far.

    Kept on the CPU as sorted key tables (:class:`models.sorted_tables.SortedTables`,
    key ``u * num_nodes + v``): 24 bytes per pair, where a Python dict took 160-220
    (``benchmarks/bench_pairs.py``).

    Args:
        num_nodes: Number of nodes.
        min_recent: Pairs the recent table may hold before it is merged into the main one.
    """

    def __init__(self, num_nodes: int, min_recent: int = 65_536) -> None:
        self.num_nodes = num_nodes
        self.tables = SortedTables((torch.int32, torch.float32, torch.float64), min_recent)

    def reset(self) -> None:
        """Forget every pair."""
        self.tables.reset()

    def __len__(self) -> int:
        return len(self.tables)

    def nbytes(self) -> int:
        """Bytes held by the table."""
        return self.tables.nbytes()

    def table(self) -> tuple[Tensor, ...]:
        """``(keys, count, last sign, last time)`` of every pair, sorted by key."""
        return self.tables.table()

    def state(self) -> tuple[Tensor, ...]:
        """A copy of the table."""
        return self.tables.state()

    def load_state(self, state: tuple[Tensor, ...]) -> None:
        """Restore what :meth:`state` returned."""
        self.tables.load_state(state)

    def lookup(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(count, last_sign, last_time)`` of each pair ``u[i] -> v[i]`` (zeros if unseen)."""
        count, sign, t = self.tables.lookup(u.cpu() * self.num_nodes + v.cpu())
        return count.float().to(u.device), sign.to(u.device), t.to(u.device)

    def observe(self, u: Tensor, v: Tensor, sign: Tensor, t: Tensor) -> None:
        """Record true events in order (a pair's last event in the batch sets its sign)."""
        perm, pos, size, uc = group_positions(u.cpu() * self.num_nodes + v.cpu())
        last = perm[pos == size - 1]  # each pair's last event of the batch
        key, repeats = uc[0], uc[1]
        count = self.tables.lookup(key)[0] + repeats.to(torch.int32)
        every = torch.ones_like(key, dtype=torch.bool)
        self.tables.update(key, [(count, every), (sign.cpu()[last].float(), every),
                                 (t.cpu()[last].double(), every)])


class OnlineFeatures(nn.Module):
    """Per-node counters and pair history for leakage-free pair features.

    Args:
        num_nodes: Number of nodes.
        fg_iters: Fairness/goodness iterations per refresh (warm-started over all past
            events); 0 switches fairness and goodness off (they stay 1 and 0).
        fg_growth: Refresh fairness/goodness once the history has grown by this fraction
            since the last refresh (0: after every observed batch). Each refresh passes
            over the whole history, so refreshing after every batch costs O(history) per
            batch; with ``g > 0`` the refreshes cost about ``(1 + g) / g`` passes over
            the final history in all, and between them the values stay as last computed
            (from revealed events only, so still leakage-free).
        triads: Also keep the signed-triad index and append its features.
        activity: Also keep time-decayed activity counts and append them.
    """

    in_pos: Tensor
    in_neg: Tensor
    out_pos: Tensor
    out_neg: Tensor
    in_sw: Tensor
    out_sw: Tensor
    in_min: Tensor
    last_in_sign: Tensor
    last_out_sign: Tensor
    ema_in: Tensor
    ema_out: Tensor
    goodness: Tensor
    last_in_t: Tensor
    last_out_t: Tensor
    first_t: Tensor
    fairness: Tensor
    in_rate: Tensor
    out_rate: Tensor
    _tau: Tensor

    def __init__(self, num_nodes: int, fg_iters: int = 1, triads: bool = False,
                 activity: bool = False, fg_growth: float = 0.0) -> None:
        super().__init__()
        if fg_growth < 0:
            raise ValueError(f"fg_growth must be >= 0, got {fg_growth}")
        self.num_nodes = num_nodes
        self.fg_iters = fg_iters
        self.fg_growth = fg_growth
        self.activity = activity
        self.triads = SignedTriads(num_nodes) if triads else None
        k = len(HALF_LIVES)
        self.register_buffer("in_rate", torch.zeros(num_nodes, k), persistent=False)
        self.register_buffer("out_rate", torch.zeros(num_nodes, k), persistent=False)
        self.register_buffer("_tau", torch.tensor(HALF_LIVES) / math.log(2.0),
                             persistent=False)
        for name in ("in_pos", "in_neg", "out_pos", "out_neg", "in_sw", "out_sw", "in_min",
                     "last_in_sign", "last_out_sign", "ema_in", "ema_out", "goodness"):
            self.register_buffer(name, torch.zeros(num_nodes), persistent=False)
        for name in ("last_in_t", "last_out_t", "first_t"):
            self.register_buffer(name, torch.full((num_nodes,), -1.0), persistent=False)
        self.register_buffer("fairness", torch.ones(num_nodes), persistent=False)
        self.pairs = PairTable(num_nodes)
        # All past events for fairness/goodness, in buffers grown by doubling.
        self._hist_n = 0
        self._hist_src = torch.zeros(0, dtype=torch.long)
        self._hist_dst = torch.zeros(0, dtype=torch.long)
        self._hist_sw = torch.zeros(0)
        self._fg_at = 0  # history length at the last fairness/goodness refresh

    def reset_state(self) -> None:
        """Forget every event."""
        for name in ("in_pos", "in_neg", "out_pos", "out_neg", "in_sw", "out_sw", "in_min",
                     "last_in_sign", "last_out_sign", "ema_in", "ema_out", "goodness"):
            getattr(self, name).zero_()
        for name in ("last_in_t", "last_out_t", "first_t"):
            getattr(self, name).fill_(-1.0)
        self.fairness.fill_(1.0)
        self.in_rate.zero_()
        self.out_rate.zero_()
        self.pairs.reset()
        self._hist_n = 0
        self._fg_at = 0
        if self.triads is not None:
            self.triads.reset(self.in_pos.device)

    def extra_state(self) -> tuple[object, ...]:
        """The state kept outside buffers (pair table, history lengths, triad index)."""
        triads = self.triads.state() if self.triads is not None else None
        return (self.pairs.state(), self._hist_n, triads, self._fg_at)

    def load_extra_state(self, state: tuple[object, ...]) -> None:
        """Restore what :meth:`extra_state` returned (the history buffers only grow)."""
        table, hist_n, triads, fg_at = state
        self.pairs.load_state(table)  # type: ignore[arg-type]
        self._hist_n = int(hist_n)  # type: ignore[call-overload]
        self._fg_at = int(fg_at)  # type: ignore[call-overload]
        if self.triads is not None and triads is not None:
            self.triads.load_state(triads)  # type: ignore[arg-type]

    @torch.no_grad()
    def query(self, u: Tensor, v: Tensor, t_ref: float, *, counts_only: bool = False) -> Tensor:
        """Features of pairs ``u[i] -> v[i]`` as of before the current batch.

        Args:
            u: Source node indices.
            v: Destination node indices.
            t_ref: Reference time (the current batch's first event time).
            counts_only: Return only :data:`COUNT_FEATURES` (and the triad features when
                they are on).

        Returns:
            ``[len(u), feature_dim(triads, counts_only)]`` float tensor.
        """
        both = self.pairs.lookup(torch.cat([u, v]), torch.cat([v, u]))
        c_uv, c_vu = both[0].chunk(2)
        s_uv, s_vu = both[1].chunk(2)
        cols = [
            self.in_pos[u], self.in_neg[u], self.out_pos[u], self.out_neg[u],
            self.in_pos[v], self.in_neg[v], self.out_pos[v], self.out_neg[v], c_uv, c_vu,
        ]
        counts = torch.log1p(torch.stack(cols, dim=-1))
        tri = [self.triads.query(u, v)] if self.triads is not None else []
        if counts_only:
            return torch.cat([counts, *tri], dim=-1)
        in_deg = self.in_pos[v] + self.in_neg[v]
        out_deg = self.out_pos[u] + self.out_neg[u]

        def since(last: Tensor) -> Tensor:
            return torch.where(last >= 0, torch.log1p((t_ref - last).clamp(min=0)), -1.0)

        rest = [
            (self.in_neg[v] + _PRIOR_NEG) / (in_deg + 1.0),
            self.in_sw[v] / in_deg.clamp(min=1.0),
            self.in_min[v],
            (self.out_neg[u] + _PRIOR_NEG) / (out_deg + 1.0),
            self.out_sw[u] / out_deg.clamp(min=1.0),
            self.last_in_sign[v], since(self.last_in_t[v]),
            self.last_out_sign[u], since(self.last_out_t[u]),
            self.ema_out[u], self.ema_in[v], s_uv, s_vu,
            self.goodness[v], self.fairness[u],
            since(self.first_t[v]), since(self.first_t[u]),
        ]
        act = []
        if self.activity:
            ways = ((self.in_rate, self.last_in_t), (self.out_rate, self.last_out_t))
            for node in (u, v):
                for rate, last in ways:
                    dt = (t_ref - last[node]).clamp(min=0).unsqueeze(-1)
                    act.append(torch.log1p(rate[node] * torch.exp(-dt / self._tau)))
        return torch.cat([counts, torch.stack(rest, dim=-1), *act, *tri], dim=-1)

    @torch.no_grad()
    def observe(self, src: Tensor, dst: Tensor, t: Tensor, sign: Tensor, weight: Tensor) -> None:
        """Update every counter with a batch of true events."""
        if src.numel() == 0:
            return
        pos = (sign > 0).to(self.in_pos.dtype)
        neg = 1.0 - pos
        sw = sign * weight
        self.in_pos.index_add_(0, dst, pos)
        self.in_neg.index_add_(0, dst, neg)
        self.out_pos.index_add_(0, src, pos)
        self.out_neg.index_add_(0, src, neg)
        self.in_sw.index_add_(0, dst, sw)
        self.out_sw.index_add_(0, src, sw)
        self.in_min.scatter_reduce_(0, dst, sw, reduce="amin", include_self=True)
        both = torch.cat([src, dst])
        first = torch.full_like(self.first_t, float("inf"))
        first.scatter_reduce_(0, both, t.repeat(2), reduce="amin", include_self=True)
        self.first_t.copy_(torch.where(self.first_t < 0, first, self.first_t))
        self.first_t[torch.isinf(self.first_t)] = -1.0
        if self.activity:
            self._decayed_count(dst, t, self.in_rate, self.last_in_t)
            self._decayed_count(src, t, self.out_rate, self.last_out_t)
        self._last_and_ema(dst, t, sign, neg, self.last_in_t, self.last_in_sign, self.ema_in)
        self._last_and_ema(src, t, sign, neg, self.last_out_t, self.last_out_sign, self.ema_out)
        self.pairs.observe(src, dst, sign, t)
        if self.triads is not None:
            self.triads.observe(src, dst, sign)
        if self.fg_iters > 0:
            self._remember(src, dst, sw)
            if self._hist_n - self._fg_at >= self.fg_growth * self._fg_at:
                self._fairness_goodness()
                self._fg_at = self._hist_n

    def _decayed_count(self, node: Tensor, t: Tensor, rate: Tensor, last_t: Tensor) -> None:
        """Add a batch to decayed counts held as of each node's last event (``last_t``)."""
        new_last = last_t.clone().scatter_reduce_(0, node, t, reduce="amax", include_self=True)
        gap = (new_last - last_t).clamp(min=0).unsqueeze(-1)
        rate.mul_(torch.exp(-gap / self._tau))
        rate.index_add_(0, node, torch.exp(-(new_last[node] - t).unsqueeze(-1) / self._tau))

    def _last_and_ema(
        self, node: Tensor, t: Tensor, sign: Tensor, neg: Tensor,
        last_t: Tensor, last_sign: Tensor, ema: Tensor,
    ) -> None:
        perm, pos, size, uc = group_positions(node)
        ns = node[perm]
        is_last = pos == size - 1
        last_t[ns[is_last]] = t[perm][is_last]
        last_sign[ns[is_last]] = sign[perm][is_last]
        # Sequential EMA over a node's events in order, in closed form.
        w = (1 - _EMA) * torch.pow(torch.full_like(t, _EMA), (size - 1 - pos).to(t.dtype))
        add = torch.zeros_like(ema).index_add_(0, ns, w * neg[perm])
        decay = torch.pow(torch.full_like(ema[uc[0]], _EMA), uc[1].to(ema.dtype))
        ema[uc[0]] = ema[uc[0]] * decay
        ema.add_(add)

    def _remember(self, src: Tensor, dst: Tensor, sw: Tensor) -> None:
        n, b = self._hist_n, src.numel()
        if n + b > self._hist_src.numel() or self._hist_src.device != src.device:
            cap = max(2 * (n + b), 1024)
            for name, like in (("_hist_src", src), ("_hist_dst", dst), ("_hist_sw", sw)):
                grown = torch.zeros(cap, dtype=like.dtype, device=like.device)
                grown[:n] = getattr(self, name)[:n].to(like.device)
                setattr(self, name, grown)
        self._hist_src[n:n + b] = src
        self._hist_dst[n:n + b] = dst
        self._hist_sw[n:n + b] = sw
        self._hist_n = n + b

    def _fairness_goodness(self) -> None:
        m = self._hist_n
        s, d, w = self._hist_src[:m], self._hist_dst[:m], self._hist_sw[:m]
        n = self.num_nodes
        # Every remembered event is counted once by sign, so these are the degrees.
        in_deg, out_deg = self.in_pos + self.in_neg, self.out_pos + self.out_neg
        fair, good = self.fairness, self.goodness
        for _ in range(self.fg_iters):
            good = torch.zeros(n, device=w.device).index_add_(0, d, fair[s] * w)
            good = good / in_deg.clamp(min=1.0)
            err = torch.zeros(n, device=w.device).index_add_(0, s, (w - good[d]).abs() / 2)
            fair = torch.where(out_deg > 0, 1.0 - err / out_deg.clamp(min=1.0), 1.0)
        self.fairness.copy_(fair)
        self.goodness.copy_(good)

    def state_nbytes_per_node(self) -> float:
        """Approximate bytes of state per node (counters plus pair table entries)."""
        tensors = sum(b.numel() * b.element_size() for b in self.buffers())
        edges = sum(x.numel() * x.element_size()
                    for x in (self._hist_src, self._hist_dst, self._hist_sw))
        pair_bytes = self.pairs.nbytes()
        triads = self.triads.nbytes() if self.triads is not None else 0
        return (tensors + edges + pair_bytes + triads) / max(self.num_nodes, 1)
