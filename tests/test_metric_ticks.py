"""Metric ticks off the hot path: compiled passes and the metrics thread change no value.

The reference below is the metric tick as it was computed before the compiled passes and
the metrics thread: numpy functions only, and a plain-Python triangle census. Every
comparison is exact (the float's bits), not approximate.
"""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Mapping

import numpy as np
import pytest

from sim.engine import metric_kernels as kernels
from sim.engine import metrics as m
from sim.engine.simulate import run_into_store
from sim.engine.triangles import signed_triangle_census, triangle_census
from sim.scenario import parse_scenario
from sim.store.database import open_store


# -- the reference -------------------------------------------------------------------------
def reference_census(src, dst, signs) -> list[int]:
    """Triangles by negative edges of the last-sign graph, by enumeration."""
    sign_of: dict[tuple[int, int], float] = {}
    for s, d, g in zip(np.asarray(src).tolist(), np.asarray(dst).tolist(),
                       np.sign(np.asarray(signs, dtype=float)).tolist(), strict=True):
        if s != d and g != 0:
            sign_of[(min(s, d), max(s, d))] = g
    adj: dict[int, set[int]] = {}
    for a, b in sign_of:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    counts = [0, 0, 0, 0]
    for a, b in sign_of:
        for c in adj[a] & adj[b]:
            if c > b:
                counts[sum(sign_of[p] < 0 for p in ((a, b), (a, c), (b, c)))] += 1
    return counts


def reference_window_metrics(window: Mapping[str, np.ndarray], opinions, groups, negativity,
                             active, window_days: float) -> dict[str, float]:
    """The numpy-only metric tick (the engine's code before the compiled passes)."""
    src = np.asarray(window["src"], dtype=np.int64).ravel()
    dst = np.asarray(window["dst"], dtype=np.int64).ravel()
    sign = np.asarray(window["sign"], dtype=np.float64).ravel()
    weight = np.asarray(window["weight"], dtype=np.float64).ravel()
    delivered = np.asarray(window["delivered"]).astype(bool).ravel()
    if "t" in window and src.size:
        order = np.argsort(np.asarray(window["t"], dtype=np.float64), kind="stable")
        src, dst, sign, weight, delivered = (
            src[order], dst[order], sign[order], weight[order], delivered[order])
    op = np.asarray(opinions, dtype=np.float64).ravel()
    act = np.asarray(active).astype(bool).ravel()
    g = np.asarray(groups).ravel()
    # toxicity
    keep = delivered & (sign < 0)
    exposure = np.bincount(dst[keep], weights=np.abs(weight)[keep], minlength=op.size)[:op.size]
    # opinions
    if op.size < 4 or np.ptp(op) == 0:
        bimodality = math.nan
    else:
        d = op - op.mean()
        m2, m3, m4 = (float(np.mean(d**2)), float(np.mean(d**3)), float(np.mean(d**4)))
        n = op.size
        skew = m3 / m2**1.5 * math.sqrt(n * (n - 1)) / (n - 2)
        kurt = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2**2 - 3.0) + 6.0)
        bimodality = float((skew**2 + 1.0) / (kurt + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3))))
    labels, inv = np.unique(g, return_inverse=True)
    means = np.bincount(inv, weights=op) / np.bincount(inv)
    census = reference_census(src[delivered], dst[delivered], sign[delivered])
    same = g[src[delivered]] == g[dst[delivered]]
    sg = sign[delivered]
    return {
        "opinion_variance": float(np.var(op)),
        "bimodality": bimodality,
        "group_mean_distance": float(means.max() - means.min()) if labels.size >= 2
        else math.nan,
        "negative_share": float(np.mean(sg < 0)) if sg.size else math.nan,
        "toxicity_mean": float(exposure.mean()),
        "toxicity_p90": float(np.percentile(exposure, 90)),
        "balanced_triangles": (census[0] + census[2]) / sum(census) if sum(census)
        else math.nan,
        "signed_assortativity": float(sg[same].mean() - sg[~same].mean())
        if same.any() and not same.all() else math.nan,
        "activity": src.size / (window_days * np.count_nonzero(act))
        if np.count_nonzero(act) and window_days > 0 else math.nan,
        "suspended": float(act.size - np.count_nonzero(act)),
        "mean_negativity": float(np.asarray(negativity, dtype=np.float64).mean()),
    }


def bits(values: Mapping[str, float]) -> list[tuple[str, str]]:
    return [(k, "nan" if math.isnan(v) else float(v).hex()) for k, v in values.items()]


# -- compiled passes -----------------------------------------------------------------------
def test_pairwise_sum_is_numpys_sum_to_the_bit():
    rng = np.random.default_rng(0)
    for n in [*range(0, 300), 1000, 4097, 8192, 10_000, 65_537, 1_000_003]:
        x = rng.normal(size=n) * rng.choice([1e-9, 1.0, 1e9], size=n)
        assert kernels.pairwise_sum(x) == np.add.reduce(x), n
        center = float(x.mean()) if n else 0.0
        squares, dev = kernels.pairwise_sum_of_squares(x, center)
        assert squares == np.add.reduce((x - center) ** 2) and np.array_equal(dev, x - center)


