"""Node state: signed memories with pending messages, and recent-neighbour buffers.

Memory semantics (as in TGN, with dense tensors instead of per-node dictionaries): each
node keeps its persisted memory plus up to ``slots`` *pending* events from the last
batch it took part in, and its *current* memory, the persisted one with the pending
events applied (messages, aggregation, GRU). Observing a batch persists the current
memories of the nodes involved, stores the batch's events as their new pending events and
brings their current memories up to date. A read without gradients returns the current
memory; a read with gradients applies the pending events again from the persisted memory
(same values), so that gradients reach the message functions and GRUs. The memory read
before a batch therefore always reflects every earlier event and nothing of the batch
itself, and only true events ever change the state.

A pending event keeps its partner's memories as they stood before the event's batch, so
its message is ``msg(s_i(t-), s_j(t-), phi(dt), e)`` with both memories from just before
the event, as the TGN paper defines it (Rossi et al., "Temporal Graph Networks for Deep
Learning on Dynamic Graphs", 2020, eq. 1), at batch granularity. (PyG's TGNMemory reads the
partner's memory when the pending event is applied instead, which makes every read of a
node with pending events cost a message and a GRU step; here a read costs an index.)

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
    pend_partner: Tensor
    pend_t: Tensor
    pend_edge: Tensor
    pend_count: Tensor
    current: Tensor
    current_last: Tensor

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
        n, p, k, d = num_nodes, slots, self.n_mem, memory_dim
        buffers = {
            "memory": torch.zeros(k, n, d),  # persisted: every event but the pending ones
            "last_update": torch.zeros(n),
            "pend_partner": torch.zeros(n, p, k, d),  # partner's memories before the event
            "pend_t": torch.zeros(n, p),
            "pend_edge": torch.zeros(n, p, EDGE_DIM),
            "pend_count": torch.zeros(n, dtype=torch.long),
            "current": torch.zeros(k, n, d),  # pending applied: what a read returns
            "current_last": torch.zeros(n),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)

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
        self.current.zero_()
        self.current_last.zero_()

    def forward(self, n_id: Tensor) -> tuple[Tensor, Tensor]:
        """Current memory of ``n_id``: differentiable when gradients are enabled.

        With gradients the pending events are applied again (so that the message
        functions and GRUs learn); without, the stored current memory is read.

        Returns:
            ``(memory[n_mem, len(n_id), memory_dim], last_update[len(n_id)])``.
        """
        if not torch.is_grad_enabled():
            return self.current.index_select(1, n_id), self.current_last.index_select(0, n_id)
        mem = self.memory.index_select(1, n_id)
        last = self.last_update.index_select(0, n_id)
        has = (self.pend_count.index_select(0, n_id) > 0).nonzero().squeeze(-1)
        if has.numel() == 0:
            return mem, last
        new, new_last = self._apply_pending(n_id.index_select(0, has))
        return mem.index_copy(1, has, new), last.index_copy(0, has, new_last)

    def _apply_pending(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Memories and last-update times of ``rows`` (nodes with pending events) updated."""
        p = self.slots
        cnt = self.pend_count.index_select(0, rows)
        if p == 1:
            r_idx = torch.arange(rows.numel(), device=rows.device)
            s_idx = torch.zeros_like(r_idx)
        else:
            valid = torch.arange(p, device=rows.device).unsqueeze(0) < cnt.unsqueeze(1)
            r_idx, s_idx = valid.nonzero(as_tuple=True)
        flat = rows.index_select(0, r_idx) * p + s_idx
        edge = self.pend_edge.view(-1, EDGE_DIM).index_select(0, flat)
        positive = edge[:, 0] > 0
        n_pos = -1
        if len(self.msg) == 2:  # positive entries first: each message function runs on a slice
            order = torch.argsort(positive.logical_not().to(torch.uint8), stable=True)
            r_idx, s_idx, flat = r_idx[order], s_idx[order], flat[order]
            edge, positive = edge[order], positive[order]
            n_pos = int(positive.sum())
        node = rows.index_select(0, r_idx)
        partner = self.pend_partner.view(-1, self.n_mem, self.memory_dim).index_select(0, flat)
        t_p = self.pend_t.view(-1).index_select(0, flat)
        t_enc = self.time_enc(t_p - self.last_update.index_select(0, node))
        new = []
        for m in range(self.n_mem):
            s_self = self.memory[m].index_select(0, node)
            if self.balanced:  # a positive event reads the same kind, a negative the other
                s_other = torch.where(positive.unsqueeze(-1), partner[:, m], partner[:, 1 - m])
            else:
                s_other = partner[:, m]
            msg = self._message(s_self, s_other, t_enc, edge, n_pos)
            if p == 1:  # one pending event per node: every aggregator is the identity
                aggr, h_prev = msg, s_self
            else:
                buf = msg.new_zeros(rows.numel(), p, msg.shape[-1])
                buf = buf.index_put((r_idx, s_idx), msg)
                aggr, h_prev = self.aggr(buf, cnt), self.memory[m].index_select(0, rows)
            new.append(self.grus[m](aggr, h_prev))
        out = torch.stack(new)
        if p == 1 and n_pos >= 0:  # back from sign order to the order of rows
            inv = torch.empty_like(r_idx)
            inv[r_idx] = torch.arange(r_idx.numel(), device=rows.device)
            out = out.index_select(1, inv)
        last_t = self.pend_t.view(-1).index_select(0, rows * p + cnt - 1)
        return out, last_t

    def _message(
        self, s_self: Tensor, s_other: Tensor, t_enc: Tensor, edge: Tensor, n_pos: int
    ) -> Tensor:
        """Messages of entries; with two functions the first ``n_pos`` entries are positive."""
        if n_pos < 0:
            return self.msg[0](s_self, s_other, t_enc, edge)
        parts = (s_self, s_other, t_enc, edge)
        pos = self.msg[0](*(x[:n_pos] for x in parts))
        neg = self.msg[1](*(x[n_pos:] for x in parts))
        return torch.cat([pos, neg])

    @torch.no_grad()
    def observe(self, src: Tensor, dst: Tensor, t: Tensor, sign: Tensor, weight: Tensor) -> None:
        """Write a batch of true events: persist old pending events, store the new ones.

        Each new pending event keeps its partner's memories as they stand before the
        batch, and the current memories of the batch's nodes are brought up to date.
        """
        b = src.numel()
        if b == 0:
            return
        node = torch.cat([src, dst])
        other = torch.cat([dst, src])
        role = torch.cat([torch.zeros_like(t), torch.ones_like(t)])
        edge = torch.stack([sign.repeat(2), weight.repeat(2), role], dim=-1)
        # Entries in event order: event k as source (2k) then as destination (2k+1).
        order = torch.arange(2 * b, device=src.device).view(2, b).t().reshape(-1)
        node, other, edge = node[order], other[order], edge[order]
        tt = t.repeat(2)[order]
        perm, pos, size, uc = group_positions(node)
        todo = uc[0]  # the batch's nodes: persist their current memories first
        self.memory.index_copy_(1, todo, self.current.index_select(1, todo))
        self.last_update.index_copy_(0, todo, self.current_last.index_select(0, todo))
        keep_from = (size - self.slots).clamp(min=0)
        sel = pos >= keep_from
        idx = perm[sel]
        slot = (pos - keep_from)[sel]
        n_sel = node[idx]
        self.pend_partner[n_sel, slot] = self.memory.index_select(1, other[idx]).transpose(0, 1)
        self.pend_t[n_sel, slot] = tt[idx]
        self.pend_edge[n_sel, slot] = edge[idx]
        self.pend_count[todo] = uc[1].clamp(max=self.slots)
        mem, last = self._apply_pending(todo)
        self.current.index_copy_(1, todo, mem)
        self.current_last.index_copy_(0, todo, last)

    @torch.no_grad()
    def snapshot(self) -> Tensor:
        """Every node's current memory (pending applied), ``[n_mem, num_nodes, dim]``."""
        return self.current.clone()


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
