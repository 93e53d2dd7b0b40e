"""The blend of two methods' protocol results: exact arrays, and the same as scoring online."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.blend import blend_results
from models.data import EventBatch, SignedEvents, iter_batches, split_by_time
from models.protocol import BatchScores, make_negatives, metrics_from, run_protocol


def _part(exist_pos, exist_neg, p_pos, weight, p3):
    return {"exist_pos": np.array(exist_pos), "exist_neg": np.array(exist_neg),
            "p_pos": np.array(p_pos), "weight": np.array(weight), "p3_pos": np.array(p3),
            "p3_neg": np.array(p3)[::-1].copy(), "sign": np.array([1.0, -1.0]),
            "signed_weight": np.array([0.5, -0.2]), "batch": np.array([0, 0])}


def test_blend_averages_log_odds_and_converts_logits():
    a = {"val": _part([0.0, math.log(3)], [[0.0], [0.0]], [0.9, 0.2], [0.4, -0.4],
                      [[0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])}
    b = {"val": _part([0.5, 0.25], [[0.1], [0.5]], [0.5, 0.8], [0.2, 0.0],
                      [[0.4, 0.5, 0.1], [0.3, 0.2, 0.5]])}
    out = blend_results([(a, True), (b, False)])["val"]
    # Existence: a gives logits, b probabilities (logit(0.25) = -log 3, logit(0.1) = -log 9).
    np.testing.assert_allclose(out["exist_pos"], [0.5, 0.5])
    np.testing.assert_allclose(out["exist_neg"], [[0.25], [0.5]])
    # Sign: the odds 9 and 1 average to log 3 (p = 0.75); 1/4 and 4 to 0 (p = 0.5).
    np.testing.assert_allclose(out["p_pos"], [0.75, 0.5])
    np.testing.assert_allclose(out["weight"], [0.3, -0.2])
    np.testing.assert_allclose(out["p3_pos"], [[0.3, 0.6, 0.1], [0.2, 0.2, 0.6]])
    assert out["sign"].tolist() == [1.0, -1.0] and out["batch"].tolist() == [0, 0]
    # The rule before, averaged probabilities (sigmoid(0) = 0.5, sigmoid(log 3) = 0.75).
    old = blend_results([(a, True), (b, False)], space="probability")["val"]
    np.testing.assert_allclose(old["exist_pos"], [0.5, 0.5])
    np.testing.assert_allclose(old["exist_neg"], [[0.3], [0.5]])
    np.testing.assert_allclose(old["p_pos"], [0.7, 0.5])
    np.testing.assert_allclose(old["weight"], out["weight"])
    with pytest.raises(ValueError, match="unknown blend space"):
        blend_results([(a, True), (b, False)], space="rank")


def test_blend_refuses_results_of_different_events():
    a = {"val": _part([0.0, 0.0], [[0.0], [0.0]], [0.5, 0.5], [0, 0], [[1, 0, 0]] * 2)}
    b = {"val": _part([0.0, 0.0], [[0.0], [0.0]], [0.5, 0.5], [0, 0], [[1, 0, 0]] * 2)}
    b["val"]["sign"] = np.array([1.0, 1.0])
    with pytest.raises(ValueError, match="different val events"):
        blend_results([(a, False), (b, False)])
    with pytest.raises(ValueError, match="at least two"):
        blend_results([(a, False)])


def test_a_certain_part_does_not_decide_the_blend_alone():
    sure = {"val": _part([1.0, 0.0], [[1.0], [0.0]], [1.0, 0.0], [0, 0], [[1, 0, 0]] * 2)}
    doubt = {"val": _part([0.01, 0.99], [[0.5], [0.5]], [0.01, 0.99], [0, 0],
                          [[1, 0, 0]] * 2)}
    out = blend_results([(sure, False), (doubt, False)])["val"]
    for key in ("exist_pos", "exist_neg", "p_pos"):
        assert np.all(np.isfinite(out[key]))
    # logit(1 - 1e-7) = 16.1 against logit(0.01) = -4.6: the certain part still wins,
    # but with a finite margin (sigmoid(5.76) = 0.99686 and 0.00314), not 1 and 0.
    np.testing.assert_allclose(out["p_pos"], [0.99686, 0.00314], atol=1e-5)


class _Toy:
    """A deterministic method whose scores depend on its own revealed history."""

    def __init__(self, name: str, scale: float, logits: bool) -> None:
        self.name, self.scale, self.logits = name, scale, logits
        self.seen = 0.0

    def reset_state(self) -> None:
        self.seen = 0.0

    def _raw(self, dst: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.scale * dst.double() + self.seen)

    def score(self, batch: EventBatch, negatives: torch.Tensor, col3: int) -> BatchScores:
        ex_pos, ex_neg = self._raw(batch.dst), self._raw(negatives)
        if not self.logits:
            ex_pos, ex_neg = torch.sigmoid(ex_pos), torch.sigmoid(ex_neg)
        p = torch.sigmoid(self._raw(batch.src))
        p3 = torch.stack([1 - p, p / 2, p / 2], dim=1)
        return BatchScores(ex_pos, ex_neg, p, 2 * p - 1, p3, p3.flip(0))

    def learn(self, batch: EventBatch) -> None:
        self.seen += float(batch.sign.sum()) * 0.01

    def observe(self, batch: EventBatch) -> None:
        self.seen += 0.001 * len(batch)


class _Both:
    """The blend as one online method: what blend_results must reproduce."""

    name = "both"

    def __init__(self, a: _Toy, b: _Toy) -> None:
        self.a, self.b = a, b

    def reset_state(self) -> None:
        self.a.reset_state()
        self.b.reset_state()

    def score(self, batch: EventBatch, negatives: torch.Tensor, col3: int) -> BatchScores:
        sa, sb = self.a.score(batch, negatives, col3), self.b.score(batch, negatives, col3)
        return BatchScores(
            torch.sigmoid((sa.exist_pos + torch.logit(sb.exist_pos)) / 2),
            torch.sigmoid((sa.exist_neg + torch.logit(sb.exist_neg)) / 2),
            torch.sigmoid((torch.logit(sa.p_pos) + torch.logit(sb.p_pos)) / 2),
            (sa.weight + sb.weight) / 2, (sa.p3_pos + sb.p3_pos) / 2,
            (sa.p3_neg + sb.p3_neg) / 2)

    def learn(self, batch: EventBatch) -> None:
        self.a.learn(batch)
        self.b.learn(batch)

    def observe(self, batch: EventBatch) -> None:
        self.a.observe(batch)
        self.b.observe(batch)


def test_blending_results_afterwards_equals_the_online_blend():
    g = torch.Generator().manual_seed(3)
    n, m = 30, 900
    src, dst = torch.randint(0, n, (m,), generator=g), torch.randint(0, n, (m,), generator=g)
    sign = torch.where(torch.rand(m, generator=g) < 0.8, 1.0, -1.0)
    events = SignedEvents(src=src, dst=dst, t=torch.arange(m, dtype=torch.float64),
                          sign=sign, weight=torch.rand(m, generator=g),
                          seq=np.arange(m, dtype=np.int64), node_ids=np.arange(n, dtype=np.int64))
    split = split_by_time(events, 0.5, 0.25)
    negs = make_negatives(events, split, 50, n_neg=5, seed=1)

    def run(method):
        return run_protocol(method, events, split, negs, 50, adapt=True)

    ra, rb = run(_Toy("a", 0.7, True)), run(_Toy("b", 1.3, False))
    online = run(_Both(_Toy("a", 0.7, True), _Toy("b", 1.3, False)))
    after = blend_results([(ra, True), (rb, False)])
    for part in ("val", "test"):
        for key, value in online[part].items():
            np.testing.assert_allclose(after[part][key], value, rtol=0, atol=1e-12)
    m_after, m_online = metrics_from(after), metrics_from(online)
    # The scores agree to 1e-12; a rank metric may still break a near-tie the other way.
    for part in ("val", "test"):
        assert m_after[part] == pytest.approx(m_online[part], rel=1e-4, nan_ok=True)
    assert len(list(iter_batches(events, *split.range("test"), 50))) == 5
