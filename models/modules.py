"""Small building blocks of the temporal signed-graph model.

* :class:`TimeEncoder` -- ``cos(w * dt + b)`` with log-spaced initial frequencies.
* :class:`MessageMLP` -- a message function ``MLP(s_self || s_partner || phi(dt) || e)``;
  the signed model has one per event sign.
* :class:`LastAggregator`, :class:`MeanAggregator` -- reduce a node's pending messages.
* :class:`NeighborAttention` -- multi-head attention of a node over its recent
  neighbours, with time encoding, sign, weight and direction as edge features; with
  ``per_sign`` one softmax over the positive and one over the negative interactions.
* :class:`PairHeads` -- heads for existence, sign, signed weight and the 3-class task
  (options: separate existence and sign trunks; a sign-conditioned weight head).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "EDGE_DIM",
    "LastAggregator",
    "MeanAggregator",
    "MessageMLP",
    "NeighborAttention",
    "PairHeads",
    "TimeEncoder",
    "make_aggregator",
]

EDGE_DIM = 3
"""Raw edge features everywhere: ``(sign, weight, role)``; role is 0 when the node was the
source of the event and 1 when it was the destination."""


class TimeEncoder(nn.Module):
    """Map time differences to ``cos(w * dt + b)`` features.

    Frequencies start log-spaced between ``10**max_log_freq`` and ``10**min_log_freq``
    per time unit (days for imported networks) and are learned.

    Args:
        dim: Output dimension.
        max_log_freq: log10 of the highest initial frequency.
        min_log_freq: log10 of the lowest initial frequency.
    """

    def __init__(self, dim: int, max_log_freq: float = 2.0, min_log_freq: float = -4.0) -> None:
        super().__init__()
        self.out_channels = dim
        self.max_log_freq = max_log_freq
        self.min_log_freq = min_log_freq
        self.lin = nn.Linear(1, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Restore the log-spaced frequencies and zero phases."""
        with torch.no_grad():
            freqs = torch.logspace(self.max_log_freq, self.min_log_freq, self.out_channels)
            self.lin.weight.copy_(freqs.view(-1, 1))
            self.lin.bias.zero_()

    def forward(self, dt: Tensor) -> Tensor:
        """Encode ``dt`` of any shape into ``dt.shape + (dim,)``."""
        return torch.cos(self.lin(dt.unsqueeze(-1)))


