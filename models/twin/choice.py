r"""Whom an actor picks: a learned mixture over the mechanisms that make real links.

For actor ``u`` at time ``t`` the candidates come from six pools, each one a mechanism:

======== ============================================= =================================
pool     members                                       within-pool features
======== ============================================= =================================
recip    nodes that rated ``u``, not yet rated back    log(1 + time since), their sign
repeat   nodes ``u`` already rated                     log(1 + time since), rated back
triad    partners of ``u``'s recent partners           log(paths), already rated
new      nodes that arrived in the last 30 days        log(1 + age), already rated
popular  every present node, by decayed in-degree      already rated (one weight)
uniform  every present node                            already rated (one weight)
======== ============================================= =================================

Every small-pool member also carries its opinion distance to the actor (as last
recorded; zero for an imported network). The target's probability is
:math:`p(v) = \sum_k \pi_k(\mathrm{kind}_u)\, p_k(v)`: the mixture weights depend on
the actor's kind (softmax over the pools that are not empty) and each pool is a softmax
over its members of a linear score of their features plus a same-group term whose
weight depends on the actor's kind and the pool (so a twin of a simulated run can learn
that trolls seek the other group). The two global pools are normalised in closed form
from per-group sums. All weights are fitted by maximum likelihood of the
observed targets over the history (each event scored from the graph as it stood before
it), with L-BFGS in PyTorch and a weak ridge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.twin.graph import POP_TAU, GraphState

__all__ = ["POOLS", "ChoiceModel", "ChoiceRecorder", "choose_target"]

POOLS = ("recip", "repeat", "triad", "new", "popular", "uniform")
RECIP, REPEAT, TRIAD, NEW, POPULAR, UNIFORM = range(6)
SMALL = (RECIP, REPEAT, TRIAD, NEW)
NEW_DAYS = 30.0
#: Most members kept in the repeat pool (most recent first ratings) and the new pool.
CAP = 40
#: Within-pool features: the pool's two (table above) and the opinion distance to the actor.
N_FEATS = 3
#: Ridge penalty on the choice weights (per act).
RIDGE = 1e-4
N_KINDS = 4


def small_pools(g: GraphState, u: int, t: float) -> list[tuple[list[int], np.ndarray]]:
    """Members and features ``(m, 2)`` of the four small pools of actor ``u`` at ``t``."""
    out, inn = g.out_last[u], g.in_last[u]
    recip = [x for x in inn if x not in out]
    f_recip = np.array([[math.log1p(t - inn[x][0]), float(inn[x][1] > 0)] for x in recip]
                       ).reshape(-1, 2)
    repeat = list(out)[-CAP:]
    f_repeat = np.array([[math.log1p(t - out[x][0]), float(x in inn)] for x in repeat]
                        ).reshape(-1, 2)
    hop = g.two_hop(u)
    triad = [z for z in hop if g.present[z]]
    f_triad = np.array([[math.log(hop[z][0]), float(z in out)] for z in triad]).reshape(-1, 2)
    new = []
    for ta, z in reversed(g.arrivals):
        if t - ta > NEW_DAYS:
            break
        if z != u:
            new.append(z)
            if len(new) == CAP:
                break
    f_new = np.array([[math.log1p(t - g.arrival[z]), float(z in out)] for z in new]).reshape(-1, 2)
    return [(recip, f_recip), (repeat, f_repeat), (triad, f_triad), (new, f_new)]


def with_distance(pools: list[tuple[list[int], np.ndarray]], opinion: np.ndarray | None,
                  u: int) -> list[tuple[list[int], np.ndarray]]:
    """Append each member's opinion distance to ``u`` (zeros without opinions) as a feature."""
    out = []
    for members, feats in pools:
        if opinion is None or not members:
            dist = np.zeros((len(members), 1))
        else:
            dist = np.abs(opinion[np.asarray(members)] - opinion[u])[:, None]
        out.append((members, np.hstack([feats, dist])))
    return out


def recip_gate(pools: list[tuple[list[int], np.ndarray]]) -> float:
    """log(1 + days since the newest unanswered rating): it shifts the weight of ``recip``."""
    feats = pools[RECIP][1]
    return float(feats[:, 0].min()) if feats.shape[0] else 0.0


def global_sums(g: GraphState, u: int, t: float) -> np.ndarray:
    """Sums that normalise the two global pools for actor ``u``.

    Returns ``(2, 4)``: for the popular and uniform pools, the base weight of present
    nodes in ``u``'s group and outside it (both without ``u``), and the same two sums over
    the nodes ``u`` already rated.
    """
    gu = g.group[u]
    scale = math.exp(-(t - g.pop_ref) / POP_TAU)
    out = np.fromiter(g.out_last[u].keys(), dtype=np.int64, count=len(g.out_last[u]))
    same_out = g.group[out] == gu
    pop_out = g.pop_w[out] * scale
    res = np.empty((2, 4))
    res[0, 0] = (g.group_pop[gu] - g.pop_w[u]) * scale
    res[0, 1] = g.group_pop.sum() * scale - res[0, 0] - g.pop_w[u] * scale
    res[0, 2] = pop_out[same_out].sum()
    res[0, 3] = pop_out[~same_out].sum()
    res[1, 0] = g.group_count[gu] - (1.0 if g.present[u] else 0.0)
    res[1, 1] = g.group_count.sum() - g.group_count[gu]
    res[1, 2] = float(np.count_nonzero(same_out))
    res[1, 3] = float(np.count_nonzero(~same_out))
    return np.maximum(res, 0.0)


