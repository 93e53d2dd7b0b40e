"""Vectorised network building and bucketed draws give exactly the plain numpy answers.

The references below are the direct definitions (``np.unique`` over ``src * n + dst``
keys, ``np.searchsorted`` per group, whole-array draws): the fast builders must produce
the same follow arrays, leave the generator in the same state, and pick the same actors,
so every stored row of a fixed-seed run is unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim.engine.model as model_module
from sim.config import NetworkConfig
from sim.engine.model import SocialModel
from sim.engine.network import build_network, to_padded
from sim.engine.recording import Recorder
from sim.engine.sampling import bucket_table, searchsorted_right
from sim.scenario import parse_scenario


def reference_padded(src: np.ndarray, dst: np.ndarray, n: int, slack: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    keep = src != dst
    key = np.unique(src[keep].astype(np.int64) * n + dst[keep])
    s, d = key // n, key % n
    counts = np.bincount(s, minlength=n)
    follow = np.full((n, max(int(counts.max(initial=0)) + slack, 1)), -1, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    follow[s, np.arange(s.shape[0]) - starts[s]] = d
    return follow, counts


def reference_sbm(cfg: NetworkConfig, group: np.ndarray, attract: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = group.shape[0]
    src = np.repeat(np.arange(n), rng.poisson(cfg.mean_degree, n))
    m = src.shape[0]
    same = rng.random(m) < cfg.homophily
    groups = np.unique(group)
    tgt = group[src]
    if groups.shape[0] > 1:
        tgt = np.where(same, tgt, (tgt + rng.integers(1, groups.shape[0], m)) % groups.shape[0])
    dst = np.empty(m, dtype=np.int64)
    u = rng.random(m)
    for g in groups:
        members = np.flatnonzero(group == g)
        cum = np.cumsum(attract[members])
        sel = tgt == g
        pick = np.searchsorted(cum, u[sel] * cum[-1], side="right")
        dst[sel] = members[np.minimum(pick, members.shape[0] - 1)]
    return reference_padded(src, dst, n, cfg.follow_slack)


def _cases() -> list[tuple[int, int, float, float, int, str]]:
    draw = np.random.default_rng(2024)
    cases = [(2, 1, 3.0, 0.8, 0, "ones"), (3, 3, 10.0, 0.5, 2, "zeros"), (5, 2, 0.0, 0.8, 8, "mix")]
    for _ in range(40):
        cases.append((int(draw.integers(2, 3000)), int(draw.integers(1, 7)),
                      float(draw.choice([0.5, 3.0, 10.0, 40.0])),
                      float(draw.choice([0.0, 0.3, 0.8, 1.0])), int(draw.integers(0, 9)),
                      str(draw.choice(["ones", "zeros", "mix", "lognormal"]))))
    return cases


def _attraction(kind: str, n: int, seed: int) -> np.ndarray:
    draw = np.random.default_rng(seed)
    if kind == "ones":
        return np.ones(n)
    if kind == "zeros":  # some groups with no attraction at all: the last member is picked
        return np.where(np.arange(n) % 3 == 0, 0.0, draw.choice([0.0, 1.0], n))
    if kind == "mix":  # influencers 20x, some accounts never followed
        return draw.choice([0.0, 1.0, 1.0, 1.0, 20.0], n)
    if kind == "sevenths":  # running sums that land exactly on rounded bucket edges
        return draw.integers(1, 50, n) / 7.0
    return draw.lognormal(0.0, 2.0, n)


@pytest.mark.parametrize("case", _cases())
def test_sbm_network_is_the_reference_network(case):
    n, groups, degree, homophily, slack, attraction = case
    cfg = NetworkConfig(mean_degree=degree, homophily=homophily, follow_slack=slack)
    group = (np.arange(n) % groups).astype(np.int32)
    attract = _attraction(attraction, n, n)
    fast_rng, ref_rng = np.random.default_rng(n), np.random.default_rng(n)
    follow, follow_n = build_network(cfg, group, attract, fast_rng)
    ref_follow, ref_n = reference_sbm(cfg, group, attract, ref_rng)
    assert follow.dtype == np.int64 and follow_n.dtype == np.int64
    assert follow.shape == ref_follow.shape
    assert np.array_equal(follow, ref_follow) and np.array_equal(follow_n, ref_n)
    assert fast_rng.random() == ref_rng.random()  # the same draws were consumed


def test_sbm_draws_are_chunked_without_changing_the_network(monkeypatch):
    # chunks smaller than the draws (and not a multiple of anything) give the same network
    import sim.engine.network as network

    cfg = NetworkConfig(mean_degree=12.0)
    group = (np.arange(20_000) % 3).astype(np.int32)
    attract = _attraction("mix", 20_000, 1)
    whole = build_network(cfg, group, attract, np.random.default_rng(5))
    monkeypatch.setattr(network, "CHUNK", 9_973)
    chunked = build_network(cfg, group, attract, np.random.default_rng(5))
    assert np.array_equal(whole[0], chunked[0]) and np.array_equal(whole[1], chunked[1])
    assert np.array_equal(whole[0], reference_sbm(cfg, group, attract, np.random.default_rng(5))[0])


@pytest.mark.parametrize("seed", range(6))
def test_to_padded_is_the_reference_for_any_edge_list(seed):
    draw = np.random.default_rng(seed)
    n = int(draw.integers(1, 400))
    m = int(draw.integers(0, 4000))
    src, dst = draw.integers(0, n, m), draw.integers(0, n, m)  # unsorted, loops, repeats
    got, ref = to_padded(src, dst, n, seed), reference_padded(src, dst, n, seed)
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    assert (got[0] != np.arange(n)[:, None]).all()  # no self-follow
    for i in range(n):  # sorted, distinct, padded with -1
        row = got[0][i, :got[1][i]]
        assert np.all(np.diff(row) > 0) and np.all(got[0][i, got[1][i]:] == -1)


@pytest.mark.parametrize("attraction", ["ones", "zeros", "mix", "lognormal", "sevenths"])
def test_targets_at_bucket_edges_are_the_searchsorted_targets(attraction):
    # draws placed on and next to every bucket edge and running sum, where rounding
    # decides the bucket: the picks must still be searchsorted's
    from sim.engine import network

    n, groups = 3008, 3
    slot = (np.arange(n) % groups).astype(np.int32)
    attract = _attraction(attraction, n, 7)
    # two more groups whose running sums meet bucket edges that q / width rounds past
    slot[-8:] = [3, 3, 3, 3, 4, 4, 4, 4]
    attract[-8:] = np.array([8.0, 21.0, 10.0, 13.0, 25.0, 47.0, 16.0, 8.0]) / np.repeat(
        [7.0, 13.0], 4)
    groups = 5
    start = np.concatenate(([0], np.cumsum(np.bincount(slot))))
    members = np.argsort(slot, kind="stable").astype(np.int64)
    cum = np.empty(n)
    table = np.empty((n + groups, 4), dtype=np.int64)
    network._group_index(start, members, attract, cum, table)
    for g in range(groups):
        a, b = start[g], start[g + 1]
        gcum = cum[a:b]
        total = gcum[-1]
        if total <= 0:
            continue
        edges = np.arange(b - a + 1) * (total / (b - a))
        q = np.concatenate((edges, gcum, np.nextafter(edges, 0.0), np.nextafter(edges, np.inf),
                            np.nextafter(gcum, 0.0), np.nextafter(gcum, np.inf)))
        u = np.unique(np.concatenate([np.nextafter(q / total, x) for x in (0.0, 2.0)] + [q / total]))
        u = u[(u >= 0) & (u < 1)]
        dst = np.empty(u.shape[0], dtype=np.int64)
        network._pick_targets(np.full(u.shape[0], g, dtype=np.int32), u, 0, start, members,
                              cum, table, dst, *(np.empty(u.shape[0], dtype=t) for t in (
                                  np.float64, np.int64, np.float64, np.int64, np.int64)))
        pick = np.minimum(np.searchsorted(gcum, u * total, side="right"), b - a - 1)
        assert np.array_equal(dst, members[a:b][pick])


def _weights(kind: str, n: int, draw: np.random.Generator) -> np.ndarray:
    if kind == "heavy":
        return draw.lognormal(0.0, 2.5, n)
    if kind == "ties":  # equal weights: every running sum sits on a bucket edge
        return np.ones(n)
    if kind == "zeros":
        return np.where(draw.random(n) < 0.5, 0.0, draw.integers(1, 4, n).astype(float))
    if kind == "sevenths":  # running sums that land exactly on rounded bucket edges
        return draw.integers(1, 50, n) / 7.0
    return draw.pareto(1.1, n) + 1.0


@pytest.mark.parametrize("kind", ["heavy", "ties", "zeros", "pareto", "sevenths"])
@pytest.mark.parametrize("n", [1, 2, 4, 7, 1000, 50_000])
def test_bucketed_search_is_searchsorted(kind, n):
    draw = np.random.default_rng(n)
    w = _weights(kind, n, draw)
    w[-1] = max(w[-1], 1.0)  # a positive total
    cum = np.cumsum(w)
    table = np.empty((n + 1, 2), dtype=np.int32)
    bucket_table(cum, 0, n, table, 0)
    total = cum[-1]
    width = total / n
    edges = np.arange(n + 1) * width
    q = np.concatenate((draw.random(20_000) * total, cum, np.nextafter(cum, 0.0), edges,
                        np.nextafter(edges, 0.0), np.nextafter(edges, np.inf),
                        [0.0, np.nextafter(total, 0.0), total]))
    q = q[(q >= 0) & (q <= total)]
    out = np.empty(q.shape[0], dtype=np.int64)
    searchsorted_right(cum, table, q, out)
    assert np.array_equal(out, np.minimum(np.searchsorted(cum, q, side="right"), n - 1))


def test_a_draw_rounded_into_the_next_bucket_is_searched():
    # q equals a running sum that is also the right edge of bucket 2 as computed, but
    # q / width rounds down to 2: the answer (3) lies outside bucket 2's range [1, 2]
    cum = np.cumsum(np.array([8.0, 21.0, 10.0, 13.0]) / 7.0)
    table = np.empty((5, 2), dtype=np.int32)
    bucket_table(cum, 0, 4, table, 0)
    width = cum[-1] / 4
    q = cum[2]
    assert int(q / width) == 2 and q == 3 * width and table[2].tolist() == [1, 2]
    out = np.empty(1, dtype=np.int64)
    searchsorted_right(cum, table, np.array([q]), out)
    assert out[0] == 3 == np.searchsorted(cum, q, side="right")


def test_zero_total_falls_back_to_the_plain_search():
    cum = np.zeros(5)
    table = np.empty((6, 2), dtype=np.int32)
    bucket_table(cum, 0, 5, table, 0)
    out = np.empty(1, dtype=np.int64)
    searchsorted_right(cum, table, np.zeros(1), out)
    assert out[0] == 4


@pytest.mark.parametrize("arm", ["baseline", "moderation"])
def test_actors_drawn_through_the_bucket_table_are_the_searchsorted_actors(monkeypatch, arm):
    # moderation suspends and reinstates agents: the rates change and the table is rebuilt
    text = """
    horizon = 4.0
    [population]
    n_agents = 3000
    kinds = {citizen = 0.9, troll = 0.1}
    rate_distribution = "lognormal"
    rate_sigma = 1.5
    [recording]
    metric_cadence = 0.0
    [[arms]]
    name = "baseline"
    [[arms]]
    name = "moderation"
    interventions = [{type = "moderation", start = 1.0, strikes = 1, suspension_days = 0.5}]
    """
    chosen = parse_scenario(text).arm(arm)

    builds: list[int] = []

    def counting_table(*args):
        builds.append(1)
        bucket_table(*args)

    def run(threshold: int) -> dict[str, np.ndarray]:
        monkeypatch.setattr(model_module, "_BUCKETED_ACTORS", threshold)
        rec = Recorder(None, keep_events=True)
        model = SocialModel(chosen.config, 9, interventions=chosen.interventions, recorder=rec)
        model.run()
        return rec.events()

    monkeypatch.setattr(model_module, "bucket_table", counting_table)
    plain = run(1 << 40)
    assert not builds
    bucketed = run(2)
    assert len(builds) >= (5 if arm == "moderation" else 1)  # rebuilt after rate changes
    assert plain["t"].shape[0] > 10_000
    for key in plain:
        assert np.array_equal(plain[key], bucketed[key]), key