class MessageMLP(nn.Module):
    """A message function ``relu(W [s_self, s_partner, phi(dt), e] + b)``.

    Args:
        memory_dim: Size of one memory vector.
        time_dim: Size of the time encoding.
        edge_dim: Size of the raw edge features.
        out_channels: Message size.
    """

    def __init__(self, memory_dim: int, time_dim: int, edge_dim: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.lin = nn.Linear(2 * memory_dim + time_dim + edge_dim, out_channels)

    def reset_parameters(self) -> None:
        """Re-initialise the weights."""
        self.lin.reset_parameters()

    def forward(self, s_self: Tensor, s_partner: Tensor, t_enc: Tensor, edge: Tensor) -> Tensor:
        """Compute one message per row."""
        return torch.relu(self.lin(torch.cat([s_self, s_partner, t_enc, edge], dim=-1)))


class LastAggregator(nn.Module):
    """Keep the most recent pending message of each node (slots are in event order)."""

    def forward(self, msg: Tensor, count: Tensor) -> Tensor:
        """Reduce ``msg[n, slots, h]`` with ``count[n] >= 1`` valid slots to ``[n, h]``."""
        n, p, h = msg.shape
        flat = torch.arange(n, device=msg.device) * p + count - 1
        return msg.reshape(n * p, h).index_select(0, flat)


class MeanAggregator(nn.Module):
    """Average the pending messages of each node."""

    def forward(self, msg: Tensor, count: Tensor) -> Tensor:
        """Reduce ``msg[n, slots, h]`` (zeros in unused slots) to ``[n, h]``."""
        return msg.sum(dim=1) / count.clamp(min=1).unsqueeze(-1).to(msg.dtype)


def make_aggregator(name: str) -> nn.Module:
    """Build an aggregator by name (``last`` or ``mean``)."""
    if name == "last":
        return LastAggregator()
    if name == "mean":
        return MeanAggregator()
    raise ValueError(f"unknown aggregator {name!r} (use 'last' or 'mean')")


class NeighborAttention(nn.Module):
    """One layer of multi-head attention over each node's recent neighbours.

    ``z = W_root x + W_out attn(q(x, phi(0)), k/v(x_nbr, phi(dt), e))`` with a softmax
    over each node's recent interactions (an edge list, so empty slots cost nothing); a
    node without neighbours gets ``W_root x``.

    With ``per_sign`` the softmax runs separately over a node's positive and negative
    interactions (the sign is the first edge feature) and the two aggregates are
    concatenated before the output map, so friends and foes never compete for weight.

    Args:
        node_dim: Size of a node's input (its memories, concatenated).
        time_enc: The shared time encoder.
        edge_dim: Size of the neighbour edge features.
        out_dim: Embedding size (divisible by ``heads``).
        heads: Attention heads.
        per_sign: One attention per interaction sign.
    """

    def __init__(
        self, node_dim: int, time_enc: TimeEncoder, edge_dim: int, out_dim: int, heads: int = 2,
        per_sign: bool = False,
    ) -> None:
        super().__init__()
        if out_dim % heads:
            raise ValueError("out_dim must be divisible by heads")
        self.time_enc = time_enc
        self.heads = heads
        self.out_dim = out_dim
        self.groups = 2 if per_sign else 1
        t_dim = time_enc.out_channels
        self.q = nn.Linear(node_dim + t_dim, out_dim)
        # Keys and values: one linear map of (neighbour, phi(dt), edge) in two parts, the
        # neighbour's projected once per node (no gradient is formed for the detached
        # neighbour inputs) and the interaction's once per edge, added inside one matmul.
        self.kv_node = nn.Linear(node_dim, 2 * out_dim)
        self.kv_rel = nn.Linear(t_dim + edge_dim, 2 * out_dim, bias=False)
        self.root = nn.Linear(node_dim, out_dim)
        self.out = nn.Linear(self.groups * out_dim, out_dim)
        self._register_load_state_dict_pre_hook(_merge_kv_parts)

    def reset_parameters(self) -> None:
        """Re-initialise the weights (the time encoder is reset by its owner)."""
        self.q.reset_parameters()
        self.kv_node.reset_parameters()
        with torch.no_grad():  # the time and edge columns as two layers of their own
            t_dim = self.time_enc.out_channels
            for part in self.kv_rel.weight.split([t_dim, self.kv_rel.in_features - t_dim], 1):
                bound = 1.0 / math.sqrt(part.shape[1])
                part.copy_(torch.empty(part.shape).uniform_(-bound, bound))
        self.root.reset_parameters()
        self.out.reset_parameters()

    def forward(
        self, x: Tensor, table: Tensor, row: Tensor, index: Tensor, dt: Tensor, edge: Tensor
    ) -> Tensor:
        """Embed nodes from their neighbour interactions given as an edge list.

        Args:
            x: ``[n, node_dim]`` the nodes' own inputs.
            table: ``[a, node_dim]`` inputs of every node that appears as a neighbour (no
                gradient flows into them; keys and values are projected once per row).
            row: ``[e]`` which node (row of ``x``) each interaction belongs to.
            index: ``[e]`` row of ``table`` of the neighbour.
            dt: ``[e]`` time since the interaction.
            edge: ``[e, edge_dim]`` edge features.
        """
        n = x.shape[0]
        h, d = self.heads, self.out_dim // self.heads
        zero = self.time_enc(x.new_zeros(1)).expand(n, -1)
        q = self.q(torch.cat([x, zero], dim=-1))
        rel = torch.cat([self.time_enc(dt), edge], dim=-1)
        kv = torch.addmm(F.embedding(index, self.kv_node(table.detach())), rel,
                         self.kv_rel.weight.t())
        key, val = kv.view(-1, 2, h, d).unbind(1)
        score = (F.embedding(row, q).view(-1, h, d) * key).sum(-1) * (1.0 / math.sqrt(d))
        # Softmax over each node's interactions (segment-wise, max-shifted); with one
        # attention per sign a segment is (node, sign).
        g = self.groups
        seg = row * g + (edge[:, 0] < 0).long() if g > 1 else row
        top = torch.full((n * g, h), -1e30, device=x.device, dtype=score.dtype)
        top = top.scatter_reduce(0, seg.view(-1, 1).expand(-1, h), score.detach(), "amax")
        w = torch.exp(score - top.index_select(0, seg))
        den = torch.zeros(n * g, h, device=x.device, dtype=w.dtype).index_add(0, seg, w)
        att = w / den.index_select(0, seg)
        agg = torch.zeros(n * g, h, d, device=x.device, dtype=val.dtype)
        agg = agg.index_add(0, seg, att.unsqueeze(-1) * val).view(n, g * h * d)
        return self.root(x) + self.out(agg)


def _merge_kv_parts(state: dict[str, Tensor], prefix: str, *args: object) -> None:
    """Read a checkpoint written before the time and edge key maps were one matrix."""
    time_key, edge_key = prefix + "kv_time.weight", prefix + "kv_edge.weight"
    if time_key in state and edge_key in state:
        state[prefix + "kv_rel.weight"] = torch.cat([state.pop(time_key),
                                                     state.pop(edge_key)], dim=1)


class _Trunk(nn.Module):
    """``relu(W2 relu(A z_u + B z_v + C f + b))`` with the node projections shared per node."""

    def __init__(self, emb_dim: int, feat_dim: int, hidden: int) -> None:
        super().__init__()
        self.a = nn.Linear(emb_dim, hidden)
        self.b = nn.Linear(emb_dim, hidden, bias=False)
        self.c = nn.Linear(feat_dim, hidden, bias=False) if feat_dim else None
        self.l2 = nn.Linear(hidden, hidden)

    def forward(self, z: Tensor, iu: Tensor, iv: Tensor, f: Tensor | None) -> Tensor:
        h = F.embedding(iu, self.a(z)) + F.embedding(iv, self.b(z))
        if self.c is not None and f is not None:
            h = h + self.c(f)
        return torch.relu(self.l2(torch.relu(h)))


class PairHeads(nn.Module):
    """Existence, sign, signed-weight and 3-class heads over node pairs.

    A trunk ``relu(W2 relu(A z_u + B z_v + C f + b))`` (the node projections are computed
    once per node; ``C f`` reads the pair's online features when ``feat_dim > 0``) feeds
    linear outputs: the existence logit, the sign logit, the signed weight and the three
    logits of (no link, positive, negative).

    * ``split_trunk``: existence reads its own trunk, sign and weight another, and the
      3-class logits both (concatenated); otherwise one trunk feeds everything.
    * ``sign_weight``: the signed weight is ``p * m+ - (1 - p) * m-`` with ``p`` the
      sign probability and ``m+``, ``m-`` in (0, 1) the magnitudes expected for each
      sign; otherwise ``tanh`` of one output.

    Args:
        emb_dim: Node embedding size.
        feat_dim: Number of pair features (0 for none).
        hidden: Trunk width.
        split_trunk: Separate existence and sign trunks.
        sign_weight: Sign-conditioned weight head.
    """

    def __init__(self, emb_dim: int, feat_dim: int, hidden: int, split_trunk: bool = False,
                 sign_weight: bool = False) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.split_trunk = split_trunk
        self.sign_weight = sign_weight
        self.trunk = _Trunk(emb_dim, feat_dim, hidden)
        n_w = 2 if sign_weight else 1
        if split_trunk:
            self.sign_trunk = _Trunk(emb_dim, feat_dim, hidden)
            self.exist_out = nn.Linear(hidden, 1)
            self.sign_out = nn.Linear(hidden, 1 + n_w)
            self.class_out = nn.Linear(2 * hidden, 3)
        else:
            self.out = nn.Linear(hidden, 1 + 1 + n_w + 3)

    def reset_parameters(self) -> None:
        """Re-initialise every linear layer."""
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                mod.reset_parameters()

    def exist(self, z: Tensor, iu: Tensor, iv: Tensor, f: Tensor | None) -> Tensor:
        """Existence logits only."""
        h = self.trunk(z, iu, iv, f)
        if self.split_trunk:
            return self.exist_out(h).squeeze(-1)
        return F.linear(h, self.out.weight[:1], self.out.bias[:1]).squeeze(-1)

    def forward(
        self, z: Tensor, iu: Tensor, iv: Tensor, f: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """All heads: ``(exist_logit, sign_logit, signed_weight, class_logits[.,3])``."""
        h = self.trunk(z, iu, iv, f)
        if self.split_trunk:
            hs = self.sign_trunk(z, iu, iv, f)
            o = torch.cat([self.exist_out(h), self.sign_out(hs),
                           self.class_out(torch.cat([h, hs], dim=-1))], dim=-1)
        else:
            o = self.out(h)
        return self.split(o)

    def split(self, o: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Split the raw outputs into the four heads."""
        if self.sign_weight:
            p = torch.sigmoid(o[:, 1])
            weight = p * torch.sigmoid(o[:, 2]) - (1 - p) * torch.sigmoid(o[:, 3])
            return o[:, 0], o[:, 1], weight, o[:, 4:]
        return o[:, 0], o[:, 1], torch.tanh(o[:, 2]), o[:, 3:]
