"""DataFrames of what the learning commands return, for notebooks.

:func:`models.evaluate.evaluate_model` returns nested dicts and
:func:`models.forecast.forecast_model` a list of windows; these turn them into tables
with fixed columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from models.evaluate import EvaluationReport
    from models.forecast import ForecastResult

__all__ = ["WINDOW_COLUMNS", "evaluation_frame", "forecast_frame"]

#: Columns of :func:`forecast_frame`, one row per time window of the forecast period.
WINDOW_COLUMNS = ("t_start", "t_end", "n", "forecast_negative_share", "observed_negative_share")


def evaluation_frame(report: EvaluationReport, part: str = "test") -> pd.DataFrame:
    """One part of an evaluation as a table: a row per method, a column per metric.

    Args:
        report: What :func:`models.evaluate.evaluate_model` returned.
        part: ``test`` or ``val``.

    Returns:
        Index ``method`` (the model first, then the baselines in the order they ran);
        columns the metric keys (``exist_mrr``, ``sign_auc``, ... as in
        :data:`models.evaluate.METRIC_COLUMNS`); NaN where a method has no value.

    Raises:
        ValueError: ``part`` is neither ``test`` nor ``val``.
    """
    if part not in ("test", "val"):
        raise ValueError(f"part must be 'test' or 'val', not {part!r}")
    from models.evaluate import METRIC_COLUMNS

    columns = [key for key, _ in METRIC_COLUMNS]
    rows = {method: parts[part] for method, parts in report.metrics.items()}
    extra = sorted({k for row in rows.values() for k in row} - set(columns))
    df = pd.DataFrame.from_dict(rows, orient="index", columns=columns + extra, dtype="float64")
    df.index.name = "method"
    return df


def forecast_frame(result: ForecastResult) -> pd.DataFrame:
    """The forecast against the observed negative share, per time window.

    Args:
        result: What :func:`models.forecast.forecast_model` returned.

    Returns:
        Columns :data:`WINDOW_COLUMNS` (``n`` is the number of events in the window).
    """
    df = pd.DataFrame(result.windows, columns=list(WINDOW_COLUMNS), dtype="float64")
    return df.astype({"n": "int64"})