class ChoiceModel(torch.nn.Module):
    """Mixture weights per actor kind, within-pool feature weights, group and repeat terms."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Parameter(torch.zeros(N_KINDS, len(POOLS), dtype=torch.float64))
        self.theta = torch.nn.Parameter(torch.zeros(len(SMALL), N_FEATS, dtype=torch.float64))
        self.same = torch.nn.Parameter(torch.zeros(N_KINDS, len(POOLS), dtype=torch.float64))
        self.rated = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.gate = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def summary(self) -> dict[str, Any]:
        """Fitted weights as plain lists."""
        return {k: v.detach().tolist() for k, v in self.state_dict().items()}


@dataclass
class _Records:
    kind: list[int]
    gate: list[float]
    mask: list[np.ndarray]
    glob: list[np.ndarray]
    true_glob: list[np.ndarray]
    m_event: list[np.ndarray]
    m_pool: list[np.ndarray]
    m_feat: list[np.ndarray]
    m_same: list[np.ndarray]
    m_true: list[np.ndarray]


class ChoiceRecorder:
    """Collects, event by event, what the likelihood of each observed target needs."""

    def __init__(self) -> None:
        self.r = _Records([], [], [], [], [], [], [], [], [], [])
        self.answer: list[float] = []

    def set_answer_share(self, share: np.ndarray) -> None:
        """Per recorded act, the share of the actor's intensity due to ratings it received."""
        self.answer = [float(v) for v in share]

    def record(self, g: GraphState, kind: np.ndarray, t: float, u: int, v: int,
               opinion: np.ndarray | None = None) -> None:
        """Score the observed act ``u -> v`` against the state before it."""
        e = len(self.r.kind)
        ku = int(kind[u])
        self.r.kind.append(ku)
        pools = with_distance(small_pools(g, u, t), opinion, u)
        self.r.gate.append(recip_gate(pools))
        self.answer.append(0.0)
        mask = np.ones(len(POOLS), dtype=bool)
        for k, (members, feats) in enumerate(pools):
            mask[k] = len(members) > 0
            if not members:
                continue
            idx = np.asarray(members, dtype=np.int64)
            self.r.m_event.append(np.full(idx.size, e))
            self.r.m_pool.append(np.full(idx.size, k))
            self.r.m_feat.append(feats)
            self.r.m_same.append((g.group[idx] == g.group[u]).astype(np.float64))
            self.r.m_true.append(idx == v)
        sums = global_sums(g, u, t)
        mask[POPULAR] = sums[0, 0] + sums[0, 1] > 0
        mask[UNIFORM] = sums[1, 0] + sums[1, 1] > 0
        self.r.mask.append(mask)
        self.r.glob.append(sums)
        scale = math.exp(-(t - g.pop_ref) / POP_TAU)
        base = np.array([g.pop_w[v] * scale, 1.0])
        self.r.true_glob.append(np.array([*base, float(v in g.out_last[u]),
                                          float(g.group[v] == g.group[u])]))

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        r = self.r

        def cat(xs: list[np.ndarray], width: int = 0) -> torch.Tensor:
            if xs:
                return torch.as_tensor(np.concatenate(xs))
            return torch.zeros((0, width) if width else 0, dtype=torch.float64)

        gate = torch.as_tensor(np.column_stack([r.gate, self.answer]), dtype=torch.float64)
        return (torch.as_tensor(r.kind), gate,
                torch.as_tensor(np.stack(r.mask)), torch.as_tensor(np.stack(r.glob)),
                torch.as_tensor(np.stack(r.true_glob)),
                cat(r.m_event).long() * len(SMALL) + cat(r.m_pool).long(), cat(r.m_pool).long(),
                cat(r.m_feat, N_FEATS), cat(r.m_same), cat(r.m_true).bool())

    def log_likelihood(self, model: ChoiceModel) -> torch.Tensor:
        """Log-probability of each recorded target under ``model``."""
        return _log_lik(model, *self._tensors())

    def fit(self, iterations: int = 60) -> tuple[ChoiceModel, float]:
        """Maximum-likelihood fit (L-BFGS); returns the model and the log-likelihood per act."""
        data = self._tensors()
        model = ChoiceModel()
        opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=iterations,
                                line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            # A weak ridge keeps weights that the data leave free (a pool never used by
            # some kind, a softmax's common shift) finite.
            ridge = sum((w * w).sum() for w in model.parameters())
            loss = -_log_lik(model, *data).mean() + RIDGE * ridge
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            ll = float(_log_lik(model, *data).mean())
        return model, ll


