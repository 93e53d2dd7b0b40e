"""The temporal signed-graph model (SEMBA-style signed TGN) and its ablations.

Structure follows PyG's ``tgn.py``: the modules are built outside and injected, all
per-node state lives in (non-persistent) buffers, ``reset_parameters()`` re-initialises
the weights and ``reset_state()`` forgets the stream. A checkpoint is the ``state_dict``
(weights only) plus :class:`ModelConfig` as JSON; the state is rebuilt by replaying
events, so one checkpoint applies to any run (any number of nodes).

Variants from the same code:

* ``semba``: two memories (positive, negative), sign-specific message functions and
  GRUs, balanced aggregation.
* ``no_balance``: two memories, sign-specific messages, no balanced routing.
* ``unsigned``: one memory and one message function (TGN); sign and weight remain edge
  features.

With ``use_features`` the heads also read :class:`~models.features.OnlineFeatures`, and
with ``triads`` too the signed-triad features of :mod:`models.triads`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from models.data import EventBatch
from models.features import OnlineFeatures, feature_dim
from models.memory import RecentNeighbors, SignedMemory, state_nbytes
from models.modules import (
    EDGE_DIM,
    MessageMLP,
    NeighborAttention,
    PairHeads,
    TimeEncoder,
    make_aggregator,
)

__all__ = ["VARIANTS", "ModelConfig", "PairOutput", "SignedTGN", "build_model"]

VARIANTS = ("semba", "no_balance", "unsigned")


@dataclass
class ModelConfig:
    """Hyper-parameters of :class:`SignedTGN` (JSON-safe).

    Attributes:
        num_nodes: Size of the node id space of the stream it runs on.
        variant: ``semba``, ``no_balance`` or ``unsigned``.
        memory_dim: Size of each memory.
        time_dim: Size of the time encoding.
        msg_dim: Size of a message.
        embed_dim: Size of a node embedding.
        hidden: Width of the head trunks.
        heads: Attention heads.
        neighbors: Recent neighbours kept per node.
        aggregator: ``last`` or ``mean``.
        slots: Pending events kept per node (``last`` needs 1).
        use_features: Feed the online pair features to the heads.
        fg_iters: Fairness/goodness iterations per refresh (features only).
        fg_growth: Refresh fairness/goodness only once the history has grown by this
            fraction since the last refresh (0, the default: after every batch; about
            0.05 keeps them affordable on streams of millions of events).
        triads: Add the signed-triad features to the online features (features only).
            A stored config without this key predates them and reads as False.
        activity: Add time-decayed activity counts to the online features (features
            only). A stored config without this key predates them and reads as False.
        sign_attention: One attention softmax per interaction sign.
        split_trunk: Separate existence and sign trunks in the heads.
        sign_weight: Sign-conditioned weight head.
    """

    num_nodes: int
    variant: str = "semba"
    memory_dim: int = 64
    time_dim: int = 32
    msg_dim: int = 64
    embed_dim: int = 64
    hidden: int = 128
    heads: int = 2
    neighbors: int = 10
    aggregator: str = "last"
    slots: int = 1
    use_features: bool = True
    fg_iters: int = 1
    fg_growth: float = 0.0
    triads: bool = True
    activity: bool = True
    sign_attention: bool = False
    split_trunk: bool = False
    sign_weight: bool = False

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; use one of {VARIANTS}")
        if self.aggregator not in ("last", "mean"):
            raise ValueError("aggregator must be 'last' or 'mean'")
        if self.num_nodes < 1 or self.slots < 1 or self.neighbors < 1:
            raise ValueError("num_nodes, slots and neighbors must be positive")
        if self.fg_growth < 0:
            raise ValueError("fg_growth must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for added_later in ("triads", "activity"):
            values.setdefault(added_later, False)
        return cls(**values)


@dataclass
class PairOutput:
    """Model outputs for pairs; the full heads cover the first ``n_full`` pairs.

    Attributes:
        exist: Existence logits of every pair.
        sign: Sign logits (positive class) of the first ``n_full`` pairs.
        weight: Predicted signed weight in ``[-1, 1]``.
        classes: ``[n_full, 3]`` logits for (no link, positive, negative).
    """

    exist: Tensor
    sign: Tensor
    weight: Tensor
    classes: Tensor


class SignedTGN(nn.Module):
    """Signed temporal graph network with memories, attention embedding and pair heads.

    Args:
        config: The hyper-parameters (kept for checkpoints).
        memory: Node memories.
        neighbors: Recent-neighbour buffer for the attention embedding.
        embedding: Attention over recent neighbours.
        heads: Pair heads.
        features: Online pair features, or None.
    """

    def __init__(
        self,
        config: ModelConfig,
        memory: SignedMemory,
        neighbors: RecentNeighbors,
        embedding: NeighborAttention,
        heads: PairHeads,
        features: OnlineFeatures | None,
    ) -> None:
        super().__init__()
        self.config = config
        self.memory = memory
        self.neighbors = neighbors
        self.embedding = embedding
        self.heads = heads
        self.features = features
        self.time_enc = memory.time_enc

    @property
    def num_nodes(self) -> int:
        """Nodes the state is sized for."""
        return self.config.num_nodes

    def reset_parameters(self) -> None:
        """Re-initialise every weight and forget the stream."""
        self.time_enc.reset_parameters()
        self.memory.reset_parameters()
        self.embedding.reset_parameters()
        self.heads.reset_parameters()
        self.reset_state()

    def reset_state(self) -> None:
        """Forget the stream: memories, pending events, neighbours, feature counters."""
        self.memory.reset_state()
        self.neighbors.reset_state()
        if self.features is not None:
            self.features.reset_state()

    def state_bytes_per_node(self) -> float:
        """Bytes of per-node state (memories, pending events, neighbours, features)."""
        total = state_nbytes(self.memory) + state_nbytes(self.neighbors)
        per_node = total / self.num_nodes
        if self.features is not None:
            per_node += self.features.state_nbytes_per_node()
        return per_node

    def encode(self, n_id: Tensor, t_ref: float) -> Tensor:
        """Embeddings of the sorted unique nodes ``n_id`` at time ``t_ref``."""
        row, nbr, nbr_t, nbr_e = self.neighbors(n_id)
        cand = torch.unique(nbr)
        only_nbr = cand[~torch.isin(cand, n_id)]
        # Reads never change the state; the queried nodes' memories carry gradients when
        # enabled, the neighbours' are read as they stand.
        mem_q, _ = self.memory(n_id)
        with torch.no_grad():
            mem_n, _ = self.memory(only_nbr)
        keys = torch.cat([n_id, only_nbr])
        x_all = torch.cat([mem_q, mem_n], dim=1).permute(1, 0, 2).reshape(keys.numel(), -1)
        sorted_keys, order = torch.sort(keys)
        index = order.index_select(0, torch.searchsorted(sorted_keys, nbr))
        dt = (t_ref - nbr_t).clamp(min=0)
        return self.embedding(x_all[: n_id.numel()], x_all, row, index, dt, nbr_e)

    def forward(self, u: Tensor, v: Tensor, t_ref: float, n_full: int | None = None) -> PairOutput:
        """Score pairs ``u[i] -> v[i]`` from the state as it stands (before the batch).

        Args:
            u: Source nodes.
            v: Destination nodes.
            t_ref: Time of the batch being scored (its first event).
            n_full: Compute all heads for the first ``n_full`` pairs (default: all) and
                only existence for the rest.
        """
        n_full = u.numel() if n_full is None else n_full
        n_id = torch.unique(torch.cat([u, v]))
        z = self.encode(n_id, t_ref)
        iu = torch.searchsorted(n_id, u)
        iv = torch.searchsorted(n_id, v)
        f = self.features.query(u, v, t_ref) if self.features is not None else None
        fs = f[:n_full] if f is not None else None
        exist, sign, weight, classes = self.heads(z, iu[:n_full], iv[:n_full], fs)
        if n_full < u.numel():
            fr = f[n_full:] if f is not None else None
            exist = torch.cat([exist, self.heads.exist(z, iu[n_full:], iv[n_full:], fr)])
        return PairOutput(exist=exist, sign=sign, weight=weight, classes=classes)

    @torch.no_grad()
    def observe(self, batch: EventBatch) -> None:
        """Write a batch of true events into every piece of state."""
        args = (batch.src, batch.dst, batch.t, batch.sign, batch.weight)
        self.memory.observe(*args)
        self.neighbors.observe(*args)
        if self.features is not None:
            self.features.observe(*args)


def build_model(config: ModelConfig) -> SignedTGN:
    """Build a :class:`SignedTGN` (modules created here and injected)."""
    time_enc = TimeEncoder(config.time_dim)
    n_mem = 1 if config.variant == "unsigned" else 2
    n_msg = 1 if config.variant == "unsigned" else 2
    messages = nn.ModuleList(
        MessageMLP(config.memory_dim, config.time_dim, EDGE_DIM, config.msg_dim)
        for _ in range(n_msg)
    )
    grus = nn.ModuleList(nn.GRUCell(config.msg_dim, config.memory_dim) for _ in range(n_mem))
    slots = 1 if config.aggregator == "last" else config.slots
    memory = SignedMemory(
        config.num_nodes, config.memory_dim, time_enc, messages, grus,
        make_aggregator(config.aggregator), balanced=config.variant == "semba", slots=slots,
    )
    neighbors = RecentNeighbors(config.num_nodes, config.neighbors)
    embedding = NeighborAttention(
        n_mem * config.memory_dim, time_enc, EDGE_DIM, config.embed_dim, config.heads,
        per_sign=config.sign_attention,
    )
    feat_dim = feature_dim(config.triads, activity=config.activity) if config.use_features else 0
    heads = PairHeads(config.embed_dim, feat_dim, config.hidden,
                      split_trunk=config.split_trunk, sign_weight=config.sign_weight)
    features = (OnlineFeatures(config.num_nodes, config.fg_iters, triads=config.triads,
                               activity=config.activity, fg_growth=config.fg_growth)
                if config.use_features else None)
    model = SignedTGN(config, memory, neighbors, embedding, heads, features)
    model.reset_parameters()
    return model
