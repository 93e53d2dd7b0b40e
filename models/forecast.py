"""``signsim forecast``: write a model's forecasts of a run into the ``forecasts`` table.

The model replays the run's training period (memory only), then walks the rest of the
run in batches under the strict online protocol: every event after the training period
gets, from the state before its batch, the predicted existence probability of its pair,
the probability that it is positive and the predicted signed weight; then the batch is
revealed (and, with prequential adaptation, learned from). ``weight_pred`` and
``weight_true`` in ``forecasts`` are *signed* weights (``sign * weight``).

It also compares the forecast share of negative interactions (mean of ``1 - p_positive``)
with the observed share per time window, as a table and a PNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import delete
from tqdm import tqdm

from models.data import SignedEvents, iter_batches, resolve_run
from models.evaluate import load_trained
from models.train import NeuralMethod
from sim.errors import SignsimError
from sim.store.database import Store, open_store
from sim.store.schema import Forecast

__all__ = ["ForecastResult", "forecast_model", "negative_share_windows", "plot_negative_share"]


@dataclass
class ForecastResult:
    """What ``signsim forecast`` wrote.

    Attributes:
        model_id: The model.
        run_id: The forecast run.
        n_rows: Rows written to ``forecasts``.
        plot: Path of the PNG.
        windows: Per time window: ``t_start``, ``t_end``, ``n``, ``forecast_negative_share``,
            ``observed_negative_share``.
        mae_negative_share: Mean absolute error of the forecast share over windows.
    """

    model_id: int
    run_id: int
    n_rows: int
    plot: str
    windows: list[dict[str, float]] = field(default_factory=list)
    mae_negative_share: float = float("nan")

    def format_table(self) -> str:
        """The per-window comparison as text."""
        lines = [f"{'t_start':>10} {'t_end':>10} {'n':>6} {'forecast':>9} {'observed':>9}"]
        for w in self.windows:
            lines.append(f"{w['t_start']:10.2f} {w['t_end']:10.2f} {int(w['n']):6d} "
                         f"{w['forecast_negative_share']:9.3f} "
                         f"{w['observed_negative_share']:9.3f}")
        return "\n".join(lines)


def negative_share_windows(
    t: np.ndarray, p_negative: np.ndarray, negative: np.ndarray, window: float | None = None,
    n_windows: int = 20,
) -> list[dict[str, float]]:
    """Forecast vs observed share of negative interactions per time window.

    Args:
        t: Event times.
        p_negative: Forecast probability that each event is negative.
        negative: Whether each event was negative.
        window: Window length (default: the span divided by ``n_windows``).
        n_windows: Number of windows when ``window`` is None.
    """
    if t.size == 0:
        return []
    t0, t1 = float(t.min()), float(t.max())
    width = window if window and window > 0 else max((t1 - t0) / n_windows, 1e-9)
    edges = np.arange(t0, t1 + width, width)
    if edges.size < 2:
        edges = np.array([t0, t0 + width])
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, edges.size - 2)
    out = []
    for k in range(edges.size - 1):
        sel = which == k
        if not sel.any():
            continue
        out.append({"t_start": float(edges[k]), "t_end": float(edges[k + 1]),
                    "n": float(sel.sum()),
                    "forecast_negative_share": float(p_negative[sel].mean()),
                    "observed_negative_share": float(negative[sel].mean())})
    return out


def plot_negative_share(
    windows: list[dict[str, float]], path: str | Path, title: str, test_start: float | None = None
) -> Path:
    """Draw forecast vs observed negative share per window into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    mid = [(w["t_start"] + w["t_end"]) / 2 for w in windows]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(mid, [w["observed_negative_share"] for w in windows], "o-", label="observed")
    ax.plot(mid, [w["forecast_negative_share"] for w in windows], "s--", label="forecast")
    if test_start is not None:
        ax.axvline(test_start, color="grey", lw=0.8, ls=":", label="test period starts")
    ax.set_xlabel("time (run time units; days for imported networks)")
    ax.set_ylabel("share of negative interactions")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(p, dpi=120)
    plt.close(fig)
    return p