def _log_lik(model: ChoiceModel, kind: torch.Tensor, gate: torch.Tensor, mask: torch.Tensor,
             glob: torch.Tensor, tg: torch.Tensor, seg: torch.Tensor, pool: torch.Tensor,
             feat: torch.Tensor, same: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Log-probability of each observed target under the mixture."""
    n = kind.shape[0]
    gs = model.same[kind]  # (n, pools): same-group weight by actor kind and pool
    score = (feat * model.theta[pool]).sum(1) + gs[seg // len(SMALL), pool] * same
    nseg = n * len(SMALL)
    top = torch.full((nseg,), -1e300, dtype=score.dtype).scatter_reduce(
        0, seg, score, reduce="amax", include_self=True)
    top = torch.where(top < -1e299, torch.zeros_like(top), top).detach()
    z = torch.zeros(nseg, dtype=score.dtype).index_add(0, seg, torch.exp(score - top[seg]))
    num = torch.zeros(nseg, dtype=score.dtype).index_add(
        0, seg, torch.where(true, torch.exp(score - top[seg]), torch.zeros_like(score)))
    p_small = (num / z.clamp_min(1e-300)).view(n, len(SMALL))
    gg = gs[:, len(SMALL):]  # (n, 2) for the popular and uniform pools
    eg = torch.exp(gg)
    er = torch.exp(model.rated)
    zg = (glob[:, :, 0] * eg + glob[:, :, 1]
          + (glob[:, :, 2] * eg + glob[:, :, 3]) * (er[None, :] - 1.0))
    w_true = tg[:, :2] * torch.exp(model.rated[None, :] * tg[:, 2:3] + gg * tg[:, 3:4])
    p_glob = w_true / zg.clamp_min(1e-300)
    p = torch.cat([p_small, p_glob], dim=1)
    mix = model.mix[kind] + torch.nn.functional.pad((gate @ model.gate)[:, None], (0, len(POOLS) - 1))
    logits = torch.where(mask, mix, torch.full_like(p, -1e30))
    pi = torch.softmax(logits, dim=1)
    return torch.log((pi * p).sum(1).clamp_min(1e-300))


@dataclass
class ChoiceParams:
    """The fitted weights as numpy arrays for sampling."""

    mix: np.ndarray
    theta: np.ndarray
    same: np.ndarray
    rated: np.ndarray
    gate: np.ndarray

    @classmethod
    def from_model(cls, model: ChoiceModel) -> ChoiceParams:
        """Arrays of a fitted model (:func:`models.twin.temperature.scaled` sharpens them)."""
        d = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        return cls(mix=d["mix"], theta=d["theta"], same=d["same"], rated=d["rated"], gate=d["gate"])


def choose_target(g: GraphState, p: ChoiceParams, kind: int, u: int, t: float,
                  uni: np.ndarray, answer: float = 0.0, opinion: np.ndarray | None = None) -> int:
    """Sample the target of actor ``u`` at ``t`` with two uniforms ``uni``; -1 if none.

    ``answer`` is the share of the actor's current intensity due to ratings it received;
    ``opinion`` the nodes' opinions as last recorded (None for an imported network).
    """
    pools = with_distance(small_pools(g, u, t), opinion, u)
    mask = np.array([len(m) > 0 for m, _ in pools] + [True, True])
    present = g.present.copy()
    present[u] = False
    if not present.any():
        return -1
    weights_small = []
    for k, (members, feats) in enumerate(pools):
        if members:
            idx = np.asarray(members, dtype=np.int64)
            s = feats @ p.theta[k] + p.same[kind, k] * (g.group[idx] == g.group[u])
            w = np.exp(s - s.max())
            weights_small.append((idx, w / w.sum()))
        else:
            weights_small.append((np.empty(0, dtype=np.int64), np.empty(0)))
    base_pop = g.pop_w * present
    mask[POPULAR] = base_pop.sum() > 0
    mix = p.mix[kind].copy()
    mix[RECIP] += p.gate[0] * recip_gate(pools) + p.gate[1] * answer
    logits = np.where(mask, mix, -np.inf)
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    k = min(int(np.searchsorted(np.cumsum(pi), uni[0] * pi.sum(), side="right")), len(POOLS) - 1)
    while not mask[k]:
        k -= 1
    if k in SMALL:
        idx, w = weights_small[k]
    else:
        base = base_pop if k == POPULAR else present.astype(np.float64)
        adj = np.where(g.group == g.group[u], math.exp(min(float(p.same[kind, k]), 50.0)), 1.0)
        out = np.fromiter(g.out_last[u].keys(), dtype=np.int64, count=len(g.out_last[u]))
        w = base * adj
        w[out] *= math.exp(min(float(p.rated[k - POPULAR]), 50.0))
        idx = np.flatnonzero(w)
        w = w[idx] / w[idx].sum()
    j = min(int(np.searchsorted(np.cumsum(w), uni[1], side="right")), idx.size - 1)
    return int(idx[j])
