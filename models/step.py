"""One training step, and the adapter of a model to the online protocol.

:func:`train_step` scores a batch's pairs (true events plus one sampled negative each)
from the state before the batch and takes one optimiser step on the four losses;
:class:`NeuralMethod` wraps a :class:`~models.signed_tgn.SignedTGN` for
:func:`models.protocol.run_protocol` (score, prequential ``learn``, observe).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from models.data import EventBatch
from models.protocol import BatchScores
from models.sampling import TrainingNegatives
from models.signed_tgn import SignedTGN
from sim.errors import SignsimError

if TYPE_CHECKING:
    from models.train import TrainConfig

__all__ = ["NeuralMethod", "resolve_device", "train_step"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``/``cuda``/``cuda:N`` as given.

    Raises:
        SignsimError: An unknown device, or CUDA requested where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise SignsimError(f"Unknown device '{name}'; use auto, cpu or cuda.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SignsimError("Device 'cuda' was requested but no CUDA GPU is available.")
    if dev.type not in ("cpu", "cuda"):
        raise SignsimError(f"Unsupported device '{name}'; use auto, cpu or cuda.")
    return dev


def train_step(
    model: SignedTGN,
    batch: EventBatch,
    sampler: TrainingNegatives,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    neg_sign_weight: float = 1.0,
    *,
    sync: Callable[[], None] | None = None,
    t_ref: float | None = None,
) -> float:
    """One optimiser step on a batch scored from the state before it; returns the loss.

    The batch is not written into the state here (call ``model.observe`` after).

    Args:
        model: The model.
        batch: The events (its first time is the reference time unless ``t_ref``).
        sampler: Training negatives.
        optimizer: The optimiser.
        generator: Random generator of the negatives.
        neg_sign_weight: Loss weight of negative signs.
        sync: Called after the backward pass, before clipping and the step (the
            data-parallel gradient all-reduce).
        t_ref: Reference time of the scores (a rank's share of a batch uses the batch's).
    """
    optimizer.zero_grad()
    b = len(batch)
    neg = sampler.sample(batch.src, batch.dst, generator)
    u = torch.cat([batch.src, batch.src])
    v = torch.cat([batch.dst, neg])
    out = model(u, v, float(batch.t[0]) if t_ref is None else t_ref)
    y_exist = torch.cat([torch.ones(b, device=u.device), torch.zeros(b, device=u.device)])
    positive = batch.sign > 0
    sign_w = torch.where(positive, 1.0, neg_sign_weight)
    loss = F.binary_cross_entropy_with_logits(out.exist, y_exist)
    loss = loss + F.binary_cross_entropy_with_logits(
        out.sign[:b], positive.float(), weight=sign_w
    ) / sign_w.mean()
    loss = loss + F.mse_loss(out.weight[:b], batch.signed_weight)
    y3 = torch.cat([torch.where(positive, 1, 2), torch.zeros(b, dtype=torch.long,
                                                             device=u.device)])
    loss = loss + F.cross_entropy(out.classes, y3)
    loss.backward()
    if sync is not None:
        sync()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return float(loss.detach())


class NeuralMethod:
    """Adapter of a :class:`SignedTGN` to the online protocol.

    Args:
        name: Row name in reports.
        model: The model.
        train: Its training settings (adaptation learning rate, loss weights).
        sampler: Training-negative sampler (shared with the training loop).
        generator: Random generator for adaptation negatives.
    """

    def __init__(
        self, name: str, model: SignedTGN, train: TrainConfig,
        sampler: TrainingNegatives | None = None, generator: torch.Generator | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.train = train
        device = next(model.parameters()).device
        self.sampler = sampler or TrainingNegatives(model.num_nodes).to(device)
        self.generator = generator or torch.Generator().manual_seed(train.seed + 1)
        self._opt: torch.optim.Optimizer | None = None

    def reset_state(self) -> None:
        """Forget the stream (weights are kept)."""
        self.model.reset_state()
        self.sampler.reset_state()

    @torch.no_grad()
    def score(self, batch: EventBatch, negatives: Tensor, col3: int) -> BatchScores:
        """Score true pairs, their negatives and the 3-class negatives."""
        self.model.eval()
        b, q = negatives.shape
        u = torch.cat([batch.src, batch.src, batch.src.repeat_interleave(q)])
        v = torch.cat([batch.dst, negatives[:, col3], negatives.reshape(-1)])
        out = self.model(u, v, float(batch.t[0]), n_full=2 * b)
        p3 = torch.softmax(out.classes, dim=-1)
        return BatchScores(
            exist_pos=out.exist[:b], exist_neg=out.exist[2 * b:].view(b, q),
            p_pos=torch.sigmoid(out.sign[:b]), weight=out.weight[:b],
            p3_pos=p3[:b], p3_neg=p3[b:],
        )

    def learn(self, batch: EventBatch) -> None:
        """One adaptation step on the revealed batch (before it is observed)."""
        if self._opt is None:
            self._opt = torch.optim.Adam(self.model.parameters(), lr=self.train.adapt_lr,
                                         fused=True)
        self.model.train()
        train_step(self.model, batch, self.sampler, self._opt, self.generator,
                   self.train.neg_sign_weight)
        self.model.eval()

    def observe(self, batch: EventBatch) -> None:
        """Write the batch into the model's state and the negative sampler."""
        self.model.observe(batch)
        self.sampler.observe(batch.src, batch.dst)
