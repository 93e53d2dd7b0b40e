"""Small building blocks of the temporal signed-graph model.

* :class:`TimeEncoder` -- ``cos(w * dt + b)`` with log-spaced initial frequencies.
* :class:`MessageMLP` -- a message function ``MLP(s_self || s_partner || phi(dt) || e)``;
  the signed model has one per event sign.
* :class:`LastAggregator`, :class:`MeanAggregator` -- reduce a node's pending messages.
* :class:`NeighborAttention` -- multi-head attention of a node over its recent
  neighbours, with time encoding, sign, weight and direction as edge features.
* :class:`PairHeads` -- heads for existence, sign, signed weight and the 3-class task.
"""

from __future__ import annotations

import math

import torch
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
        rows = torch.arange(msg.shape[0], device=msg.device)
        return msg[rows, count - 1]


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

    ``z = W_root x + W_out attn(q(x, phi(0)), k/v(x_nbr, phi(dt), e))``, with masked
    softmax; a node without neighbours gets ``W_root x``.

    Args:
        node_dim: Size of a node's input (its memories, concatenated).
        time_enc: The shared time encoder.
        edge_dim: Size of the neighbour edge features.
        out_dim: Embedding size (divisible by ``heads``).
        heads: Attention heads.
    """

    def __init__(
        self, node_dim: int, time_enc: TimeEncoder, edge_dim: int, out_dim: int, heads: int = 2
    ) -> None:
        super().__init__()
        if out_dim % heads:
            raise ValueError("out_dim must be divisible by heads")
        self.time_enc = time_enc
        self.heads = heads
        self.out_dim = out_dim
        t_dim = time_enc.out_channels
        self.q = nn.Linear(node_dim + t_dim, out_dim)
        self.kv = nn.Linear(node_dim + t_dim + edge_dim, 2 * out_dim)
        self.root = nn.Linear(node_dim, out_dim)
        self.out = nn.Linear(out_dim, out_dim)

    def reset_parameters(self) -> None:
        """Re-initialise the weights (the time encoder is reset by its owner)."""
        for lin in (self.q, self.kv, self.root, self.out):
            lin.reset_parameters()

    def forward(self, x: Tensor, x_nbr: Tensor, dt: Tensor, edge: Tensor, mask: Tensor) -> Tensor:
        """Embed nodes.

        Args:
            x: ``[n, node_dim]`` the nodes' own inputs.
            x_nbr: ``[n, k, node_dim]`` their neighbours' inputs.
            dt: ``[n, k]`` time since each neighbour interaction.
            edge: ``[n, k, edge_dim]`` edge features.
            mask: ``[n, k]`` which neighbour slots are valid.
        """
        n, k = mask.shape
        h, d = self.heads, self.out_dim // self.heads
        zero = self.time_enc(x.new_zeros(n))
        q = self.q(torch.cat([x, zero], dim=-1)).view(n, 1, h, d)
        kv = self.kv(torch.cat([x_nbr, self.time_enc(dt), edge], dim=-1)).view(n, k, 2, h, d)
        key, val = kv[:, :, 0], kv[:, :, 1]
        score = (q * key).sum(-1) / math.sqrt(d)  # [n, k, h]
        score = score.masked_fill(~mask.unsqueeze(-1), -1e9)
        att = torch.softmax(score, dim=1) * mask.unsqueeze(-1).to(score.dtype)
        agg = (att.unsqueeze(-1) * val).sum(dim=1).reshape(n, h * d)
        return self.root(x) + self.out(agg)


class _Trunk(nn.Module):
    """``relu(W2 relu(A z_u + B z_v + C f + b))`` with the node projections shared per node."""

    def __init__(self, emb_dim: int, feat_dim: int, hidden: int) -> None:
        super().__init__()
        self.a = nn.Linear(emb_dim, hidden)
        self.b = nn.Linear(emb_dim, hidden, bias=False)
        self.c = nn.Linear(feat_dim, hidden, bias=False) if feat_dim else None
        self.l2 = nn.Linear(hidden, hidden)

    def forward(self, z: Tensor, iu: Tensor, iv: Tensor, f: Tensor | None) -> Tensor:
        h = self.a(z)[iu] + self.b(z)[iv]
        if self.c is not None and f is not None:
            h = h + self.c(f)
        return torch.relu(self.l2(torch.relu(h)))


class PairHeads(nn.Module):
    """Existence, sign, signed-weight and 3-class heads over node pairs.

    A link trunk feeds the existence head; a sign trunk feeds the sign and weight heads;
    the 3-class head (no link / positive / negative) reads both trunks. Both trunks also
    read the pair's online features when ``feat_dim > 0``.

    Args:
        emb_dim: Node embedding size.
        feat_dim: Number of pair features (0 for none).
        hidden: Trunk width.
    """

    def __init__(self, emb_dim: int, feat_dim: int, hidden: int) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.link = _Trunk(emb_dim, feat_dim, hidden)
        self.sign = _Trunk(emb_dim, feat_dim, hidden)
        self.exist_out = nn.Linear(hidden, 1)
        self.sign_out = nn.Linear(hidden, 1)
        self.weight_out = nn.Linear(hidden, 1)
        self.class_out = nn.Linear(2 * hidden, 3)

    def reset_parameters(self) -> None:
        """Re-initialise every linear layer."""
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                mod.reset_parameters()

    def exist(self, z: Tensor, iu: Tensor, iv: Tensor, f: Tensor | None) -> Tensor:
        """Existence logits only (cheap path for many negatives)."""
        return self.exist_out(self.link(z, iu, iv, f)).squeeze(-1)

    def forward(
        self, z: Tensor, iu: Tensor, iv: Tensor, f: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """All heads: ``(exist_logit, sign_logit, signed_weight, class_logits[.,3])``."""
        hl = self.link(z, iu, iv, f)
        hs = self.sign(z, iu, iv, f)
        return (
            self.exist_out(hl).squeeze(-1),
            self.sign_out(hs).squeeze(-1),
            torch.tanh(self.weight_out(hs)).squeeze(-1),
            self.class_out(torch.cat([hl, hs], dim=-1)),
        )
