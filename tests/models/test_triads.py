"""Signed-triad features: exact counts, a brute-force check, no leakage, model wiring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.data import events_from_arrays, iter_batches
from models.features import ACTIVITY_NAMES, FEATURE_NAMES, OnlineFeatures, feature_dim
from models.signed_tgn import ModelConfig, build_model
from models.triads import NUM_TRIAD_FEATURES, TRIAD_NAMES, SignedTriads

from .conftest import random_stream

# 0 -> 2 (+), 2 -> 1 (-), 1 -> 3 (+), 3 -> 0 (-), 0 -> 2 (-) replaces the first sign,
# 2 -> 0 (+), 4 -> 1 (+) (node 4 is a neighbour of 1 only).
SRC = [0, 2, 1, 3, 0, 2, 4]
DST = [2, 1, 3, 0, 2, 0, 1]
SIGN = [1, -1, 1, -1, -1, 1, 1]


def observed(n_events: int = len(SRC)) -> SignedTriads:
    tri = SignedTriads(5)
    tri.observe(torch.tensor(SRC[:n_events]), torch.tensor(DST[:n_events]),
                torch.tensor(SIGN[:n_events], dtype=torch.float))
    return tri


def named(tri: SignedTriads, u: int, v: int) -> dict[str, float]:
    row = tri.query(torch.tensor([u]), torch.tensor([v]))[0]
    return dict(zip(TRIAD_NAMES, row.tolist(), strict=True))


def test_sixteen_types_are_named_in_index_order():
    assert len(TRIAD_NAMES) == NUM_TRIAD_FEATURES == 19
    assert TRIAD_NAMES[0] == "t_uw+_wv+" and TRIAD_NAMES[5] == "t_uw-_wv-"
    assert TRIAD_NAMES[9] == "t_wu+_wv-" and TRIAD_NAMES[14] == "t_wu-_vw+"
    assert len(set(TRIAD_NAMES)) == 19


def test_exact_counts_on_hand_written_events():
    x = named(observed(), 0, 1)
    # w = 2: 0 -> 2 (-, latest) and 2 -> 0 (+) with 2 -> 1 (-): two triads.
    # w = 3: 3 -> 0 (-) with 1 -> 3 (+). w = 4 touches 1 only.
    expected = {"t_uw-_wv-": 1, "t_wu+_wv-": 1, "t_wu-_vw+": 1}
    for name in TRIAD_NAMES[:16]:
        assert x[name] == pytest.approx(math.log1p(expected.get(name, 0))), name
    assert x["embeddedness"] == pytest.approx(math.log1p(2))
    # balance: (-)(-), (+)(-), (-)(+) -> (1 - 1 - 1) / 3
    assert x["balance_score"] == pytest.approx(-1 / 3)
    # status: (x + y) / 2 = (-1 - 1) / 2, (-1 - 1) / 2, (+1 - 1) / 2 -> -2 / 3
    assert x["status_score"] == pytest.approx(-2 / 3)
    y = named(observed(), 1, 0)  # the reverse pair sees the mirrored triads
    expected = {"t_wu-_wv+": 1, "t_wu-_vw-": 1, "t_uw+_wv-": 1}
    for name in TRIAD_NAMES[:16]:
        assert y[name] == pytest.approx(math.log1p(expected.get(name, 0))), name
    assert y["balance_score"] == pytest.approx(-1 / 3)


def test_latest_sign_wins_and_unrelated_pairs_are_zero():
    before = named(observed(4), 0, 1)  # 0 -> 2 still positive, no 2 -> 0 yet
    assert before["t_uw+_wv-"] == pytest.approx(math.log1p(1))
    assert before["t_uw-_wv-"] == 0 and before["t_wu+_wv-"] == 0
    assert named(observed(), 3, 4)["embeddedness"] == pytest.approx(math.log1p(1))  # via 1
    empty = named(observed(), 4, 0)  # 4's only neighbour (1) is no neighbour of 0
    assert all(v == 0 for v in empty.values())
    assert SignedTriads(3).query(torch.tensor([0]), torch.tensor([1])).abs().sum() == 0


def brute_force(events: list[tuple[int, int, int]], n: int, u: int, v: int) -> np.ndarray:
    last = {(s, d): g for s, d, g in events if s != d}
    counts, emb, bal, status, total = np.zeros(16), 0, 0.0, 0.0, 0
    for w in range(n):
        if w in (u, v):
            continue
        legs_u = [(0, last.get((u, w)), 1), (1, last.get((w, u)), -1)]
        legs_v = [(0, last.get((w, v)), 1), (1, last.get((v, w)), -1)]
        if not any(s for _, s, _ in legs_u) or not any(s for _, s, _ in legs_v):
            continue
        emb += 1
        for du, su, x in legs_u:
            for dv, sv, y in legs_v:
                if su and sv:
                    counts[((du * 2 + (su < 0)) * 2 + dv) * 2 + (sv < 0)] += 1
                    bal += su * sv
                    status += (x * su + y * sv) / 2
                    total += 1
    return np.concatenate([np.log1p(counts), [np.log1p(emb), bal / max(total, 1),
                                              status / max(total, 1)]])


# min_recent: merged into the main table after every batch, now and then, never
@pytest.mark.parametrize("min_recent", [1, 40, 10**9])
def test_matches_brute_force_on_a_random_stream(min_recent):
    rng = np.random.default_rng(0)
    n, m = 12, 300
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)  # self-loops and repeats too
    sign = np.where(rng.random(m) < 0.3, -1, 1)
    tri = SignedTriads(n, min_recent=min_recent)
    merges = both = 0
    for k in range(0, m, 50):
        qu, qv = rng.integers(0, n, 100), rng.integers(0, n, 100)
        got = tri.query(torch.tensor(qu), torch.tensor(qv)).numpy()
        events = list(zip(src[:k].tolist(), dst[:k].tolist(), sign[:k].tolist(), strict=True))
        want = np.stack([brute_force(events, n, a, b) for a, b in zip(qu, qv, strict=True)])
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"after {k} events")
        both += tri.tables.main[0].numel() > 0 and tri.tables.recent[0].numel() > 0
        before = tri.tables.main[0].numel()
        tri.observe(torch.tensor(src[k:k + 50]), torch.tensor(dst[k:k + 50]),
                    torch.tensor(sign[k:k + 50], dtype=torch.float))
        merges += tri.tables.main[0].numel() != before
    assert (merges > 0) == (min_recent < 10**9)
    assert (both > 0) == (min_recent < 10**9)  # queries read both tables


def per_batch_features(ev, bs: int) -> list[torch.Tensor]:
    f = OnlineFeatures(ev.num_nodes, fg_iters=1, triads=True)
    # every ordered pair of nodes, queried before each batch
    u, v = torch.meshgrid(torch.arange(ev.num_nodes), torch.arange(ev.num_nodes),
                          indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    out = []
    for b in iter_batches(ev, 0, len(ev), bs):
        out.append(f.query(u, v, float(b.t[0])))
        f.observe(b.src, b.dst, b.t, b.sign, b.weight)
    return out


def test_features_of_batch_k_ignore_batch_k_and_later():
    ev = random_stream(400, 20, seed=9)
    k, bs = 6, 40
    base = per_batch_features(ev, bs)
    # change every event from batch k on: signs, weights and destinations
    lo = k * bs
    src, dst = ev.src.numpy().copy(), ev.dst.numpy().copy()
    sign, weight = ev.sign.numpy().copy(), ev.weight.numpy().copy()
    dst[lo:] = (dst[lo:] + 3) % ev.num_nodes
    dst[lo:][dst[lo:] == src[lo:]] = (src[lo:][dst[lo:] == src[lo:]] + 1) % ev.num_nodes
    sign[lo:] = -sign[lo:]
    weight[lo:] = 1.05 - weight[lo:]
    other = events_from_arrays(ev.node_ids[src], ev.node_ids[dst], ev.t.numpy(), sign, weight)
    assert other.num_nodes == ev.num_nodes
    changed = per_batch_features(other, bs)
    for i in range(k + 1):  # through batch k
        assert torch.equal(base[i], changed[i]), i
    tri = slice(len(FEATURE_NAMES), None)
    assert (base[k + 1][:, tri] - changed[k + 1][:, tri]).abs().max() > 0.1


def test_features_and_model_wiring():
    f = OnlineFeatures(5, fg_iters=0, triads=True)
    f.observe(torch.tensor(SRC), torch.tensor(DST), torch.arange(7.0),
              torch.tensor(SIGN, dtype=torch.float), torch.full((7,), 0.5))
    u, v = torch.tensor([0, 1]), torch.tensor([1, 0])
    full, counts = f.query(u, v, 8.0), f.query(u, v, 8.0, counts_only=True)
    assert full.shape == (2, feature_dim(True)) == (2, len(FEATURE_NAMES) + 19)
    assert counts.shape == (2, feature_dim(True, counts_only=True)) == (2, 10 + 19)
    torch.testing.assert_close(full[:, len(FEATURE_NAMES):], observed().query(u, v))
    # the state kept outside buffers round-trips (the training loop restores it)
    saved = f.extra_state()
    f.observe(torch.tensor([1]), torch.tensor([2]), torch.tensor([9.0]),
              torch.tensor([-1.0]), torch.tensor([0.5]))
    assert not torch.equal(f.query(u, v, 10.0), full)
    f.load_extra_state(saved)
    torch.testing.assert_close(f.query(u, v, 8.0)[:, len(FEATURE_NAMES):],
                               full[:, len(FEATURE_NAMES):])
    f.reset_state()
    assert len(f.triads) == 0  # type: ignore[arg-type]
    # model: triads (and activity counts) widen the heads' input; a stored config without
    # the keys predates them
    on = build_model(ModelConfig(num_nodes=5, memory_dim=4, time_dim=4, msg_dim=4,
                                 embed_dim=4, hidden=4, neighbors=2))
    assert on.heads.feat_dim == feature_dim(True, activity=True)
    assert on.heads.feat_dim == len(FEATURE_NAMES) + len(ACTIVITY_NAMES) + 19
    old = ModelConfig.from_dict({"num_nodes": 5, "variant": "semba"})
    assert old.triads is False and old.activity is False
    assert build_model(old).heads.feat_dim == feature_dim(False) == len(FEATURE_NAMES)


@pytest.mark.parametrize("min_recent", [1, 10**9])
def test_a_saved_state_stays_as_it_was(min_recent):
    tri = SignedTriads(5, min_recent=min_recent)
    tri.observe(torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0]), torch.tensor([1.0, -1, 1]))
    saved = tri.state()
    copies = [x.clone() for x in saved]
    # an update of an existing pair's sign and a new pair
    tri.observe(torch.tensor([0, 3]), torch.tensor([1, 4]), torch.tensor([-1.0, 1]))
    for kept, copy in zip(saved, copies, strict=True):
        assert torch.equal(kept, copy)
    assert len(tri) == 4
    # entries (x, w) sorted, with the sign of x -> w and of w -> x
    key, out, inn = tri.table()
    assert key.tolist() == [0 * 5 + 1, 0 * 5 + 2, 1 * 5 + 0, 1 * 5 + 2, 2 * 5 + 0,
                            2 * 5 + 1, 3 * 5 + 4, 4 * 5 + 3]
    assert out.tolist() == [-1, 0, 0, -1, 1, 0, 1, 0]
    assert inn.tolist() == [0, 1, -1, 0, 0, -1, 0, 1]
    tri.load_state(saved)
    assert len(tri) == 3 and tri.table()[1].tolist()[0] == 1
