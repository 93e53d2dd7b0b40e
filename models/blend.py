"""Blend: the memory model and gradient boosting on the same online features, averaged.

The ablations on Bitcoin OTC (``docs/models.md``) show that the online features, read by
boosted trees, carry as much of the sign signal as the memory model, and that the two
err differently. A blend averages their outputs event by event with equal weights
(soft voting): existence and sign as probabilities, the signed weight and the 3-class
probabilities as they are. Nothing is fitted on top, so the blend has no parameter of its
own to choose or to leak.

Each part runs the protocol on its own (its own state, its own prequential adaptation),
and the blend of an event is a function of the two parts' scores of that event alone. So
blending the two runs' collected scores afterwards gives exactly what one online method
wrapping both would have scored; :func:`blend_results` does that, and the thresholds of
the blend (fixed and prequential) are then chosen from its own scores like any method's.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLEND_NAME", "blend_results"]

BLEND_NAME = "blend"
"""Report name of the blend of the model with ``gbdt_all`` (``+triads``)."""

_SAME = ("sign", "signed_weight", "batch")
_AVERAGED = ("p_pos", "weight", "p3_pos", "p3_neg")


def _prob(x: np.ndarray, logits: bool) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x)) if logits else x


def blend_results(
    parts: list[tuple[dict[str, dict[str, np.ndarray]], bool]],
) -> dict[str, dict[str, np.ndarray]]:
    """The equal-weight blend of several methods' protocol results.

    Args:
        parts: ``(results, exist_is_logit)`` per method: what
            :func:`models.protocol.run_protocol` returned for it (same events, same
            negatives, same periods) and whether its existence scores are logits (the
            neural model) or probabilities (the feature classifiers).

    Returns:
        Results in the same form: per period, the events' labels and batch numbers, and
        the mean of the parts' existence probabilities, sign probabilities, signed
        weights and 3-class probabilities.

    Raises:
        ValueError: If the parts did not score the same events.
    """
    if len(parts) < 2:
        raise ValueError("a blend needs at least two methods")
    first = parts[0][0]
    out: dict[str, dict[str, np.ndarray]] = {}
    for period, ref in first.items():
        for results, _ in parts[1:]:
            other = results.get(period)
            if other is None or any(not np.array_equal(ref[k], other[k]) for k in _SAME):
                raise ValueError(f"the blended methods scored different {period} events")
        blended = {k: ref[k] for k in _SAME}
        for key in ("exist_pos", "exist_neg"):
            blended[key] = np.mean([_prob(r[period][key], logit) for r, logit in parts], axis=0)
        for key in _AVERAGED:
            blended[key] = np.mean([r[period][key] for r, _ in parts], axis=0)
        out[period] = blended
    return out