def _forecast_rows(
    method: NeuralMethod, events: SignedEvents, start: int, batch_size: int, adapt: bool,
    progress: bool,
) -> dict[str, np.ndarray]:
    model = method.model
    cols: dict[str, list[np.ndarray]] = {"p_exist": [], "p_pos": [], "w": []}
    n_batches = math.ceil((len(events) - start) / batch_size)
    for batch in tqdm(iter_batches(events, start, len(events), batch_size), total=n_batches,
                      disable=not progress, desc="forecast", unit="batch"):
        model.eval()
        with torch.no_grad():
            out = model(batch.src, batch.dst, float(batch.t[0]))
        cols["p_exist"].append(torch.sigmoid(out.exist).double().cpu().numpy())
        cols["p_pos"].append(torch.sigmoid(out.sign).double().cpu().numpy())
        cols["w"].append(out.weight.double().cpu().numpy())
        if adapt:
            method.learn(batch)
        method.observe(batch)
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}


def forecast_model(
    db: str | Store,
    model_id: int,
    *,
    run: str | int | None = None,
    window: float | None = None,
    plot: str | Path | None = None,
    device: str = "auto",
    adapt: bool | None = None,
    progress: bool = True,
) -> ForecastResult:
    """Forecast every event after a run's training period and store the forecasts.

    Args:
        db: Database path/URL or an open store.
        model_id: Row id in the ``models`` table.
        run: Run to forecast (id or name); default: the run the model was trained on.
        window: Window length for the negative-share comparison (default: 1/20 of the
            forecast period).
        plot: PNG path (default ``reports/forecast-model<id>-run<run>.png``).
        device: ``auto``, ``cpu`` or ``cuda``.
        adapt: Prequential adaptation while forecasting (default: as trained).
        progress: Show a progress bar.

    Raises:
        SignsimError: Unknown model or run, missing checkpoint, unknown device.
    """
    store = db if isinstance(db, Store) else open_store(db, create=False)
    loaded = load_trained(store, model_id, resolve_run(store, run) if run is not None else None,
                          device, adapt)
    run_id, events, train, split, model = (loaded.run_id, loaded.events, loaded.train,
                                           loaded.split, loaded.model)
    method = NeuralMethod("model", model, train)
    method.reset_state()
    for batch in iter_batches(events, 0, split.train_end, train.batch_size):
        method.observe(batch)
    start = split.train_end
    pred = _forecast_rows(method, events, start, train.batch_size, train.adapt, progress)

    ids = events.node_ids
    src = ids[events.src[start:].cpu().numpy()]
    dst = ids[events.dst[start:].cpu().numpy()]
    t = events.t[start:].double().cpu().numpy()
    sign = events.sign[start:].cpu().numpy().astype(np.int64)
    sw = (events.sign[start:] * events.weight[start:]).double().cpu().numpy()
    seq = events.seq[start:]
    rows: list[dict[str, Any]] = [
        {"model_id": int(model_id), "run_id": run_id, "seq": int(seq[i]), "t": float(t[i]),
         "src": int(src[i]), "dst": int(dst[i]), "p_exist": float(pred["p_exist"][i]),
         "p_positive": float(pred["p_pos"][i]), "weight_pred": float(pred["w"][i]),
         "sign_true": int(sign[i]), "weight_true": float(sw[i])}
        for i in range(len(seq))
    ]
    with store.begin() as conn:
        conn.execute(delete(Forecast).where(Forecast.model_id == int(model_id),
                                            Forecast.run_id == run_id))
        store.bulk_insert(conn, Forecast.__tablename__, rows)

    windows = negative_share_windows(t, 1.0 - pred["p_pos"], sign < 0, window)
    if not windows:
        raise SignsimError(f"Run {run_id} has no events after its training period.")
    mae = float(np.mean([abs(w["forecast_negative_share"] - w["observed_negative_share"])
                         for w in windows]))
    path = Path(plot) if plot else Path("reports") / f"forecast-model{model_id}-run{run_id}.png"
    plot_negative_share(windows, path,
                        f"model {model_id} on run {run_id}: share of negative interactions",
                        test_start=split.val_time)
    return ForecastResult(model_id=int(model_id), run_id=run_id, n_rows=len(rows),
                          plot=str(path), windows=windows, mae_negative_share=mae)
