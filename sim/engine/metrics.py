"""Population metrics: plain numpy functions over the engine's state and event arrays.

The engine calls :func:`compute_window_metrics` at the scenario's metric cadence with the
interactions of the sliding window (the last ``window_days`` days) and the current agent
state; :func:`metric_rows` turns the result into ``metrics`` table rows
(``run_id, t, name, value``). Every metric is also a standalone function so that it can
be used on arrays read back from the store.

Conventions:
    * Agent ids are row indices into the per-agent arrays (``opinions``, ``groups``,
      ``negativity``, ``active``), i.e. ``0 .. n_agents - 1``.
    * ``sign`` is +1 / -1; ``weight`` is the interaction's magnitude (its absolute value
      is used, so a signed weight gives the same result).
    * A metric that is undefined on its input (no interaction, no triangle, fewer than
      four opinions ...) is ``NaN``. The ``metrics.value`` column is NOT NULL and SQLite
      cannot store NaN, so :func:`metric_rows` drops non-finite values: a missing point
      in a time series means "undefined at that time".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from sim.engine import metric_kernels as kernels
from sim.engine.triangles import (
    balanced_share,
    balanced_triangle_share,
    signed_triangle_census,
    triangle_census,
)

__all__ = [
    "METRIC_DESCRIPTIONS",
    "METRIC_NAMES",
    "activity",
    "balanced_triangle_share",
    "bimodality_coefficient",
    "compute_window_metrics",
    "group_mean_distance",
    "mean_negativity",
    "metric_rows",
    "negative_share",
    "opinion_variance",
    "signed_assortativity",
    "signed_triangle_census",
    "suspended_count",
    "toxicity_exposure",
]

ArrayLike = npt.ArrayLike

#: Stable metric names written by :func:`compute_window_metrics`, in report order.
METRIC_NAMES: tuple[str, ...] = (
    "opinion_variance",
    "bimodality",
    "group_mean_distance",
    "negative_share",
    "toxicity_mean",
    "toxicity_p90",
    "balanced_triangles",
    "signed_assortativity",
    "activity",
    "suspended",
    "mean_negativity",
)

#: One-line human description of each metric (used by the report).
METRIC_DESCRIPTIONS: dict[str, str] = {
    "opinion_variance": "Population variance of opinions (all agents).",
    "bimodality": "Sarle's bimodality coefficient of opinions (> 5/9 suggests bimodality).",
    "group_mean_distance": "Largest distance between two groups' mean opinions.",
    "negative_share": "Share of negative interactions among delivered ones in the window.",
    "toxicity_mean": "Mean over agents of the negative weight received in the window.",
    "toxicity_p90": "90th percentile over agents of the negative weight received.",
    "balanced_triangles": "Share of balanced triangles in the window's signed graph.",
    "signed_assortativity": "Mean sign within groups minus mean sign between groups.",
    "activity": "Acts (delivered or blocked) per active agent per day in the window.",
    "suspended": "Number of agents currently suspended or banned.",
    "mean_negativity": "Mean negativity (affect) over all agents.",
}


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def _mask(delivered: ArrayLike | None, n: int) -> np.ndarray:
    if delivered is None:
        return np.ones(n, dtype=bool)
    m = np.asarray(delivered).astype(bool).ravel()
    if m.shape[0] != n:
        raise ValueError(f"delivered has {m.shape[0]} entries, expected {n}")
    return m


# -- opinion polarization ---------------------------------------------------------------
def opinion_variance(opinions: ArrayLike) -> float:
    """Population variance (``ddof=0``) of the opinions.

    Args:
        opinions: One opinion per agent.

    Returns:
        The variance; NaN when there is no opinion.
    """
    x = _f(opinions)
    return float(np.var(x)) if x.size else math.nan


def bimodality_coefficient(opinions: ArrayLike) -> float:
    """Sarle's bimodality coefficient with the finite-sample correction.

    ``b = (g**2 + 1) / (k + 3 (n-1)**2 / ((n-2)(n-3)))`` where ``g`` is the
    bias-corrected sample skewness (G1) and ``k`` the bias-corrected sample excess
    kurtosis (G2), as in SAS (PROC CLUSTER) and Pfister et al. (2013), "Good things peak
    in pairs: a note on the bimodality coefficient", Frontiers in Psychology 4:700.
    ``b`` ranges in (0, 1]; values above 5/9 (that of the uniform distribution) suggest
    bimodality.

    Args:
        opinions: One opinion per agent.

    Returns:
        The coefficient; NaN when ``n < 4`` or all opinions are equal.
    """
    x = _f(opinions)
    n = x.size
    if n < 4:
        return math.nan
    if np.ptp(x) == 0:
        return math.nan
    d = x - x.mean()
    return _sarle(float(np.mean(d**2)), d)


def _sarle(m2: float, d: np.ndarray) -> float:
    """The bimodality coefficient from the deviations ``d`` and their mean square ``m2``."""
    n = d.size
    m3 = float(np.mean(d**3))
    m4 = float(np.mean(d**4))
    g1 = m3 / m2**1.5
    g2 = m4 / m2**2 - 3.0
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    kurt = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6.0)
    return float((skew**2 + 1.0) / (kurt + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def group_mean_distance(opinions: ArrayLike, groups: ArrayLike) -> float:
    """Distance between group mean opinions.

    With two groups this is ``|mean(group a) - mean(group b)|``; with more groups it is
    the largest pairwise distance, i.e. ``max(group means) - min(group means)``. Only
    groups with at least one member count.

    Args:
        opinions: One opinion per agent.
        groups: One integer group label per agent.

    Returns:
        The distance; NaN with fewer than two non-empty groups.
    """
    x = _f(opinions)
    g = np.asarray(groups).ravel()
    if g.shape[0] != x.shape[0]:
        raise ValueError("opinions and groups must have the same length")
    labels, inv = np.unique(g, return_inverse=True)
    if labels.size < 2:
        return math.nan
    sums = np.bincount(inv, weights=x, minlength=labels.size)
    counts = np.bincount(inv, minlength=labels.size)
    means = sums / counts
    return float(means.max() - means.min())


# -- interactions ------------------------------------------------------------------------
def negative_share(signs: ArrayLike, delivered: ArrayLike | None = None) -> float:
    """Share of negative interactions among the (delivered) interactions.

    Args:
        signs: +1 / -1 per interaction.
        delivered: Optional boolean mask; only delivered interactions count.

    Returns:
        The share in [0, 1]; NaN when no interaction counts.
    """
    s = _f(signs)
    s = s[_mask(delivered, s.size)]
    return float(np.mean(s < 0)) if s.size else math.nan


def toxicity_exposure(
    n_agents: int,
    dst: ArrayLike,
    signs: ArrayLike,
    weights: ArrayLike,
    delivered: ArrayLike | None = None,
) -> tuple[float, float]:
    """Negative weight received per agent: its mean and 90th percentile over agents.

    Each agent's exposure is the sum of ``|weight|`` of the delivered negative
    interactions it received; agents that received none count as 0. The percentile uses
    numpy's default linear interpolation.

    Args:
        n_agents: Number of agents (ids ``0 .. n_agents - 1``).
        dst: Receiver id per interaction.
        signs: +1 / -1 per interaction.
        weights: Weight per interaction.
        delivered: Optional boolean mask; only delivered interactions count.

    Returns:
        ``(mean, p90)``; ``(NaN, NaN)`` when ``n_agents == 0``.
    """
    if n_agents <= 0:
        return math.nan, math.nan
    d = np.asarray(dst, dtype=np.int64).ravel()
    s = _f(signs)
    w = np.abs(_f(weights))
    keep = _mask(delivered, d.size) & (s < 0)
    exposure = np.bincount(d[keep], weights=w[keep], minlength=n_agents)[:n_agents]
    return float(exposure.mean()), float(np.percentile(exposure, 90))


def signed_assortativity(
    src: ArrayLike,
    dst: ArrayLike,
    signs: ArrayLike,
    groups: ArrayLike,
    delivered: ArrayLike | None = None,
) -> float:
    """Signed group assortativity of interactions.

    Defined as ``mean(sign | src and dst in the same group)`` minus
    ``mean(sign | src and dst in different groups)``, over (delivered) interactions,
    each interaction counted once. It ranges in [-2, 2]: positive when agents are nicer
    to their own group than to others.

    Args:
        src: Source id per interaction.
        dst: Destination id per interaction.
        signs: +1 / -1 per interaction.
        groups: Group label per agent (indexed by agent id).
        delivered: Optional boolean mask; only delivered interactions count.

    Returns:
        The difference; NaN when there is no within-group or no between-group
        interaction.
    """
    s = np.asarray(src, dtype=np.int64).ravel()
    d = np.asarray(dst, dtype=np.int64).ravel()
    sg = _f(signs)
    keep = _mask(delivered, s.size)
    g = np.asarray(groups).ravel()
    same = g[s[keep]] == g[d[keep]]
    sg = sg[keep]
    if not same.any() or same.all():
        return math.nan
    return float(sg[same].mean() - sg[~same].mean())


# -- activity and state ------------------------------------------------------------------
def activity(n_events: int, window_days: float, n_active: int) -> float:
    """Acts per active agent per day: ``n_events / (window_days * n_active)``.

    Args:
        n_events: Acts in the window (delivered or blocked).
        window_days: Window length in days.
        n_active: Number of active (not suspended) agents.

    Returns:
        The rate; NaN when ``window_days`` or ``n_active`` is not positive.
    """
    if window_days <= 0 or n_active <= 0:
        return math.nan
    return float(n_events) / (float(window_days) * float(n_active))


def suspended_count(active: ArrayLike) -> int:
    """Number of agents that are not active (suspended or banned).

    Args:
        active: Boolean mask, True for agents that can act.

    Returns:
        The count of False entries.
    """
    a = np.asarray(active).astype(bool).ravel()
    return int(a.size - np.count_nonzero(a))


def mean_negativity(negativity: ArrayLike) -> float:
    """Mean negativity over all agents; NaN when there is no agent.

    Args:
        negativity: One negativity (affect) value per agent.

    Returns:
        The mean.
    """
    x = _f(negativity)
    return float(x.mean()) if x.size else math.nan


# -- one call per metric tick ------------------------------------------------------------
def compute_window_metrics(
    window: Mapping[str, ArrayLike],
    opinions: ArrayLike,
    groups: ArrayLike,
    negativity: ArrayLike,
    active: ArrayLike,
    window_days: float,
) -> dict[str, float]:
    """Every metric of :data:`METRIC_NAMES` for one tick.

    Interaction metrics (negative share, toxicity, balance, assortativity) use the
    delivered interactions of the window, i.e. what agents actually experienced;
    ``activity`` counts every act, delivered or blocked. Events are put in time order
    (stable sort on ``t``) before the balance graph takes each pair's last sign.

    The values are those of the standalone functions above, bit for bit. When the ids
    are agent indices and the groups small non-negative integers (always, in a run),
    the passes over events and agents run compiled (:mod:`sim.engine.metric_kernels`).

    Args:
        window: The window's interactions as arrays ``src, dst, sign, weight, delivered``
            and optionally ``t``.
        opinions: Current opinion per agent.
        groups: Group label per agent.
        negativity: Current negativity per agent.
        active: Boolean mask per agent, True when it may act.
        window_days: Length of the window in days.

    Returns:
        ``{name: value}`` with the names of :data:`METRIC_NAMES` (NaN when undefined).
    """
    src = np.asarray(window["src"], dtype=np.int64).ravel()
    dst = np.asarray(window["dst"], dtype=np.int64).ravel()
    sign = _f(window["sign"])
    weight = _f(window["weight"]) if "weight" in window else np.ones(src.size)
    delivered = _mask(window.get("delivered"), src.size)
    if "t" in window and src.size:
        t = _f(window["t"])
        if np.any(t[1:] < t[:-1]):  # a stable sort of sorted times changes nothing
            order = np.argsort(t, kind="stable")
            src, dst, sign, weight, delivered = (
                src[order], dst[order], sign[order], weight[order], delivered[order]
            )
    op = _f(opinions)
    act = np.asarray(active).astype(bool).ravel()
    g = np.asarray(groups).ravel()
    state = {
        "activity": activity(src.size, window_days, int(np.count_nonzero(act))),
        "suspended": float(suspended_count(act)),
        "mean_negativity": mean_negativity(negativity),
    }
    if _compiled_inputs(src, dst, g, op.size):
        return _compiled_metrics(src, dst, sign, weight, delivered, op, g) | state
    tox_mean, tox_p90 = toxicity_exposure(op.size, dst, sign, weight, delivered)
    return {
        "opinion_variance": opinion_variance(op),
        "bimodality": bimodality_coefficient(op),
        "group_mean_distance": group_mean_distance(op, groups),
        "negative_share": negative_share(sign, delivered),
        "toxicity_mean": tox_mean,
        "toxicity_p90": tox_p90,
        "balanced_triangles": balanced_triangle_share(
            src[delivered], dst[delivered], sign[delivered]
        ),
        "signed_assortativity": signed_assortativity(src, dst, sign, groups, delivered),
    } | state


def _compiled_inputs(src: np.ndarray, dst: np.ndarray, groups: np.ndarray, n: int) -> bool:
    """Whether ids are agent indices and groups small non-negative integers."""
    if n == 0 or groups.shape[0] != n or groups.dtype.kind not in "iub":
        return False
    if int(groups.min()) < 0 or int(groups.max()) > 4 * n + 1024:
        return False
    return src.size == 0 or (min(int(src.min()), int(dst.min())) >= 0
                             and max(int(src.max()), int(dst.max())) < n)


def _compiled_metrics(src: np.ndarray, dst: np.ndarray, sign: np.ndarray, weight: np.ndarray,
                      delivered: np.ndarray, op: np.ndarray, groups: np.ndarray
                      ) -> dict[str, float]:
    """The opinion and interaction metrics of a tick, as the standalone functions give them."""
    n = op.size
    g = np.ascontiguousarray(groups, dtype=np.int64)
    mean = kernels.pairwise_sum(op) / n
    squares, dev = kernels.pairwise_sum_of_squares(op, mean)
    sums, counts = kernels.group_sums(op, g, int(g.max()) + 1)
    present = counts > 0
    means = sums[present] / counts[present]
    n_delivered, n_negative, exposure, same, other = kernels.interaction_pass(
        src, dst, sign, weight, delivered, g, n)
    census = triangle_census(src, dst, sign, n, delivered)
    return {
        "opinion_variance": squares / n,
        "bimodality": _sarle(squares / n, dev) if n >= 4 and np.ptp(op) != 0 else math.nan,
        "group_mean_distance": float(means.max() - means.min()) if means.size >= 2
        else math.nan,
        "negative_share": n_negative / n_delivered if n_delivered else math.nan,
        "toxicity_mean": kernels.pairwise_sum(exposure) / n,
        "toxicity_p90": float(np.percentile(exposure, 90)),
        "balanced_triangles": balanced_share(census),
        "signed_assortativity": (kernels.pairwise_sum(same) / same.size
                                 - kernels.pairwise_sum(other) / other.size)
        if same.size and other.size else math.nan,
    }


def metric_rows(run_id: int, t: float, values: Mapping[str, float]) -> list[dict[str, Any]]:
    """Rows for the ``metrics`` table, dropping undefined (non-finite) values.

    Args:
        run_id: The run.
        t: Simulation time of the tick (days).
        values: ``{name: value}``, e.g. from :func:`compute_window_metrics`.

    Returns:
        Dicts with keys ``run_id, t, name, value``, ready for ``Store.write_rows`` or
        ``EventWriter.add_side("metrics", ...)``.
    """
    return [
        {"run_id": int(run_id), "t": float(t), "name": name, "value": float(v)}
        for name, v in values.items()
        if v is not None and math.isfinite(float(v))
    ]
