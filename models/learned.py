"""Learned dynamics: a trained signed temporal model decides the agents' acts.

:class:`LearnedDynamics` implements the engine's :class:`sim.engine.dynamics.Dynamics` protocol,
so the engine never imports torch. For each act in a batch (of at most ``max_batch``
acts; the engine resumes after the processed prefix, which keeps the Poisson clock
exact):

1. **Which link appears.** The mechanistic rule proposes a target (followee, reply,
   exposure, bridging recommendation ...); ``candidates - 1`` other agents are drawn
   uniformly. The model's existence head scores every ``actor -> candidate`` pair from its
   memory as it stands, and the target is sampled in proportion to ``sigmoid(score)``.
2. **Its sign and weight.** The sign is +1 with the sign head's probability; the weight
   is the magnitude of the weight head's signed weight (clipped to [0.05, 1]).
3. **Delivery and updates** run through the same compiled kernel as the mechanistic
   rules, so interventions (moderation, friction, rate limits, bans) act on learned acts
   exactly as on mechanistic ones, and opinions and negativity still evolve.
4. **Memory.** Delivered acts are written into the model's memory (never the blocked
   ones), so the model sees the stream its own decisions produce.

A checkpoint trained on a real signed network (``signsim train`` on an imported run)
therefore drives a simulated population with the decision patterns learned from the real
one. Node ids are agent ids; the state is sized for the population.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from models.data import EventBatch as ModelBatch
from models.train import load_checkpoint, resolve_device
from sim.config import MAX_MODEL_CANDIDATES
from sim.contract import CAUSES, EventBatch
from sim.engine.dynamics import apply_events, choose_batch_targets
from sim.engine.kernel import U_SIGN, U_TRIES, U_WEIGHT
from sim.errors import SignsimError

if TYPE_CHECKING:
    from sim.engine.model import SocialModel

__all__ = ["LEARNED_CAUSE", "LearnedDynamics"]

#: ``interactions.cause`` code of acts whose target the model chose over the rule's.
LEARNED_CAUSE = CAUSES.index("learned")


class LearnedDynamics:
    """Dynamics driven by a trained :class:`models.signed_tgn.SignedTGN` checkpoint.

    Args:
        checkpoint: Path of a checkpoint written by ``signsim train``.
        candidates: Targets scored per act (the rule's proposal plus random agents).
        max_batch: Most acts decided from one memory state.
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    name = "learned"

    def __init__(self, checkpoint: str | Path, candidates: int = 8, max_batch: int = 200,
                 device: str = "auto") -> None:
        most = MAX_MODEL_CANDIDATES
        if not 1 <= candidates <= most:
            raise SignsimError(
                f"dynamics.model_candidates must be between 1 and {most} (the rule's proposal "
                f"plus up to {most - 1} random agents), got {candidates}."
            )
        self.checkpoint = Path(checkpoint)
        self.candidates = candidates
        self.max_batch = max(1, max_batch)
        self.device = resolve_device(device)
        self.net: torch.nn.Module | None = None
        self._seq = 0

    def _load(self, n_agents: int) -> torch.nn.Module:
        if self.net is None:
            net, _ = load_checkpoint(self.checkpoint, num_nodes=n_agents, device=self.device)
            net.eval()
            net.reset_state()
            self.net = net
        return self.net

    @torch.no_grad()
    def step(self, model: SocialModel, times: np.ndarray, actors: np.ndarray,
             uniforms: np.ndarray) -> EventBatch:
        """Decide a batch with the model, deliver it with the kernel, observe it."""
        k = min(times.shape[0], self.max_batch)
        times, actors, uniforms = times[:k], actors[:k], uniforms[:k]
        n = model.population.n
        net = self._load(n)
        proposed, causes = choose_batch_targets(model, actors, uniforms)
        c = min(self.candidates, n - 1)
        cand = np.empty((k, c), dtype=np.int64)
        cand[:, 0] = proposed
        if c > 1:
            extra = np.floor(uniforms[:, U_TRIES:U_TRIES + c - 1] * (n - 1)).astype(np.int64)
            extra += extra >= actors[:, None]  # uniform over agents other than the actor
            cand[:, 1:] = extra
        u = torch.as_tensor(np.repeat(actors, c), device=self.device)
        v = torch.as_tensor(cand.reshape(-1), device=self.device)
        out = net(u, v, float(times[0]))
        p_link = torch.sigmoid(out.exist).view(k, c).double().cpu().numpy()
        p_pos = torch.sigmoid(out.sign).view(k, c).double().cpu().numpy()
        w_pred = out.weight.view(k, c).abs().double().cpu().numpy()
        cum = np.cumsum(p_link, axis=1)
        draw = uniforms[:, U_WEIGHT] * cum[:, -1]
        pick = np.minimum((cum < draw[:, None]).sum(axis=1), c - 1)
        rows = np.arange(k)
        targets = cand[rows, pick]
        signs = np.where(uniforms[:, U_SIGN] < p_pos[rows, pick], 1, -1).astype(np.int8)
        weights = np.clip(w_pred[rows, pick], 0.05, 1.0)
        cause = np.where(pick == 0, causes, LEARNED_CAUSE).astype(np.int8)
        events = apply_events(model, times, actors, uniforms, (targets, cause, signs, weights))
        ok = events.blocked == 0
        if ok.any():
            dev = self.device
            batch = ModelBatch(
                start=self._seq,
                src=torch.as_tensor(events.src[ok], device=dev),
                dst=torch.as_tensor(events.dst[ok], device=dev),
                t=torch.as_tensor(events.t[ok], dtype=torch.float32, device=dev),
                sign=torch.as_tensor(events.sign[ok], dtype=torch.float32, device=dev),
                weight=torch.as_tensor(events.weight[ok], dtype=torch.float32, device=dev),
            )
            net.observe(batch)  # type: ignore[operator]
        self._seq += len(events)
        return events
