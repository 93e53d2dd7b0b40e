"""Online features, metric functions and heuristic baselines on hand-written streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.baselines import EdgeBank, FeatureClassifier, ReputationHeuristic
from models.data import events_from_arrays, split_by_time
from models.features import (
    ACTIVITY_NAMES,
    COUNT_FEATURES,
    FEATURE_NAMES,
    HALF_LIVES,
    OnlineFeatures,
    feature_dim,
)
from models.protocol import make_negatives, metrics_from, run_protocol
from models.scoring import (
    best_sign_threshold,
    best_three_class_thresholds,
    compose_three,
    mrr,
    sign_metrics,
    three_class_labels,
    weight_metrics,
)

from .conftest import random_stream

# 0 -> 1 (+0.5), 2 -> 1 (-1.0), 1 -> 0 (+0.2), 0 -> 1 (-0.4): two batches of two.
STREAM = events_from_arrays([0, 2, 1, 0], [1, 1, 0, 1], [1.0, 2.0, 4.0, 5.0], [1, -1, 1, -1],
                            [0.5, 1.0, 0.2, 0.4])


def feat(f, u, v, t):
    row = f.query(torch.tensor([u]), torch.tensor([v]), t)[0]
    return dict(zip(FEATURE_NAMES, row.tolist(), strict=True))


def test_features_exact_values():
    f = OnlineFeatures(3, fg_iters=0)
    assert feat(f, 0, 1, 1.0)["v_in_pos"] == 0 and feat(f, 0, 1, 1.0)["v_age"] == -1
    f.observe(STREAM.src[:2], STREAM.dst[:2], STREAM.t[:2], STREAM.sign[:2], STREAM.weight[:2])
    x = feat(f, 1, 0, 4.0)  # pair 1 -> 0 before it happens
    assert x["u_in_pos"] == pytest.approx(math.log1p(1))
    assert x["u_in_neg"] == pytest.approx(math.log1p(1))
    assert x["v_out_pos"] == pytest.approx(math.log1p(1)) and x["v_in_pos"] == 0
    assert x["pair_count_uv"] == 0 and x["pair_count_vu"] == pytest.approx(math.log1p(1))
    assert x["pair_last_sign_vu"] == 1 and x["pair_last_sign_uv"] == 0
    assert x["u_last_out_sign"] == 0 and x["u_since_last_out"] == -1
    assert x["v_since_last_in"] == -1 and x["v_age"] == pytest.approx(math.log1p(3.0))
    y = feat(f, 0, 1, 4.0)
    assert y["v_neg_share_in"] == pytest.approx((1 + 0.1) / (2 + 1))
    assert y["v_mean_sw_in"] == pytest.approx((0.5 - 1.0) / 2)
    assert y["v_min_sw_in"] == pytest.approx(-1.0)
    assert y["v_last_in_sign"] == -1 and y["v_since_last_in"] == pytest.approx(math.log1p(2.0))
    assert y["u_last_out_sign"] == 1 and y["u_since_last_out"] == pytest.approx(math.log1p(3.0))
    assert y["u_neg_share_out"] == pytest.approx(0.1 / 2)
    assert y["v_ema_neg_in"] == pytest.approx(0.7 * 0.0 + 0.3 * 1.0)  # +, then -
    assert y["u_age"] == pytest.approx(math.log1p(3.0))
    counts = f.query(torch.tensor([0]), torch.tensor([1]), 4.0, counts_only=True)
    assert counts.shape == (1, len(COUNT_FEATURES))


def test_fairness_goodness_match_the_fixed_point_iteration():
    f = OnlineFeatures(3, fg_iters=50)
    f.observe(STREAM.src, STREAM.dst, STREAM.t, STREAM.sign, STREAM.weight)
    src, dst = STREAM.src.numpy(), STREAM.dst.numpy()
    w = (STREAM.sign * STREAM.weight).numpy()
    fair, good = np.ones(3), np.zeros(3)
    for _ in range(50):
        fair, good = _fg_step(fair, good, src, dst, w, 3)
    np.testing.assert_allclose(f.goodness.numpy(), good, atol=1e-5)
    np.testing.assert_allclose(f.fairness.numpy(), fair, atol=1e-5)


def _fg_step(fair, good, src, dst, w, n):
    good = np.array([np.mean(fair[src[dst == v]] * w[dst == v]) if (dst == v).any() else 0
                     for v in range(n)])
    fair = np.array([1 - np.mean(np.abs(w[src == u] - good[dst[src == u]]) / 2)
                     if (src == u).any() else 1 for u in range(n)])
    return fair, good


def test_fairness_goodness_refresh_once_the_history_grew_by_fg_growth():
    g = torch.Generator().manual_seed(5)
    n, m = 6, 40
    src, dst = torch.randint(0, n, (m,), generator=g), torch.randint(0, n, (m,), generator=g)
    sign = torch.where(torch.rand(m, generator=g) < 0.7, 1.0, -1.0)
    weight, t = torch.rand(m, generator=g), torch.arange(m, dtype=torch.float32)
    f = OnlineFeatures(n, fg_iters=1, fg_growth=0.5)
    w = (sign * weight).numpy()
    fair, good, last, refreshed = np.ones(n), np.zeros(n), 0, []
    for k in range(m):
        f.observe(src[k:k + 1], dst[k:k + 1], t[k:k + 1], sign[k:k + 1], weight[k:k + 1])
        if k + 1 - last >= 0.5 * last:  # grown by half since the last refresh
            fair, good = _fg_step(fair, good, src[:k + 1].numpy(), dst[:k + 1].numpy(),
                                  w[:k + 1], n)
            last = k + 1
            refreshed.append(k + 1)
        np.testing.assert_allclose(f.goodness.numpy(), good, atol=1e-6)
        np.testing.assert_allclose(f.fairness.numpy(), fair, atol=1e-6)
    assert refreshed == [1, 2, 3, 5, 8, 12, 18, 27]
    with pytest.raises(ValueError, match="fg_growth"):
        OnlineFeatures(n, fg_growth=-0.1)


def test_mrr_averages_ties_and_metric_functions():
    pos = np.array([0.9, 0.5, 0.1])
    neg = np.array([[0.1, 0.2], [0.5, 0.5], [0.3, 0.1]])
    # ranks: 1; 1 + 0 + 2/2 = 2; 1 + 1 + 1/2 = 2.5
    assert mrr(pos, neg) == pytest.approx((1 + 1 / 2 + 1 / 2.5) / 3)
    positive = np.array([True, True, False, False])
    p = np.array([0.9, 0.6, 0.55, 0.1])
    th = best_sign_threshold(positive, p)
    assert th == pytest.approx(0.6)
    m = sign_metrics(positive, p, th)
    assert m["auc"] == 1.0 and m["macro_f1"] == 1.0 and m["f1_neg"] == 1.0
    w = weight_metrics(np.array([1.0, -1.0, 0.5]), np.array([0.5, -0.5, 0.5]))
    assert w["rmse"] == pytest.approx(math.sqrt(0.5 / 3)) and w["pearson"] > 0.9
    p3 = compose_three(np.array([0.9, 0.9, 0.1]), np.array([0.8, 0.2, 0.5]))
    assert p3.sum(1) == pytest.approx(np.ones(3))
    assert three_class_labels(p3, 0.5, 0.5).tolist() == [1, 2, 0]
    lt, st = best_three_class_thresholds(p3, np.array([1, 2, 0]))
    assert three_class_labels(p3, lt, st).tolist() == [1, 2, 0]


def test_edgebank_unlimited_and_window():
    ev = events_from_arrays([0, 1, 0, 2], [1, 2, 1, 0], [0.0, 1.0, 10.0, 10.0],
                            [1, -1, -1, 1], [0.5, 0.5, 0.3, 0.5])
    unlimited, window = EdgeBank(3), EdgeBank(3, window=5.0)
    for eb in (unlimited, window):
        eb.observe(ev.batch(0, 2))
    negatives = torch.tensor([[2, 1], [1, 2]])
    a = unlimited.score(ev.batch(2, 4), negatives, col3=1)
    b = window.score(ev.batch(2, 4), negatives, col3=1)
    assert a.exist_pos.tolist() == [1.0, 0.0] and b.exist_pos.tolist() == [0.0, 0.0]
    assert a.exist_neg.tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert a.p_pos[0] == 1.0  # last sign of 0 -> 1 was positive
    assert a.p_pos[1] == pytest.approx((1 + 1) / (2 + 2))  # unseen: smoothed global share
    assert a.weight.tolist() == pytest.approx([0.5, 0.0])


def test_reputation_heuristic_values():
    rep = ReputationHeuristic(3)
    rep.observe(STREAM.batch(0, 2))
    s = rep.score(STREAM.batch(2, 4), torch.tensor([[2], [2]]), col3=0)
    prior = (1 + 1) / (2 + 2)
    assert s.exist_pos.tolist() == [0.0, 2.0] and s.exist_neg.tolist() == [[0.0], [0.0]]
    assert s.p_pos.tolist() == pytest.approx([prior, (1 + prior) / 3])
    assert s.weight[1].item() == pytest.approx((-0.5 - 0.25) / 3)  # prior mean -0.25


def test_reputation_is_the_targets_not_the_raters():
    # node 2 only receives negatives, node 0 only positives; then 0 -> 2 and 2 -> 0
    ev = events_from_arrays([0, 1, 2, 1, 0, 2], [2, 2, 0, 0, 2, 0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                            [-1, -1, 1, 1, -1, 1], [0.8, 0.6, 1.0, 0.4, 0.5, 0.5])
    rep = ReputationHeuristic(3)
    rep.observe(ev.batch(0, 4))
    s = rep.score(ev.batch(4, 6), torch.tensor([[1], [1]]), col3=0)
    prior = (2 + 1) / (4 + 2)  # global share of positives, smoothed: 0.5
    assert s.p_pos.tolist() == pytest.approx([(0 + prior) / 3, (2 + prior) / 3])  # 1/6, 5/6
    mean_sw = (-0.8 - 0.6 + 1.0 + 0.4) / 4  # 0.0
    assert s.weight.tolist() == pytest.approx([(-1.4 + mean_sw) / 3, (1.4 + mean_sw) / 3])
    assert s.exist_pos.tolist() == [2.0, 2.0] and s.exist_neg.tolist() == [[0.0], [0.0]]


def test_all_baselines_run_the_protocol_and_feature_classifiers_learn():
    ev = random_stream(1000, 30, seed=6)
    split = split_by_time(ev)
    negs = make_negatives(ev, split, 50, n_neg=20)
    results = {}
    for method in (EdgeBank(ev.num_nodes), ReputationHeuristic(ev.num_nodes),
                   FeatureClassifier(ev.num_nodes, "logreg", refit_every=2),
                   FeatureClassifier(ev.num_nodes, "gbdt")):
        if isinstance(method, FeatureClassifier):
            method.fit(ev, split, 50)
        res = run_protocol(method, ev, split, negs, 50, adapt=method.name == "logreg")
        results[method.name] = metrics_from(res)["test"]
    for name, m in results.items():
        assert 0 <= m["exist_mrr"] <= 1, name
        assert set(m) >= {"sign_auc", "sign_macro_f1", "weight_rmse", "three_class_macro_f1"}
    # The stream has negative-prone targets: reputation and the classifiers find them.
    assert results["reputation"]["sign_auc"] > 0.7
    assert results["gbdt"]["sign_auc"] > 0.6 and results["logreg"]["sign_auc"] > 0.6


def test_feature_classifier_feature_sets_and_names():
    ev = random_stream(600, 20, seed=8)
    split = split_by_time(ev)
    negs = make_negatives(ev, split, 50, n_neg=10)
    widths = {}
    for features, triads, name in (("counts", False, "gbdt"), ("counts", True, "gbdt+triads"),
                                   ("all", False, "gbdt_all"), ("all", True, "gbdt_all+triads")):
        clf = FeatureClassifier(ev.num_nodes, "gbdt", features=features, triads=triads)
        assert clf.name == name
        clf.fit(ev, split, 50)
        widths[name] = np.concatenate(clf._x_pos).shape[1]
        m = metrics_from(run_protocol(clf, ev, split, negs, 50))["test"]
        assert m["sign_auc"] > 0.6, name
    n_all = len(FEATURE_NAMES) + len(ACTIVITY_NAMES)
    assert widths == {"gbdt": 10, "gbdt+triads": 29, "gbdt_all": n_all,
                      "gbdt_all+triads": n_all + 19}
    with pytest.raises(ValueError, match="features"):
        FeatureClassifier(3, "gbdt", features="some")


def test_activity_counts_decay_exactly():
    f = OnlineFeatures(3, fg_iters=0, activity=True)
    f.observe(STREAM.src[:2], STREAM.dst[:2], STREAM.t[:2], STREAM.sign[:2], STREAM.weight[:2])
    f.observe(STREAM.src[2:], STREAM.dst[2:], STREAM.t[2:], STREAM.sign[2:], STREAM.weight[2:])
    row = f.query(torch.tensor([0]), torch.tensor([1]), 8.0)[0]
    assert row.shape == (feature_dim(False, activity=True),)
    x = dict(zip(FEATURE_NAMES + ACTIVITY_NAMES, row.tolist(), strict=True))

    def decayed(times, h):
        return math.log1p(sum(0.5 ** ((8.0 - t) / h) for t in times))

    for h in HALF_LIVES:
        # node 1 received at t = 1, 2, 5 and gave at t = 4; node 0 gave at 1, 5, got at 4
        assert x[f"v_in_rate_{h:g}"] == pytest.approx(decayed([1.0, 2.0, 5.0], h))
        assert x[f"v_out_rate_{h:g}"] == pytest.approx(decayed([4.0], h))
        assert x[f"u_out_rate_{h:g}"] == pytest.approx(decayed([1.0, 5.0], h))
        assert x[f"u_in_rate_{h:g}"] == pytest.approx(decayed([4.0], h))
    assert f.query(torch.tensor([0]), torch.tensor([1]), 8.0, counts_only=True).shape == (1, 10)
