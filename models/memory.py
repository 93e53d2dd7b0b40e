"""Node state: signed memories with pending messages, and recent-neighbour buffers.

Memory semantics (as in TGN, with dense tensors instead of per-node dictionaries): each
node keeps its persisted memory plus up to ``slots`` *pending* events from the last
batch it took part in. Reading a node's memory applies its pending events (messages,
aggregation, GRU) on the fly without changing the state, so gradients reach the message
functions and GRUs; observing a new batch first persists the pending updates of the
nodes involved, then stores the batch's events as their new pending events. The memory
read before a batch therefore always reflects every earlier event and nothing of the
batch itself, and only true events ever change the state. A pending event's message
reads the partner's persisted memory at the time it is applied (as PyG's TGNMemory).

Balanced aggregation (SEMBA): for an event of sign ``sigma`` between ``i`` and ``j``
the message into ``i``'s positive memory reads ``j``'s positive memory when ``sigma=+1``
(a friend's friend) and ``j``'s negative memory when ``sigma=-1`` (an enemy's enemy); the
message into ``i``'s negative memory reads ``j``'s negative memory when ``sigma=+1`` (a
friend's enemy) and ``j``'s positive memory when ``sigma=-1`` (an enemy's friend).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.modules import EDGE_DIM, TimeEncoder

__all__ = ["RecentNeighbors", "SignedMemory", "group_positions", "state_nbytes"]


def group_positions(node: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Stable-sort entries by node and number them within each node's group.

    Args:
        node: ``[m]`` node id of each entry, in event order.

    Returns:
        ``(perm, pos, size, uc)``: ``perm`` sorts the entries by node (event order kept
        inside a node), ``pos`` is each sorted entry's 0-based position within its node,
        ``size`` its node's number of entries, and ``uc`` stacks the distinct nodes and
        their entry counts as a ``[2, u]`` tensor.
    """
    perm = torch.sort(node, stable=True).indices
    ns = node[perm]
    uniq, counts = torch.unique_consecutive(ns, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(ns.numel(), device=node.device) - torch.repeat_interleave(starts, counts)
    size = torch.repeat_interleave(counts, counts)
    return perm, pos, size, torch.stack([uniq, counts])


def state_nbytes(module: nn.Module) -> int:
    """Bytes held by a module's non-persistent buffers (its per-node state)."""
    total = 0
    for name, buf in module.named_buffers():
        owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
        if name.rsplit(".", 1)[-1] in owner._non_persistent_buffers_set:
            total += buf.numel() * buf.element_size()
    return total


class SignedMemory(nn.Module):
    """One or two memories per node, updated by sign-specific messages and GRUs.

    Args:
        num_nodes: Number of nodes.
        memory_dim: Size of each memory.
        time_enc: Time encoder for ``dt`` since the node's last update.
        message_modules: One message function (used for every sign) or two (index 0 for
            positive events, index 1 for negative events).
        grus: One ``GRUCell`` per memory: one (unsigned) or two (positive, negative).
        aggregator: Reduces a node's pending messages (``[n, slots, h]`` and counts).
        balanced: Route partner memories as in SEMBA's balanced aggregation (two memories
            only); when False each memory reads the partner's memory of the same kind.
        slots: Pending events kept per node (1 is exact for the last aggregator).
    """

    memory: Tensor
    last_update: Tensor
    pend_other: Tensor
    pend_t: Tensor
    pend_edge: Tensor
    pend_count: Tensor

    def __init__(
        self,
        num_nodes: int,
        memory_dim: int,
        time_enc: TimeEncoder,
        message_modules: nn.ModuleList,
        grus: nn.ModuleList,
        aggregator: nn.Module,
        *,
        balanced: bool,
        slots: int = 1,
    ) -> None:
        super().__init__()
        if len(grus) not in (1, 2) or len(message_modules) not in (1, 2):
            raise ValueError("need one or two memories and one or two message functions")
        if balanced and len(grus) != 2:
            raise ValueError("balanced aggregation needs two memories")
        self.num_nodes = num_nodes
        self.memory_dim = memory_dim
        self.n_mem = len(grus)
        self.time_enc = time_enc
        self.msg = message_modules
        self.grus = grus
        self.aggr = aggregator
        self.balanced = balanced
        self.slots = slots
        n, p = num_nodes, slots
        self.register_buffer("memory", torch.zeros(self.n_mem, n, memory_dim), persistent=False)
        self.register_buffer("last_update", torch.zeros(n), persistent=False)
        self.register_buffer("pend_other", torch.zeros(n, p, dtype=torch.long), persistent=False)
        self.register_buffer("pend_t", torch.zeros(n, p), persistent=False)
        self.register_buffer("pend_edge", torch.zeros(n, p, EDGE_DIM), persistent=False)
        self.register_buffer("pend_count", torch.zeros(n, dtype=torch.long), persistent=False)

    def reset_parameters(self) -> None:
        """Re-initialise message functions and GRUs (the time encoder is reset by its owner)."""
        for m in self.msg:
            m.reset_parameters()  # type: ignore[operator]
        for g in self.grus:
            g.reset_parameters()  # type: ignore[operator]
        self.reset_state()

    def reset_state(self) -> None:
        """Forget everything: zero memories, no pending events."""
        self.memory.zero_()
        self.last_update.zero_()
        self.pend_count.zero_()

    def forward(self, n_id: Tensor) -> tuple[Tensor, Tensor]:
        """Current memory of ``n_id`` (pending events applied, differentiable).

        Returns:
            ``(memory[n_mem, len(n_id), memory_dim], last_update[len(n_id)])``.
        """
        mem = self.memory.index_select(1, n_id)
        last = self.last_update.index_select(0, n_id)
        count = self.pend_count.index_select(0, n_id)
        has = (count > 0).nonzero().squeeze(-1)
        if has.numel() == 0:
            return mem, last
        p, n = self.slots, self.num_nodes
        rows = n_id.index_select(0, has)
        cnt = count.index_select(0, has)
        if p == 1:
            node, flat = rows, rows
        else:
            valid = torch.arange(p, device=n_id.device).unsqueeze(0) < cnt.unsqueeze(1)
            r_idx, s_idx = valid.nonzero(as_tuple=True)
            node = rows.index_select(0, r_idx)
            flat = node * p + s_idx
        other = self.pend_other.view(-1).index_select(0, flat)
        t_p = self.pend_t.view(-1).index_select(0, flat)
        edge = self.pend_edge.view(-1, EDGE_DIM).index_select(0, flat)
        t_enc = self.time_enc(t_p - self.last_update.index_select(0, node))
        positive = edge[:, 0] > 0
        all_mem = self.memory.view(self.n_mem * n, self.memory_dim)
        new = []
        for m in range(self.n_mem):
            s_self = self.memory[m].index_select(0, node)
            if self.balanced:
                partner = torch.where(positive, m, 1 - m)
                s_other = all_mem.index_select(0, partner * n + other)
            else:
                s_other = self.memory[m].index_select(0, other)
            msg = self._message(s_self, s_other, t_enc, edge, positive)
            if p == 1:  # one pending event per node: every aggregator is the identity
                aggr, h_prev = msg, s_self
            else:
                buf = msg.new_zeros(rows.numel(), p, msg.shape[-1])
                buf = buf.index_put((r_idx, s_idx), msg)
                aggr, h_prev = self.aggr(buf, cnt), self.memory[m].index_select(0, rows)
            new.append(self.grus[m](aggr, h_prev))
        mem = mem.index_copy(1, has, torch.stack(new))
        last_t = self.pend_t.view(-1).index_select(0, rows * p + cnt - 1)
        return mem, last.index_copy(0, has, last_t)

    def _message(
        self, s_self: Tensor, s_other: Tensor, t_enc: Tensor, edge: Tensor, positive: Tensor
    ) -> Tensor:
        if len(self.msg) == 1:
            return self.msg[0](s_self, s_other, t_enc, edge)
        pos = self.msg[0](s_self, s_other, t_enc, edge)
        neg = self.msg[1](s_self, s_other, t_enc, edge)
        return torch.where(positive.unsqueeze(-1), pos, neg)

    @torch.no_grad()
    def persist(self, n_id: Tensor) -> Tensor:
        """Apply and clear the pending events of ``n_id`` (unique); return their memory."""
        if n_id.numel() and bool((self.pend_count[n_id] > 0).any()):
            mem, last = self.forward(n_id)
            self.memory[:, n_id] = mem
            self.last_update[n_id] = last
            self.pend_count[n_id] = 0
            return mem
        return self.memory[:, n_id]

    @torch.no_grad()
    def persist_values(self, n_id: Tensor, mem: Tensor, last: Tensor) -> None:
        """Persist memories already computed by :meth:`forward` for ``n_id`` (unique)."""
        self.memory[:, n_id] = mem
        self.last_update[n_id] = last
        self.pend_count[n_id] = 0

    @torch.no_grad()
    def observe(
        self, src: Tensor, dst: Tensor, t: Tensor, sign: Tensor, weight: Tensor,
        computed: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> None:
        """Write a batch of true events: persist old pending events, store the new ones.

        Args:
            src: Sources.
            dst: Destinations.
            t: Times.
            sign: Signs.
            weight: Weights.
            computed: ``(n_id, memory, last_update)`` that :meth:`forward` returned for
                this state (reused instead of recomputing those nodes' updates).
        """
        b = src.numel()
        if b == 0:
            return
        node = torch.cat([src, dst])
        todo = torch.unique(node)
        if computed is not None:
            c_id, c_mem, c_last = computed
            use = torch.isin(c_id, todo)
            self.persist_values(c_id[use], c_mem[:, use].detach(), c_last[use])
            todo = todo[~torch.isin(todo, c_id)]
        self.persist(todo)
        other = torch.cat([dst, src])
        role = torch.cat([torch.zeros_like(t), torch.ones_like(t)])
        edge = torch.stack([sign.repeat(2), weight.repeat(2), role], dim=-1)
        # Entries in event order: event k as source (2k) then as destination (2k+1).
        order = torch.arange(2 * b, device=src.device).view(2, b).t().reshape(-1)
        node, other, edge = node[order], other[order], edge[order]
        tt = t.repeat(2)[order]
        perm, pos, size, uc = group_positions(node)
        keep_from = (size - self.slots).clamp(min=0)
        sel = pos >= keep_from
        idx = perm[sel]
        slot = (pos - keep_from)[sel]
        n_sel = node[idx]
        self.pend_other[n_sel, slot] = other[idx]
        self.pend_t[n_sel, slot] = tt[idx]
        self.pend_edge[n_sel, slot] = edge[idx]
        self.pend_count[uc[0]] = uc[1].clamp(max=self.slots)

    @torch.no_grad()
    def snapshot(self) -> Tensor:
        """Every node's current memory (pending applied), ``[n_mem, num_nodes, dim]``."""
        all_nodes = torch.arange(self.num_nodes, device=self.memory.device)
        return self.forward(all_nodes)[0]


class RecentNeighbors(nn.Module):
    """The ``size`` most recent interactions of every node (either direction).

    Each slot holds the neighbour, the time and edge features ``(sign, weight,
    direction)`` with direction 0 for an interaction the node made and 1 for one it
    received.

    Args:
        num_nodes: Number of nodes.
        size: Neighbours kept per node.
    """

    nbr: Tensor
    nbr_t: Tensor
    nbr_edge: Tensor
    count: Tensor

    def __init__(self, num_nodes: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("nbr", torch.zeros(num_nodes, size, dtype=torch.long),
                             persistent=False)
        self.register_buffer("nbr_t", torch.zeros(num_nodes, size), persistent=False)
        self.register_buffer("nbr_edge", torch.zeros(num_nodes, size, EDGE_DIM), persistent=False)
        self.register_buffer("count", torch.zeros(num_nodes, dtype=torch.long), persistent=False)

    def reset_state(self) -> None:
        """Forget every neighbour."""
        self.count.zero_()

    def forward(self, n_id: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Valid neighbour slots of ``n_id`` as an edge list.

        Returns:
            ``(row, neighbour, time, edge)``: for each stored interaction, the position
            in ``n_id`` of its node, the neighbour, the time and the edge features.
        """
        count = self.count.index_select(0, n_id).clamp(max=self.size)
        valid = torch.arange(self.size, device=n_id.device).unsqueeze(0) < count.unsqueeze(1)
        row, slot = valid.nonzero(as_tuple=True)
        flat = n_id.index_select(0, row) * self.size + slot
        return (row, self.nbr.view(-1).index_select(0, flat),
                self.nbr_t.view(-1).index_select(0, flat),
                self.nbr_edge.view(-1, EDGE_DIM).index_select(0, flat))

    @torch.no_grad()
    def observe(self, src: Tensor, dst: Tensor, t: Tensor, sign: Tensor, weight: Tensor) -> None:
        """Insert a batch of true events for both endpoints."""
        b = src.numel()
        if b == 0:
            return
        order = torch.arange(2 * b, device=src.device).view(2, b).t().reshape(-1)
        node = torch.cat([src, dst])[order]
        other = torch.cat([dst, src])[order]
        direction = torch.cat([torch.zeros_like(t), torch.ones_like(t)])
        edge = torch.stack([sign.repeat(2), weight.repeat(2), direction], dim=-1)[order]
        tt = t.repeat(2)[order]
        perm, pos, size, uc = group_positions(node)
        sel = pos >= (size - self.size).clamp(min=0)
        idx = perm[sel]
        n_sel = node[idx]
        slot = (self.count[n_sel] + pos[sel]) % self.size
        self.nbr[n_sel, slot] = other[idx]
        self.nbr_t[n_sel, slot] = tt[idx]
        self.nbr_edge[n_sel, slot] = edge[idx]
        self.count[uc[0]] += uc[1]