def test_triangle_census_matches_enumeration():
    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(2, 40))
        k = int(rng.integers(0, 300))
        src, dst = rng.integers(0, n, k), rng.integers(0, n, k)
        sg = rng.choice([-1, 0, 1], k, p=[0.35, 0.05, 0.6])
        if trial % 4 == 0:
            src, dst = src * 1_000_003 - 50, dst * 1_000_003 - 50  # sparse, negative ids
        assert signed_triangle_census(src, dst, sg).tolist() == reference_census(src, dst, sg)
        if trial % 4:
            some = rng.random(k) < 0.7
            want = reference_census(src[some], dst[some], sg[some])
            for bound in (n, 10**6):  # dense ids; few events among many ids (renumbered)
                assert triangle_census(src, dst, sg, bound, some).tolist() == want


def _random_window(rng: np.random.Generator, trial: int) -> tuple:
    n = int(rng.integers(1, 250))
    k = int(rng.integers(0, 700))
    window = {
        "t": np.sort(rng.random(k)) if trial % 5 else rng.random(k),
        "src": rng.integers(0, n, k), "dst": rng.integers(0, n, k),
        "sign": rng.choice([-1, 1], k).astype(np.int8) if trial % 7 else rng.normal(size=k),
        "weight": rng.random(k) * rng.choice([-1.0, 1.0], k),
        "delivered": rng.random(k) < (0.0 if trial % 11 == 0 else 0.9),
    }
    scale = [0.0, 1e-3, 1.0, 1e6][trial % 4]
    opinions = rng.normal(size=n) * scale + 0.3
    groups = rng.integers(0, 1 + trial % 3, n).astype([np.int8, np.int64][trial % 2])
    return window, opinions, groups, rng.random(n), rng.random(n) < 0.95, 1.5


def test_compute_window_metrics_equals_the_numpy_reference_to_the_bit():
    rng = np.random.default_rng(2)
    for trial in range(1500):
        args = _random_window(rng, trial)
        assert bits(m.compute_window_metrics(*args)) == bits(reference_window_metrics(*args)), \
            trial


def test_unusual_ids_and_groups_take_the_numpy_path_with_the_same_values():
    rng = np.random.default_rng(4)
    window, opinions, groups, neg, active, days = _random_window(rng, 1)
    for g in (groups.astype(float), groups + 10**9):  # float labels, huge labels
        assert bits(m.compute_window_metrics(window, opinions, g, neg, active, days)) == bits(
            reference_window_metrics(window, opinions, g, neg, active, days))


# -- stored runs ---------------------------------------------------------------------------
SCENARIO = """
horizon = 8.0
[population]
n_agents = 600
kinds = {citizen = 0.8, troll = 0.15, influencer = 0.05}
[recording]
metric_cadence = 0.5
metric_window = 2.0
flush_rows = 900
[[arms]]
name = "baseline"
[[arms.interventions]]
type = "moderation"
recall = 0.8
false_positive_rate = 0.01
strikes = 2
suspension_days = 1.0
start = 1.0
"""


def _stored_run(path: str, seed: int) -> tuple[list[tuple], str, str]:
    arm = parse_scenario(SCENARIO).arms[0]
    store = open_store(path)
    res = run_into_store(store, arm.config, seed=seed, interventions=arm.interventions)
    rows = store.frame("SELECT t, name, value FROM metrics WHERE run_id = :r ORDER BY t, name",
                       {"r": res.run_id})
    out = [(t.hex(), name, value.hex()) for t, name, value in rows.itertuples(index=False)]
    hashes = (store.table_hash(res.run_id), store.table_hash(res.run_id, "interventions"))
    store.dispose()
    return out, *hashes


def test_stored_metric_rows_are_those_of_the_numpy_reference(tmp_path, monkeypatch):
    ours = _stored_run(str(tmp_path / "ours.db"), seed=5)
    monkeypatch.setattr(m, "compute_window_metrics", reference_window_metrics)
    reference = _stored_run(str(tmp_path / "reference.db"), seed=5)
    rows = ours[0]
    assert len(rows) >= 17 * 9  # 17 ticks, NaN values left out
    assert {name for _, name, _ in rows} == set(m.METRIC_NAMES)
    assert max(float.fromhex(v) for _, name, v in rows if name == "suspended") > 0
    assert ours == reference  # metric rows, interactions and interventions identical


def test_same_seed_same_metric_rows_and_no_thread_left(tmp_path):
    first = _stored_run(str(tmp_path / "a.db"), seed=7)
    again = _stored_run(str(tmp_path / "b.db"), seed=7)
    assert first == again
    assert not [t for t in threading.enumerate() if t.name == "signsim-metrics"]


def test_an_error_on_the_metrics_thread_fails_the_run(tmp_path, monkeypatch):
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise FloatingPointError("tick 3 went wrong")
        return reference_window_metrics(*args)

    monkeypatch.setattr(m, "compute_window_metrics", failing)
    store = open_store(str(tmp_path / "f.db"))
    arm = parse_scenario(SCENARIO).arms[0]
    with pytest.raises(FloatingPointError, match="tick 3 went wrong"):
        run_into_store(store, arm.config, seed=1, interventions=arm.interventions)
    run = store.run(1)
    assert run["status"] == "failed" and "tick 3 went wrong" in run["error"]
    store.dispose()
    gc.collect()  # the failed run's recorder is gone: its thread ends with it
    for thread in threading.enumerate():
        if thread.name == "signsim-metrics":
            thread.join(timeout=10)
            assert not thread.is_alive()
