"""Blend: the memory model and gradient boosting on the same online features, averaged.

The ablations on Bitcoin OTC (``docs/models.md``) show that the online features, read by
boosted trees, carry as much of the sign signal as the memory model, and that the two
err differently. A blend averages their outputs event by event with equal weights:
existence and sign in log-odds (the blended probability is ``sigmoid`` of the mean logit,
the normalised geometric mean of the odds), the signed weight and the 3-class
probabilities as they are. Nothing is fitted on top, so the blend has no parameter of its
own to choose or to leak. Log-odds were chosen over averaged probabilities on Bitcoin
OTC's validation period (3 seeds: validation sign AUC 0.900 vs 0.898, existence MRR 0.500
vs 0.493; ``docs/models.md``): a confident part then counts for more than a hesitant one.

Each part runs the protocol on its own (its own state, its own prequential adaptation),
and the blend of an event is a function of the two parts' scores of that event alone. So
blending the two runs' collected scores afterwards gives exactly what one online method
wrapping both would have scored; :func:`blend_results` does that, and the thresholds of
the blend (fixed and prequential) are then chosen from its own scores like any method's.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLEND_NAME", "SPACES", "blend_results"]

BLEND_NAME = "blend"
"""Report name of the blend of the model with ``gbdt_all`` (``+triads``)."""

SPACES = ("log_odds", "probability")
"""Where :func:`blend_results` can average existence and sign scores."""

_SAME = ("sign", "signed_weight", "batch")
_AVERAGED = ("weight", "p3_pos", "p3_neg")


_EPS = 1e-7
"""Probabilities are clipped to ``[_EPS, 1 - _EPS]`` (about float32's resolution near 1)
before their logit, so a part that says 0 or 1 cannot decide the blend alone."""


def _logit(x: np.ndarray, logits: bool) -> np.ndarray:
    if logits:
        return x
    p = np.clip(x, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _mean_probability(values: list[np.ndarray], logits: list[bool], space: str) -> np.ndarray:
    """Mean of scores given as logits or probabilities, as a probability.

    ``log_odds``: ``sigmoid`` of the mean logit; ``probability``: the mean probability.
    """
    if space == "log_odds":
        return _sigmoid(np.mean([_logit(v, lg) for v, lg in zip(values, logits, strict=True)],
                                axis=0))
    return np.mean([_sigmoid(v) if lg else v for v, lg in zip(values, logits, strict=True)],
                   axis=0)


def blend_results(
    parts: list[tuple[dict[str, dict[str, np.ndarray]], bool]], space: str = "log_odds",
) -> dict[str, dict[str, np.ndarray]]:
    """The equal-weight blend of several methods' protocol results.

    Args:
        parts: ``(results, exist_is_logit)`` per method: what
            :func:`models.protocol.run_protocol` returned for it (same events, same
            negatives, same periods) and whether its existence scores are logits (the
            neural model) or probabilities (the feature classifiers).
        space: Where existence and sign are averaged: ``log_odds`` (the default) or
            ``probability`` (the rule before, kept to compare the two on validation:
            ``benchmarks/bench_blend.py``).

    Returns:
        Results in the same form: per period, the events' labels and batch numbers, the
        existence and sign probabilities averaged in ``space``, and the mean of the
        parts' signed weights and 3-class probabilities.

    Raises:
        ValueError: If the parts did not score the same events, or ``space`` is unknown.
    """
    if len(parts) < 2:
        raise ValueError("a blend needs at least two methods")
    if space not in SPACES:
        raise ValueError(f"unknown blend space {space!r}; use one of {SPACES}")
    first = parts[0][0]
    out: dict[str, dict[str, np.ndarray]] = {}
    for period, ref in first.items():
        for results, _ in parts[1:]:
            other = results.get(period)
            if other is None or any(not np.array_equal(ref[k], other[k]) for k in _SAME):
                raise ValueError(f"the blended methods scored different {period} events")
        blended = {k: ref[k] for k in _SAME}
        for key in ("exist_pos", "exist_neg"):
            blended[key] = _mean_probability([r[period][key] for r, _ in parts],
                                             [logit for _, logit in parts], space)
        blended["p_pos"] = _mean_probability([r[period]["p_pos"] for r, _ in parts],
                                             [False] * len(parts), space)
        for key in _AVERAGED:
            blended[key] = np.mean([r[period][key] for r, _ in parts], axis=0)
        out[period] = blended
    return out
