"""Calibrate how sharp the twin's choices are, on a validation window of the history.

Maximum likelihood makes each choice as probable as the history says, one act at a time;
a generated span compounds those choices, and its concentration (who gets the ratings)
can drift from the real one. The within-pool scores are therefore divided by a
temperature ``T``: the twin generates the history's last part (the validation window,
from the state before it) once per candidate ``T``, and keeps the ``T`` whose span is
closest to the real one on the in-degree distribution (KS distance) and reciprocity
(relative error). Only events before the split are involved.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from models.twin.choice import ChoiceParams
from models.twin.fit import TwinFit
from models.twin.observed import Stream, TwinSplit

__all__ = ["TEMPERATURES", "calibrate_temperature", "scaled"]

#: Candidate temperatures.
TEMPERATURES = (0.7, 1.0, 1.4)


def _validation_split(split: TwinSplit) -> TwinSplit:
    h = split.history
    t0 = float(h.t[0])
    t_val = split.t_split - min(split.horizon, 0.3 * (split.t_split - t0))
    k = int(np.searchsorted(h.t, t_val, side="left"))
    hist = h.slice(0, k)
    return TwinSplit(observed=split.observed, history=hist, future=h.slice(k, len(h)),
                     t_split=t_val, t_end=split.t_split,
                     n_known=int(max(hist.src.max(), hist.dst.max())) + 1)


def scaled(choice: ChoiceParams, temperature: float) -> ChoiceParams:
    """Choice weights with the within-pool scores divided by ``temperature``."""
    return dataclasses.replace(choice, theta=choice.theta / temperature,
                               same=choice.same / temperature, rated=choice.rated / temperature)


def calibrate_temperature(fit: TwinFit, temperatures: tuple[float, ...] = TEMPERATURES,
                          seed: int = 0) -> tuple[float, dict[str, Any]]:
    """The temperature whose generated validation window is closest to the real one."""
    from models.twin.run import learned_generator, twin_config
    from models.twin.stats import ks_distance, relative_error, stream_statistics
    from sim.engine.model import SocialModel
    from sim.engine.recording import Recorder

    val = _validation_split(fit.split)
    if len(val.history) < 5 or len(val.future) < 5:
        return 1.0, {"skipped": "validation window too small"}
    real = stream_statistics(val.future, val.history, val.t_split, val.t_end)
    scores: dict[str, float] = {}
    best = (np.inf, 1.0)
    for temp in temperatures:
        trial = dataclasses.replace(fit, split=val, choice=scaled(fit.choice, temp))
        dyn, pop, cap = learned_generator(trial, "twin")
        rec = Recorder(None, keep_events=True)
        SocialModel(twin_config(val.horizon, cap, fit.opinion_steps), seed, dynamics=dyn, recorder=rec,
                    population=pop).run()
        e = rec.events()
        ok = e["blocked"] == 0
        gen = stream_statistics(
            Stream.from_columns(e["t"][ok] + val.t_split, e["src"][ok], e["dst"][ok],
                                e["sign"][ok], e["weight"][ok]),
            val.history, val.t_split, val.t_end)
        score = (ks_distance(gen["in_degree"], real["in_degree"])
                 + relative_error(gen["reciprocity"], real["reciprocity"]))
        scores[f"{temp:g}"] = float(score)
        if score < best[0]:
            best = (score, temp)
    return best[1], {"validation_days": val.horizon, "score_by_temperature": scores}
