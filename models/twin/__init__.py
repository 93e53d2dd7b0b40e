"""The learned twin: a generative model of a run's future, checked against what happened.

Public entry points (each module documents its part):

* :func:`twin_run` -- ``signsim twin``: fit, generate N times per method, fidelity report;
* :func:`load_observed`, :func:`split_observed` -- a run cut at a split in time;
* :func:`fit_twin` -- activity, arrivals, target mixture, sign and weight from the history;
* :class:`TwinDynamics`, :class:`NullDynamics` -- generators behind the engine's Dynamics;
* :func:`calibrate_rules` -- the mechanistic rules fitted to the history by simulation;
* :func:`stream_statistics`, :func:`compare` -- the fidelity statistics and their table.
"""

from models.twin.calibrate import calibrate_rules
from models.twin.dynamics import NullDynamics, TwinDynamics
from models.twin.fit import TwinFit, fit_twin
from models.twin.observed import Observed, Stream, TwinSplit, load_observed, split_observed
from models.twin.run import TwinResult, twin_run
from models.twin.stats import compare, stream_statistics

__all__ = [
    "NullDynamics",
    "Observed",
    "Stream",
    "TwinDynamics",
    "TwinFit",
    "TwinResult",
    "TwinSplit",
    "calibrate_rules",
    "compare",
    "fit_twin",
    "load_observed",
    "split_observed",
    "stream_statistics",
    "twin_run",
]
