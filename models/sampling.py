"""Negative destinations for the existence task.

* :func:`evaluation_negatives`: a fixed, seeded set of ``n_neg`` negatives per event
  for one-vs-many ranking. Half are *historical* (destinations the source interacted
  with before the event's batch, other than the true one; topped up with random nodes
  when the source has too few) and half are uniformly random nodes other than the true
  destination. Every method is ranked against the same negatives.
* :class:`TrainingNegatives`: one negative per positive for training, drawn from the
  source's recent destinations or uniformly, from past events only.

Negatives are queries only: they never enter any state.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from models.data import SignedEvents
from models.memory import group_positions

__all__ = ["TrainingNegatives", "evaluation_negatives"]


def evaluation_negatives(
    events: SignedEvents,
    start: int,
    end: int,
    batch_size: int,
    n_neg: int = 100,
    seed: int = 0,
) -> np.ndarray:
    """Fixed negatives for events ``[start, end)``, ``[end - start, n_neg]`` node indices.

    Columns ``0 .. n_neg//2 - 1`` are historical, the rest random. Histories use all
    events before each event's batch (batches aligned on ``start``, as in the protocol).

    Args:
        events: The stream.
        start: First scored event.
        end: End of the scored range.
        batch_size: Protocol batch size (history is frozen within a batch).
        n_neg: Negatives per event.
        seed: Seed of the generator.
    """
    rng = np.random.default_rng(seed)
    src = events.src.cpu().numpy()
    dst = events.dst.cpu().numpy()
    n_nodes = events.num_nodes
    n_hist = n_neg // 2
    history: dict[int, dict[int, None]] = {}

    def remember(a: int, b: int) -> None:
        for s, d in zip(src[a:b].tolist(), dst[a:b].tolist(), strict=True):
            history.setdefault(s, {})[d] = None

    remember(0, start)
    out = np.empty((end - start, n_neg), dtype=np.int64)
    for b0 in range(start, end, batch_size):
        b1 = min(b0 + batch_size, end)
        for i in range(b0, b1):
            s, d = int(src[i]), int(dst[i])
            pool = [x for x in history.get(s, ()) if x != d]
            k = min(n_hist, len(pool))
            row = out[i - start]
            if k:
                row[:k] = rng.choice(np.asarray(pool), size=k, replace=False)
            n_rand = n_neg - k
            cand = rng.integers(0, n_nodes - 1, size=n_rand) if n_nodes > 1 else np.zeros(
                n_rand, dtype=np.int64)
            if n_nodes > 1:
                cand = cand + (cand >= d)  # uniform over nodes other than d
            row[k:] = cand
        remember(b0, b1)
    return out


class TrainingNegatives(nn.Module):
    """Sample one negative destination per positive from past events only.

    With probability ``p_hist`` (when the source has history) the negative is one of the
    source's ``size`` most recent destinations, else a uniform node. Negatives that hit
    the true destination are redrawn uniformly (once).

    Args:
        num_nodes: Number of nodes.
        size: Recent destinations remembered per source.
        p_hist: Share of historical negatives.
    """

    dsts: Tensor
    count: Tensor

    def __init__(self, num_nodes: int, size: int = 20, p_hist: float = 0.5) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.size = size
        self.p_hist = p_hist
        self.register_buffer("dsts", torch.zeros(num_nodes, size, dtype=torch.long),
                             persistent=False)
        self.register_buffer("count", torch.zeros(num_nodes, dtype=torch.long), persistent=False)

    def reset_state(self) -> None:
        """Forget every destination."""
        self.count.zero_()

    @torch.no_grad()
    def sample(self, src: Tensor, dst: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One negative destination per ``(src, dst)``."""
        dev = src.device
        n = src.numel()

        def rand(shape: int) -> Tensor:
            return torch.randint(0, self.num_nodes, (shape,), generator=generator).to(dev)

        def unif(shape: int) -> Tensor:
            return torch.rand(shape, generator=generator).to(dev)

        neg = rand(n)
        have = self.count[src].clamp(max=self.size)
        use_hist = (have > 0) & (unif(n) < self.p_hist)
        slot = (unif(n) * have.clamp(min=1)).long().clamp(max=self.size - 1)
        neg = torch.where(use_hist, self.dsts[src, slot], neg)
        clash = neg == dst
        neg = torch.where(clash, rand(n), neg)
        return neg

    @torch.no_grad()
    def observe(self, src: Tensor, dst: Tensor) -> None:
        """Remember the true destinations of a batch."""
        if src.numel() == 0:
            return
        perm, pos, size, uc = group_positions(src)
        sel = pos >= (size - self.size).clamp(min=0)
        idx = perm[sel]
        s = src[idx]
        slot = (self.count[s] + pos[sel]) % self.size
        self.dsts[s, slot] = dst[idx]
        self.count[uc[0]] += uc[1]
