"""Initial follow networks, stored as padded out-neighbour arrays.

``follow[i, :follow_n[i]]`` are the accounts agent ``i`` follows. Each row has room for
``follow_slack`` more follows, so the kernel can follow and unfollow in place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from sim.config import NetworkConfig
from sim.errors import SignsimError

__all__ = ["build_network", "read_edge_list", "to_padded"]


def to_padded(src: np.ndarray, dst: np.ndarray, n: int, slack: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn a directed edge list into padded out-neighbour arrays (self-loops and repeats dropped)."""
    keep = src != dst
    src, dst = src[keep].astype(np.int64), dst[keep].astype(np.int64)
    key = np.unique(src * n + dst)
    src, dst = key // n, key % n
    counts = np.bincount(src, minlength=n)
    width = int(counts.max(initial=0)) + slack
    follow = np.full((n, max(width, 1)), -1, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    col = np.arange(src.shape[0]) - starts[src]
    follow[src, col] = dst
    return follow, counts.astype(np.int64)


def _sbm(cfg: NetworkConfig, group: np.ndarray, attract: np.ndarray,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Degree-corrected stochastic block model with homophily."""
    n = group.shape[0]
    out_deg = rng.poisson(cfg.mean_degree, n)
    src = np.repeat(np.arange(n), out_deg)
    m = src.shape[0]
    same = rng.random(m) < cfg.homophily
    groups = np.unique(group)
    # target group: own group, or a uniformly chosen other group
    if groups.shape[0] > 1:
        shift = rng.integers(1, groups.shape[0], m)
        tgt_group = np.where(same, group[src], (group[src] + shift) % groups.shape[0])
    else:
        tgt_group = group[src]
    dst = np.empty(m, dtype=np.int64)
    u = rng.random(m)
    for g in groups:
        members = np.flatnonzero(group == g)
        cum = np.cumsum(attract[members])
        sel = tgt_group == g
        pick = np.searchsorted(cum, u[sel] * cum[-1], side="right")
        dst[sel] = members[np.minimum(pick, members.shape[0] - 1)]
    return src, dst


@njit(cache=True)
def _ba_edges(n: int, m: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barabasi-Albert: node i >= m follows m earlier nodes chosen by degree."""
    src = np.empty(max(n - m, 0) * m, dtype=np.int64)
    dst = np.empty_like(src)
    pool = np.empty(2 * max(n - m, 0) * m + m, dtype=np.int64)
    size = 0
    for j in range(m):
        pool[size] = j
        size += 1
    e = 0
    k = 0
    for i in range(m, n):
        chosen = np.full(m, -1, dtype=np.int64)
        c = 0
        while c < m:
            cand = pool[int(u[k % u.shape[0]] * size)]
            k += 1
            dup = False
            for x in range(c):
                if chosen[x] == cand:
                    dup = True
            if not dup:
                chosen[c] = cand
                c += 1
        for x in range(m):
            src[e] = i
            dst[e] = chosen[x]
            e += 1
            pool[size] = chosen[x]
            pool[size + 1] = i
            size += 2
    return src, dst


def _watts_strogatz(cfg: NetworkConfig, n: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    half = max(cfg.ws_k // 2, 1)
    src = np.repeat(np.arange(n), 2 * half)
    offsets = np.tile(np.concatenate((np.arange(1, half + 1), -np.arange(1, half + 1))), n)
    dst = (src + offsets) % n
    rewire = rng.random(src.shape[0]) < cfg.ws_p
    dst[rewire] = rng.integers(0, n, int(rewire.sum()))
    return src, dst


def read_edge_list(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Read ``src,dst`` (or whitespace-separated) lines; ``#`` starts a comment.

    Raises:
        SignsimError: Naming the file and line of the first bad row.
    """
    p = Path(path)
    if not p.is_file():
        raise SignsimError(f"Edge list '{path}' does not exist.")
    src: list[int] = []
    dst: list[int] = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SignsimError(f"Cannot read edge list '{path}': {exc}") from None
    for lineno, line in enumerate(lines, start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        parts = body.replace(",", " ").split()
        try:
            a, b = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise SignsimError(
                f"Edge list '{path}', line {lineno}: {line.strip()!r} is not 'source,target' "
                "with two whole-number agent ids."
            ) from None
        for v in (a, b):
            if not 0 <= v < n:
                raise SignsimError(
                    f"Edge list '{path}', line {lineno}: agent id {v} is outside 0..{n - 1} "
                    f"(population.n_agents = {n})."
                )
        src.append(a)
        dst.append(b)
    return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)


def build_network(cfg: NetworkConfig, group: np.ndarray, attract: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Build the initial follow network.

    Args:
        cfg: Network settings.
        group: Group of each agent.
        attract: Relative chance of being followed (influencers are higher).
        rng: The model's generator.

    Returns:
        ``(follow, follow_n)`` padded out-neighbour arrays.
    """
    n = group.shape[0]
    if cfg.kind == "sbm":
        src, dst = _sbm(cfg, group, attract, rng)
    elif cfg.kind == "barabasi_albert":
        m = min(cfg.ba_m, n - 1)
        src, dst = _ba_edges(n, m, rng.random(4 * n * m + 16))
    elif cfg.kind == "watts_strogatz":
        src, dst = _watts_strogatz(cfg, n, rng)
    elif cfg.kind == "edge_list":
        src, dst = read_edge_list(cfg.path, n)
    else:
        src = dst = np.zeros(0, dtype=np.int64)
    return to_padded(src, dst, n, cfg.follow_slack)
