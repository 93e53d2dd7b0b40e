"""Initial follow networks, stored as padded out-neighbour arrays.

``follow[i, :follow_n[i]]`` are the accounts agent ``i`` follows. Each row has room for
``follow_slack`` more follows, so the kernel can follow and unfollow in place.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numba import njit

from sim.config import NetworkConfig
from sim.engine.sampling import bucket_table, search_right
from sim.errors import SignsimError

__all__ = ["build_network", "read_edge_list", "to_padded"]


#: Edges drawn per call of the generator while building a network: the draws of one
#: call are split into chunks of this size (the generator gives the same numbers either
#: way), so a 100M-edge network never holds a full float64 array of its draws.
CHUNK = 1 << 22
#: Table rows per region of :func:`_pick_targets` (2^12 rows of 32 bytes: 128 KiB).
_REGION_BITS = 12


@njit(cache=True)
def _sort_small(row: np.ndarray) -> None:
    """Sort a short row in place (insertion sort; longer rows use numpy's sort)."""
    if row.shape[0] > 32:
        row.sort()
        return
    for k in range(1, row.shape[0]):
        x = row[k]
        j = k - 1
        while j >= 0 and row[j] > x:
            row[j + 1] = row[j]
            j -= 1
        row[j + 1] = x


@njit(cache=True)
def _dedupe_rows(offsets: np.ndarray, dst: np.ndarray, counts: np.ndarray) -> None:
    """Sort each row ``dst[offsets[i]:offsets[i + 1]]`` in place, distinct targets first.

    Targets other than ``i`` itself, each once, go to the front of the row; ``counts[i]``
    says how many.
    """
    for i in range(offsets.shape[0] - 1):
        a, b = offsets[i], offsets[i + 1]
        row = dst[a:b]
        _sort_small(row)
        k = 0
        for x in range(b - a):
            v = row[x]
            if v != i and (k == 0 or v != row[k - 1]):
                row[k] = v
                k += 1
        counts[i] = k


@njit(cache=True)
def _fill_rows(offsets: np.ndarray, dst: np.ndarray, counts: np.ndarray,
               follow: np.ndarray) -> None:
    """Copy the front ``counts[i]`` targets of each row into ``follow[i]``."""
    for i in range(follow.shape[0]):
        a = offsets[i]
        for x in range(counts[i]):
            follow[i, x] = dst[a + x]


def _pad_rows(offsets: np.ndarray, dst: np.ndarray, slack: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``dst[offsets[i]:offsets[i + 1]]`` -> padded sorted rows without repeats or ``i``.

    Large arrays are allocated by numpy (which asks Linux for huge pages: far fewer page
    faults while building, and TLB misses while the kernel reads them), not inside numba.
    """
    n = offsets.shape[0] - 1
    counts = np.empty(n, dtype=np.int64)
    _dedupe_rows(offsets, dst, counts)
    width = max(int(counts.max(initial=0)) + slack, 1)
    follow = np.full((n, width), -1, dtype=np.int64)
    _fill_rows(offsets, dst, counts, follow)
    return follow, counts


@njit(cache=True)
def _scatter(src: np.ndarray, dst: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    """Targets of each source in edge order into ``out``, rows given by ``offsets``."""
    slot = offsets[:-1].copy()
    for e in range(src.shape[0]):
        s = src[e]
        out[slot[s]] = dst[e]
        slot[s] += 1


def to_padded(src: np.ndarray, dst: np.ndarray, n: int, slack: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn a directed edge list into padded out-neighbour arrays.

    Each row lists its distinct targets in increasing order; self-loops and repeats are
    dropped, and every row has room for ``slack`` more.
    """
    src = np.asarray(src, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=offsets[1:])
    targets = np.empty(src.shape[0], dtype=np.int64)
    _scatter(src, np.asarray(dst, dtype=np.int64), offsets, targets)
    return _pad_rows(offsets, targets, slack)


@njit(cache=True)
def _group_index(start: np.ndarray, members: np.ndarray, attract: np.ndarray,
                 cum: np.ndarray, table: np.ndarray) -> None:
    """Running attraction sums of each group's members and the group's bucket table.

    Group ``g``'s members are ``members[start[g]:start[g + 1]]`` (in id order); ``cum``
    holds their running sums over the same range (the same sequential sums as
    ``np.cumsum``). Rows ``start[g] + g ..`` of ``table`` are the group's buckets
    (:func:`sim.engine.sampling.bucket_table`: ``lo``, ``hi``), the member at ``lo`` (the
    pick when ``lo == hi``) and ``g``.
    """
    for g in range(start.shape[0] - 1):
        a, b = start[g], start[g + 1]
        acc = 0.0
        for k in range(a, b):
            acc += attract[members[k]]
            cum[k] = acc
        bucket_table(cum, a, b - a, table, a + g)
        for row in range(a + g, b + g + 1):
            table[row, 2] = members[a + min(table[row, 0], b - a - 1)]
            table[row, 3] = g


@njit(cache=True)
def _pick_targets(tgt: np.ndarray, u: np.ndarray, e0: int, start: np.ndarray,
                  members: np.ndarray, cum: np.ndarray, table: np.ndarray,
                  dst: np.ndarray, qs: np.ndarray, rows: np.ndarray, sorted_q: np.ndarray,
                  sorted_k: np.ndarray, sorted_row: np.ndarray) -> None:
    """``dst[e] =`` a member of group ``tgt[e]`` in proportion to attraction, from ``u``.

    Exactly ``np.searchsorted(cum_g, u * cum_g[-1], side="right")`` clipped to the last
    member, as :func:`sim.engine.sampling.search_bucketed` finds it, but reading the member
    from the bucket's row when the bucket holds a single one. The draws are first
    grouped by the region of the table their row is in (a counting sort over regions of
    :data:`_REGION` rows), so that the table is read region after region instead of at
    random: on 10M agents a random read misses every cache, a region stays in one.
    The last five arrays (at least ``len(u)`` long; float64 for ``q``, int64 for the
    rest) are working memory, allocated once by the caller: fresh memory costs a page
    fault per 4 KiB.
    """
    m = u.shape[0]
    regions = (table.shape[0] >> _REGION_BITS) + 1
    fill = np.zeros(regions + 1, dtype=np.int64)
    for k in range(m):
        g = tgt[e0 + k]
        a = start[g]
        size = start[g + 1] - a
        total = cum[a + size - 1]
        q = u[k] * total
        qs[k] = q
        rows[k] = -1
        if total > 0.0 and math.isfinite(total):
            width = total / size
            bucket = min(int(q / width), size - 1)
            if bucket * width <= q < (bucket + 1) * width:
                rows[k] = a + g + bucket
                fill[((a + g + bucket) >> _REGION_BITS) + 1] += 1
                continue
        dst[e0 + k] = members[a + min(search_right(cum, a, 0, size, q), size - 1)]
    for r in range(regions):
        fill[r + 1] += fill[r]
    for k in range(m):
        row = rows[k]
        if row >= 0:
            r = row >> _REGION_BITS
            j = fill[r]
            sorted_k[j] = k
            sorted_row[j] = row
            sorted_q[j] = qs[k]
            fill[r] = j + 1
    for j in range(fill[regions]):
        row = sorted_row[j]
        lo = table[row, 0]
        hi = table[row, 1]
        if lo == hi:
            dst[e0 + sorted_k[j]] = table[row, 2]
        else:
            g = table[row, 3]
            a = start[g]
            r = search_right(cum, a, lo, hi, sorted_q[j])
            dst[e0 + sorted_k[j]] = members[a + min(r, start[g + 1] - a - 1)]


def _sbm(cfg: NetworkConfig, group: np.ndarray, attract: np.ndarray,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Degree-corrected stochastic block model with homophily, as padded rows.

    Agent ``i`` follows ``Poisson(mean_degree)`` accounts (repeats merged): each in its
    own group with probability ``homophily``, else in a uniformly chosen other group, and
    within the group in proportion to ``attract``. The generator is called as
    ``poisson(n)``, ``random(m)``, ``integers(1, groups, m)`` (several groups only),
    ``random(m)`` for ``m`` draws in all, each call in chunks of :data:`CHUNK`.
    """
    n = group.shape[0]
    out_deg = rng.poisson(cfg.mean_degree, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(out_deg, out=offsets[1:])
    m = int(offsets[-1])
    # group values -> slots 0..G-1 (the identity for the usual groups 0..G-1)
    values, inverse = np.unique(group, return_inverse=True)
    n_groups = values.shape[0]
    slot = inverse.astype(np.int32).reshape(-1)
    same = np.empty(m, dtype=np.bool_)
    u = np.empty(min(CHUNK, m))
    for a in range(0, m, CHUNK):
        b = min(a + CHUNK, m)
        np.less(rng.random(out=u[:b - a]), cfg.homophily, out=same[a:b])
    tgt = np.repeat(slot, out_deg)  # target group of each edge: first the actor's own
    if n_groups > 1:
        for a in range(0, m, CHUNK):
            b = min(a + CHUNK, m)
            shift = rng.integers(1, n_groups, b - a)
            other = ~same[a:b]
            part = tgt[a:b]
            part[other] = (part[other] + shift[other]) % n_groups
    del same
    start = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(slot, minlength=n_groups), out=start[1:])
    members = np.argsort(slot, kind="stable").astype(np.int64)
    cum = np.empty(n, dtype=np.float64)
    table = np.empty((n + n_groups, 4), dtype=np.int64)  # lo, hi, member, g: 32 bytes
    _group_index(start, members, np.asarray(attract, dtype=np.float64), cum, table)
    dst = np.empty(m, dtype=np.int64)
    u = np.empty(min(CHUNK, m))
    work = (np.empty(u.shape[0]), np.empty(u.shape[0], dtype=np.int64), np.empty(u.shape[0]),
            np.empty(u.shape[0], dtype=np.int64), np.empty(u.shape[0], dtype=np.int64))
    for a in range(0, m, CHUNK):
        b = min(a + CHUNK, m)
        _pick_targets(tgt, rng.random(out=u[:b - a]), a, start, members, cum, table, dst, *work)
    del tgt
    return _pad_rows(offsets, dst, cfg.follow_slack)


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
        return _sbm(cfg, group, attract, rng)
    if cfg.kind == "barabasi_albert":
        m = min(cfg.ba_m, n - 1)
        src, dst = _ba_edges(n, m, rng.random(4 * n * m + 16))
    elif cfg.kind == "watts_strogatz":
        src, dst = _watts_strogatz(cfg, n, rng)
    elif cfg.kind == "edge_list":
        src, dst = read_edge_list(cfg.path, n)
    else:
        src = dst = np.zeros(0, dtype=np.int64)
    return to_padded(src, dst, n, cfg.follow_slack)
