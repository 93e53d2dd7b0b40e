"""Honest baselines, run in the same strict online protocol as the model.

* :class:`EdgeBank` -- existence = "this pair was seen before" (unlimited memory) or
  "seen within the last ``window`` time units" (time-window variant, window = length of
  the validation period); sign and weight = the pair's last sign and signed weight, else
  the running global averages.
* :class:`ReputationHeuristic` -- existence = the target's in-degree so far (popularity);
  sign = the target's smoothed share of positive ratings received so far; weight = its
  smoothed mean signed weight received.
* :class:`FeatureClassifier` -- logistic regression or gradient boosting on the online
  degree and sign-count features (:data:`~models.features.COUNT_FEATURES`), or on every
  online feature the model's heads read (``features='all'``, activity counts included),
  optionally with the signed-triad features (``triads=True``): one classifier each for
  existence (true pairs vs sampled negatives), sign and the 3-class task, one regressor
  for the signed weight. Fitted on the training period; with prequential adaptation
  refitted every ``refit_every`` batches on all revealed events.
* The unsigned TGN baseline is :class:`models.train.NeuralMethod` around a
  ``variant='unsigned'`` model without features (built by :func:`unsigned_tgn`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from models.data import EventBatch, SignedEvents, TimeSplit, iter_batches
from models.features import OnlineFeatures, PairTable
from models.protocol import BatchScores
from models.sampling import TrainingNegatives
from models.scoring import compose_three
from models.signed_tgn import ModelConfig
from models.train import FitResult, NeuralMethod, TrainConfig, fit_model

__all__ = ["EdgeBank", "FeatureClassifier", "ReputationHeuristic", "unsigned_tgn"]


def _three(p_link: Tensor, p_pos: Tensor) -> Tensor:
    return torch.from_numpy(compose_three(p_link.double().cpu().numpy(),
                                          p_pos.double().cpu().numpy()))


class _GlobalPrior:
    """Running share of positive events and mean signed weight (smoothed)."""

    def __init__(self) -> None:
        self.n = 0.0
        self.pos = 0.0
        self.sw = 0.0

    def reset(self) -> None:
        self.n = self.pos = self.sw = 0.0

    @property
    def p_pos(self) -> float:
        return (self.pos + 1.0) / (self.n + 2.0)

    @property
    def mean_sw(self) -> float:
        return self.sw / self.n if self.n else 0.0

    def observe(self, batch: EventBatch) -> None:
        self.n += len(batch)
        self.pos += float((batch.sign > 0).sum())
        self.sw += float(batch.signed_weight.sum())


class EdgeBank:
    """EdgeBank (Poursafaei et al., 2022) with sign and weight memorised per pair.

    Args:
        num_nodes: Number of nodes.
        window: Time window for existence (None = unlimited memory).
    """

    def __init__(self, num_nodes: int, window: float | None = None) -> None:
        self.name = "edgebank" if window is None else "edgebank_window"
        self.window = window
        self.pairs = PairTable(num_nodes)
        self.last_sw: dict[int, float] = {}
        self.prior = _GlobalPrior()
        self.num_nodes = num_nodes

    def reset_state(self) -> None:
        """Forget every pair."""
        self.pairs.reset()
        self.last_sw.clear()
        self.prior.reset()

    def _seen(self, u: Tensor, v: Tensor, t_ref: float) -> Tensor:
        count, _, last_t = self.pairs.lookup(u, v)
        seen = count > 0
        if self.window is not None:
            seen = seen & ((t_ref - last_t) <= self.window)
        return seen.float()

    def score(self, batch: EventBatch, negatives: Tensor, col3: int) -> BatchScores:
        """Memorised pairs score 1, others 0."""
        b, q = negatives.shape
        t_ref = float(batch.t[0])
        ex_pos = self._seen(batch.src, batch.dst, t_ref)
        ex_neg = self._seen(batch.src.repeat_interleave(q), negatives.reshape(-1), t_ref)
        count, last_sign, _ = self.pairs.lookup(batch.src, batch.dst)
        p_pos = torch.where(count > 0, (last_sign > 0).float(), self.prior.p_pos)
        keys = (batch.src.cpu() * self.num_nodes + batch.dst.cpu()).tolist()
        w = torch.tensor([self.last_sw.get(k, self.prior.mean_sw) for k in keys])
        ex3 = self._seen(batch.src, negatives[:, col3], t_ref)
        c3, s3, _ = self.pairs.lookup(batch.src, negatives[:, col3])
        p3n = torch.where(c3 > 0, (s3 > 0).float(), self.prior.p_pos)
        return BatchScores(ex_pos, ex_neg.view(b, q), p_pos, w, _three(ex_pos, p_pos),
                           _three(ex3, p3n))

    def learn(self, batch: EventBatch) -> None:
        """Nothing to learn."""

    def observe(self, batch: EventBatch) -> None:
        """Memorise the batch's pairs."""
        self.pairs.observe(batch.src, batch.dst, batch.sign, batch.t)
        keys = (batch.src.cpu() * self.num_nodes + batch.dst.cpu()).tolist()
        for k, sw in zip(keys, batch.signed_weight.cpu().tolist(), strict=True):
            self.last_sw[k] = sw
        self.prior.observe(batch)


class ReputationHeuristic:
    """Target popularity for existence, target reputation for sign and weight.

    Args:
        num_nodes: Number of nodes.
        strength: Prior strength (pseudo-events) of the smoothing.
    """

    name = "reputation"

    def __init__(self, num_nodes: int, strength: float = 1.0) -> None:
        self.features = OnlineFeatures(num_nodes, fg_iters=0)
        self.prior = _GlobalPrior()
        self.strength = strength

    def reset_state(self) -> None:
        """Forget every event."""
        self.features.reset_state()
        self.prior.reset()

    def _sign_weight(self, v: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features
        deg = f.in_pos[v] + f.in_neg[v]
        a = self.strength
        p = (f.in_pos[v] + a * self.prior.p_pos) / (deg + a)
        w = (f.in_sw[v] + a * self.prior.mean_sw) / (deg + a)
        return p, w

    def score(self, batch: EventBatch, negatives: Tensor, col3: int) -> BatchScores:
        """Score from the targets' in-degree and received signs."""
        f = self.features
        b, q = negatives.shape

        def degree(v: Tensor) -> Tensor:
            return f.in_pos[v] + f.in_neg[v]

        d_pos, d_neg = degree(batch.dst), degree(negatives)
        p_pos, w = self._sign_weight(batch.dst)
        n3 = negatives[:, col3]
        p3n, _ = self._sign_weight(n3)
        d3 = degree(n3)
        return BatchScores(d_pos, d_neg, p_pos, w, _three(d_pos / (d_pos + 1), p_pos),
                           _three(d3 / (d3 + 1), p3n))

    def learn(self, batch: EventBatch) -> None:
        """Nothing to learn."""

    def observe(self, batch: EventBatch) -> None:
        """Count the batch's events."""
        self.features.observe(batch.src, batch.dst, batch.t, batch.sign, batch.weight)
        self.prior.observe(batch)


class FeatureClassifier:
    """Logistic regression or gradient boosting on online count features.

    The report name is ``kind`` (count features), ``kind_all`` (every feature), with
    ``+triads`` appended when the triad features are on.

    Args:
        num_nodes: Number of nodes.
        kind: ``logreg`` or ``gbdt``.
        seed: Seed of the negatives and of the boosted trees.
        refit_every: Batches between refits under prequential adaptation.
        features: ``counts`` (degree and sign counts) or ``all`` (every online feature,
            fairness and goodness included).
        triads: Add the signed-triad features.
    """

    def __init__(self, num_nodes: int, kind: str = "gbdt", seed: int = 0,
                 refit_every: int = 10, features: str = "counts", triads: bool = False) -> None:
        if kind not in ("logreg", "gbdt"):
            raise ValueError("kind must be 'logreg' or 'gbdt'")
        if features not in ("counts", "all"):
            raise ValueError("features must be 'counts' or 'all'")
        self.name = kind + ("_all" if features == "all" else "") + ("+triads" if triads else "")
        self.kind = kind
        self.seed = seed
        self.refit_every = refit_every
        self.counts_only = features == "counts"
        self.features = OnlineFeatures(num_nodes, fg_iters=0 if self.counts_only else 1,
                                       triads=triads, activity=not self.counts_only)
        self.sampler = TrainingNegatives(num_nodes)
        self.gen = torch.Generator().manual_seed(seed)
        self._x_pos: list[np.ndarray] = []
        self._x_neg: list[np.ndarray] = []
        self._sign: list[np.ndarray] = []
        self._sw: list[np.ndarray] = []
        self._cache: np.ndarray | None = None
        self._since_fit = 0
        self.models: dict[str, BaseEstimator] = {}

    def _clf(self) -> BaseEstimator:
        if self.kind == "logreg":
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05,
                                              random_state=self.seed)

    def _reg(self) -> BaseEstimator:
        if self.kind == "logreg":
            return make_pipeline(StandardScaler(), LinearRegression())
        return HistGradientBoostingRegressor(max_iter=150, learning_rate=0.05,
                                             random_state=self.seed)

    def reset_state(self) -> None:
        """Forget the stream (fitted models and training data are kept)."""
        self.features.reset_state()
        self.sampler.reset_state()
        self._cache = None

    def _feat(self, u: Tensor, v: Tensor, t_ref: float) -> np.ndarray:
        x = self.features.query(u, v, t_ref, counts_only=self.counts_only)
        return x.double().cpu().numpy()

    def _collect(self, batch: EventBatch, x_pos: np.ndarray) -> None:
        neg = self.sampler.sample(batch.src, batch.dst, self.gen)
        self._x_pos.append(x_pos)
        self._x_neg.append(self._feat(batch.src, neg, float(batch.t[0])))
        self._sign.append(batch.sign.cpu().numpy())
        self._sw.append(batch.signed_weight.cpu().numpy())

    def fit(self, events: SignedEvents, split: TimeSplit, batch_size: int) -> None:
        """Collect strict online features over the training period and fit."""
        self.reset_state()
        for batch in iter_batches(events, 0, split.train_end, batch_size):
            self._collect(batch, self._feat(batch.src, batch.dst, float(batch.t[0])))
            self.observe(batch)
        self._refit()

    def _refit(self) -> None:
        xp, xn = np.concatenate(self._x_pos), np.concatenate(self._x_neg)
        sign = np.concatenate(self._sign)
        sw = np.concatenate(self._sw)
        x = np.concatenate([xp, xn])
        y_exist = np.concatenate([np.ones(len(xp)), np.zeros(len(xn))])
        y3 = np.concatenate([np.where(sign > 0, 1, 2), np.zeros(len(xn), dtype=int)])
        self.models = {"exist": self._clf().fit(x, y_exist), "three": self._clf().fit(x, y3),
                       "weight": self._reg().fit(xp, sw)}
        if len(np.unique(sign)) > 1:
            self.models["sign"] = self._clf().fit(xp, (sign > 0).astype(int))
        else:
            self.models.pop("sign", None)
        self._since_fit = 0

    def _proba(self, name: str, x: np.ndarray, positive_class: int = 1) -> np.ndarray:
        model = self.models[name]
        classes = list(model.classes_)  # type: ignore[attr-defined]
        p = model.predict_proba(x)  # type: ignore[attr-defined]
        return p[:, classes.index(positive_class)] if positive_class in classes else np.zeros(len(x))

    def _three(self, x: np.ndarray) -> np.ndarray:
        model = self.models["three"]
        p = model.predict_proba(x)  # type: ignore[attr-defined]
        out = np.zeros((len(x), 3))
        for j, c in enumerate(model.classes_):  # type: ignore[attr-defined]
            out[:, int(c)] = p[:, j]
        return out

    def score(self, batch: EventBatch, negatives: Tensor, col3: int) -> BatchScores:
        """Score with the fitted classifiers."""
        b, q = negatives.shape
        t_ref = float(batch.t[0])
        x_pos = self._feat(batch.src, batch.dst, t_ref)
        x_neg = self._feat(batch.src.repeat_interleave(q), negatives.reshape(-1), t_ref)
        self._cache = x_pos
        ex = self._proba("exist", np.concatenate([x_pos, x_neg]))
        if "sign" in self.models:
            p_pos = self._proba("sign", x_pos)
        else:
            p_pos = np.full(b, float(np.concatenate(self._sign).mean() > 0))
        w = self.models["weight"].predict(x_pos)  # type: ignore[attr-defined]
        x3 = x_neg.reshape(b, q, -1)[:, col3]
        t = torch.from_numpy
        return BatchScores(t(ex[:b]), t(ex[b:].reshape(b, q)), t(p_pos), t(np.asarray(w)),
                           t(self._three(x_pos)), t(self._three(x3)))

    def learn(self, batch: EventBatch) -> None:
        """Keep the revealed batch; refit every ``refit_every`` batches."""
        x_pos = self._cache if self._cache is not None else self._feat(
            batch.src, batch.dst, float(batch.t[0]))
        self._collect(batch, x_pos)
        self._since_fit += 1
        if self._since_fit >= self.refit_every:
            self._refit()

    def observe(self, batch: EventBatch) -> None:
        """Count the batch's events."""
        self.features.observe(batch.src, batch.dst, batch.t, batch.sign, batch.weight)
        self.sampler.observe(batch.src, batch.dst)
        self._cache = None


def unsigned_tgn(
    events: SignedEvents, split: TimeSplit, train: TrainConfig,
    model_overrides: dict[str, Any] | None = None, progress: bool = False,
) -> tuple[NeuralMethod, FitResult]:
    """Train the unsigned TGN baseline (one memory, no online features)."""
    cfg = ModelConfig(num_nodes=events.num_nodes, variant="unsigned", use_features=False,
                      **(model_overrides or {}))
    fit = fit_model(events, split, cfg, train, progress=progress, name="tgn")
    return NeuralMethod("tgn", fit.model, train), fit
