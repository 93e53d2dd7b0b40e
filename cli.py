"""signsim command line: a thin Typer adapter; each command calls one library function.

Errors from the library (:class:`sim.errors.SignsimError`) are printed as one paragraph
and the command exits with status 2, without a traceback. The conventions every command
shares (``-h``, ``--version``, shell completion, allowed values shown in help, ``-1`` read
as a run or model reference) are set up once, in ``cli_conventions.py``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from cli_conventions import SignsimApp, SignsimGroup
from sim.errors import SignsimError

__all__ = ["app"]

F = TypeVar("F", bound=Callable[..., Any])

app = SignsimApp(
    name="signsim",
    cls=SignsimGroup,
    help="Agent-based signed social-network simulator with learned dynamics.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    """``--version``: print the installed package's version and exit."""
    if value:
        try:
            version = metadata.version("signsim")
        except metadata.PackageNotFoundError:
            version = "0+unknown (not installed)"
        typer.echo(f"signsim {version}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print signsim's version and exit.")] = False,
) -> None:
    """Agent-based signed social-network simulator with learned dynamics."""


DbOption = Annotated[
    str,
    typer.Option("--db", metavar="<path|url>",
                 help="Database: a file path (SQLite) or a SQLAlchemy URL (postgresql://...)."),
]
RunArg = Annotated[
    str,
    typer.Argument(metavar="RUN", help="Run: an id, latest (or -1; -2 the one before, ...) or a "
                   "scenario name (its newest complete run; an imported network: its file stem)."),
]
ModelArg = Annotated[
    str,
    typer.Argument(metavar="MODEL", help="Model: an id (see the models table), latest (or -1; -2 "
                   "the one before, ...) or a model name."),
]
Format = Literal["table", "csv", "json"]
Device = Annotated[str, typer.Option(metavar="<auto|cpu|cuda|cuda:N>",
                                     help="Where to run (auto: CUDA when available).")]


def _model_id(db: str, ref: str) -> int:
    """The id of the model that ``ref`` names in database ``db`` (id, latest, -N, name)."""
    from sim.store.database import Store

    store = Store(db, create=False, read_only=True)
    try:
        return store.resolve_model(ref)
    finally:
        store.dispose()


def friendly(func: F) -> F:
    """Turn SignsimError (and a missing file) into a one-paragraph message and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SignsimError as exc:
            typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            typer.secho("Interrupted; everything committed so far is kept.", err=True)
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def _echo_path(label: str, path: Path | str) -> None:
    typer.echo(f"{label}: {path}")


def _id_list(ids: Sequence[int]) -> str:
    """Ids as ranges: ``[4, 5, 6, 9]`` -> ``4-6, 9``."""
    parts: list[str] = []
    for i in sorted(ids):
        first, _, last = parts[-1].partition("-") if parts else ("", "", "")
        if parts and i == int(last or first) + 1:
            parts[-1] = f"{first}-{i}"
        else:
            parts.append(str(i))
    return ", ".join(parts) or "none"


@app.command()
@friendly
def simulate(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario file whose settings to use (optional).")
    ] = None,
    db: DbOption = "signsim.db",
    arm: Annotated[str | None, typer.Option(help="Arm of the scenario (default: its baseline).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the run.")] = 0,
    agents: Annotated[int | None, typer.Option(help="Override the number of agents.")] = None,
    horizon: Annotated[float | None, typer.Option(help="Override the horizon in days.")] = None,
    network: Annotated[
        Literal["sbm", "barabasi_albert", "watts_strogatz", "edge_list", "none"] | None,
        typer.Option(help="Override the network kind (edge_list: the scenario's network.path)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Simulate one run and stream every interaction into the database."""
    from sim.engine.simulate import simulate as run_simulation

    result = run_simulation(db, scenario_path=str(scenario) if scenario else None, arm=arm,
                            seed=seed, n_agents=agents, horizon=horizon, network=network,
                            progress=progress)
    typer.echo(f"run {result.run_id}: {result.events} events in {result.seconds:.2f} s "
               f"({result.events_per_s:,.0f} events/s) -> {db}")


@app.command()
@friendly
def runs(
    db: DbOption = "signsim.db",
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = "table",
) -> None:
    """List the runs in a database."""
    from sim.store.query import format_frame, list_runs

    typer.echo(format_frame(list_runs(db), fmt))


@app.command()
@friendly
def query(
    sql: Annotated[str, typer.Argument(help="One read-only SQL statement (SELECT ...).")],
    db: DbOption = "signsim.db",
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = "table",
    timeout: Annotated[
        float, typer.Option(help="Seconds the statement may run before it is stopped.")
    ] = 60.0,
) -> None:
    """Run one read-only SQL statement; writes and several statements are refused."""
    from sim.store.query import format_frame, run_query

    typer.echo(format_frame(run_query(db, sql, timeout), fmt))


@app.command()
@friendly
def validate(
    scenario: Annotated[Path, typer.Argument(help="Scenario file to check.")],
) -> None:
    """Check a scenario file without running it."""
    from sim.scenario import load_scenario

    sc = load_scenario(scenario)
    typer.echo(f"{scenario}: OK: scenario '{sc.name}', {len(sc.arms)} arms "
               f"({', '.join(a.name for a in sc.arms)}), {len(sc.seeds)} seeds, "
               f"horizon {sc.arms[0].config.horizon:g} days")



@app.command()
@friendly
def stats(
    run: RunArg,
    db: DbOption = "signsim.db",
    png: Annotated[Path | None, typer.Option(help="Also plot the per-window series here.")] = None,
    windows: Annotated[int, typer.Option(min=1, max=1000, help="Number of equal time windows.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Temporal signed-graph statistics of a run (novelty, surprise, reciprocity, balance)."""
    import json

    from sim.store.database import Store
    from sim.sweep.graphstats import graph_stats, plot_stats

    store = Store(db, create=False, read_only=True)
    result = graph_stats(store, store.resolve_run(run), windows)
    if png is not None:
        plot_stats(result, png)
    if as_json:
        series = {k: [None if v != v else float(v) for v in vals]
                  for k, vals in result["series"].items()}
        typer.echo(json.dumps({**result, "series": series}, indent=1, default=str))
        return
    for key, value in result["stats"].items():
        typer.echo(f"{key:>28}  {value:,.4f}" if isinstance(value, float) else f"{key:>28}  {value}")
    if png is not None:
        typer.echo(f"plot: {png}")


@app.command()
@friendly
def export(
    run: RunArg,
    out: Annotated[Path, typer.Argument(help="Output file.")],
    fmt: Annotated[Literal["csv", "parquet", "tgb", "pyg"], typer.Option(
        "--format", help="CSV, Parquet, a TGB-style edge list or PyG TemporalData (.pt).")] = "csv",
    db: DbOption = "signsim.db",
) -> None:
    """Export a run's interactions (CSV, Parquet, TGB-style edge list, PyG TemporalData)."""
    from sim.store.database import Store
    from sim.store.export import export_run

    store = Store(db, create=False, read_only=True)
    path = export_run(store, store.resolve_run(run), fmt, out)
    typer.echo(f"wrote {path}")



@app.command()
@friendly
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (TOML).")],
    db: DbOption = "signsim.db",
    workers: Annotated[int, typer.Option(help="Worker processes (local pool or Dask).")] = 2,
    dask: Annotated[
        str | None, typer.Option(help="'local' for a Dask LocalCluster, or tcp://host:port of a "
                                 "running `dask scheduler` (with a PostgreSQL --db).")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Run every (arm, seed) again, even those with a "
                                        "complete run (the report uses the newest).")] = False,
    resume: Annotated[bool, typer.Option(help="Also mark aborted this scenario's running runs "
                                         "that no sweep holds (complete pairs are always "
                                         "reused).")] = False,
    out: Annotated[Path | None, typer.Option(help="Report folder (default reports/<name>).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run every arm x seed of a scenario once (complete pairs are reused), then report."""
    from sim.sweep.runner import run_scenario_file

    outcome = run_scenario_file(scenario, db, workers=workers, dask=dask, fresh=fresh,
                                resume=resume, out_dir=out, progress=progress)
    res = outcome.experiment
    for line in res.notes():
        typer.echo(line)
    typer.echo(f"{res.made} runs made, {res.events:,} events in {res.seconds:.1f} s -> {db}")
    typer.echo(f"report: {outcome.report} (and report.html)")


@app.command()
@friendly
def report(
    scenario: Annotated[str, typer.Option("--scenario", help="Scenario name (runs.scenario).")],
    db: DbOption = "signsim.db",
    out: Annotated[Path | None, typer.Option(help="Report folder (default reports/<name>).")] = None,
    baseline: Annotated[str | None, typer.Option(help="Reference arm (default: the scenario's).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Re-render a scenario's comparison report from the database alone."""
    from sim.sweep.runner import render_report

    path = render_report(db, scenario, out, baseline, progress=progress)
    typer.echo(f"report: {path} (and report.html)")


@app.command("import")
@friendly
def import_network(
    file: Annotated[Path, typer.Argument(help="Signed edge-list file to import.")],
    db: DbOption = "signsim.db",
    fmt: Annotated[Literal["snap-signed"], typer.Option(
        "--format", help="File format (SNAP's signed edge lists).")] = "snap-signed",
    name: Annotated[str | None, typer.Option(help="Run name (default: the file stem).")] = None,
) -> None:
    """Import a real signed network as a complete 'observed' run."""
    from sim.store.importers import import_network as do_import

    s = do_import(db, file, fmt, name)
    typer.echo(f"run {s.run_id} ({s.scenario}): {s.n_interactions:,} interactions, "
               f"{s.n_agents:,} agents, {s.span_days:.1f} days, "
               f"{100 * s.negative_share:.1f}% negative -> {db}")


@app.command()
@friendly
def train(
    run: RunArg,
    db: DbOption = "signsim.db",
    variant: Annotated[Literal["semba", "no_balance", "unsigned"],
                       typer.Option(help="Model variant.")] = "semba",
    features: Annotated[bool, typer.Option(help="Feed online pair features to the heads.")] = True,
    triads: Annotated[
        bool, typer.Option(help="Add the signed-triad features to the online features.")
    ] = True,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 6,
    batch_size: Annotated[int, typer.Option(help="Events per batch of the protocol.")] = 200,
    train_batch: Annotated[
        int, typer.Option(help="Events per training batch (0: --batch-size).")] = 0,
    chunk_size: Annotated[
        int, typer.Option(help="Random chunk scheduling unit (0: --batch-size).")] = 0,
    stream_chunk: Annotated[
        int, typer.Option(help="Stream training events from the database, N rows a query "
                          "(0: load the run).")] = 0,
    val_window: Annotated[
        int, typer.Option(help="With --stream-chunk: validation events per epoch (0: all).")
    ] = 0,
    gpus: Annotated[
        int, typer.Option(help="Data-parallel processes, one per GPU (with --device cpu: "
                          "CPU processes).")] = 1,
    lr: Annotated[float, typer.Option(help="Learning rate (at --batch-size).")] = 1e-3,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of weights and sampling.")] = 0,
    adapt: Annotated[
        bool, typer.Option(help="Prequential adaptation in validation/test (test-then-train).")
    ] = True,
    memory_dim: Annotated[int, typer.Option(help="Size of each node memory.")] = 64,
    fg_growth: Annotated[
        float, typer.Option(help="Refresh the fairness/goodness features once the history "
                            "has grown by this fraction (0: every batch; ~0.05 for runs of "
                            "millions of events).")] = 0.0,
    device: Device = "auto",
    out: Annotated[Path, typer.Option(help="Checkpoint folder.")] = Path("checkpoints"),
    name: Annotated[str | None, typer.Option(help="Model name.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train the temporal signed-graph model on a run; record it in the models table."""
    from models.train import TrainConfig
    from models.train_job import train_run

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                      seed=seed, adapt=adapt, train_batch_size=train_batch,
                      chunk_size=chunk_size, stream_chunk=stream_chunk, val_window=val_window)
    r = train_run(db, run, variant=variant, use_features=features, train=cfg,
                  model_overrides={"memory_dim": memory_dim, "triads": triads,
                                   "fg_growth": fg_growth}, out_dir=out,
                  device=device,
                  name=name, progress=progress, gpus=gpus)
    v = r.val_metrics
    where = f"{r.device} x{r.processes}" if r.processes > 1 else r.device
    typer.echo(f"model {r.model_id} on run {r.run_id} ({where}, {r.seconds:.0f} s, "
               f"{r.train_events_per_s:,.0f} training events/s); best epoch {r.best_epoch}: "
               f"val sign AUC {v['sign_auc']:.3f}, val MRR {v['exist_mrr']:.3f}")
    _echo_path("checkpoint", r.checkpoint)


EVALUATE_LEGEND = (
    "columns: existence of each true event against its 100 negatives: MRR, AP, ex.AUC; sign:\n"
    "sg.AUC, sg.mF1 (macro-F1), F1neg (F1 of the negative class); signed weight: w.RMSE, w.r\n"
    "(Pearson); 3c.mF1: 3-class macro-F1 (no link / positive / negative); pq.mF1, pq.F1n, pq.3c:\n"
    "sg.mF1, F1neg, 3c.mF1 with prequential thresholds (re-chosen before each batch on the last\n"
    "revealed events), the other columns with thresholds fixed on validation. blend: the model\n"
    "and gbdt_all (gradient boosting on every online feature) averaged, event by event."
)
"""The legend printed under ``signsim evaluate``'s table (docs/models.md explains more)."""


@app.command()
@friendly
def evaluate(
    model: ModelArg,
    db: DbOption = "signsim.db",
    device: Device = "auto",
    adapt: Annotated[
        bool | None, typer.Option(help="Prequential adaptation (default: as trained).")
    ] = None,
    baselines: Annotated[bool, typer.Option(help="Run the baselines beside the model.")] = True,
    ablations: Annotated[bool, typer.Option(help="Also train and run the ablations.")] = False,
    triad_baseline: Annotated[
        bool | None,
        typer.Option(help="Add gradient boosting on count + triad features "
                          "(default: when the model reads triad features)."),
    ] = None,
    blend: Annotated[
        bool, typer.Option(help="With the baselines, also gradient boosting on every online "
                                "feature and its blend with the model.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Evaluate a model beside the baselines under the strict online protocol."""
    from models.evaluate import evaluate_model

    rep = evaluate_model(db, _model_id(db, model), device=device, adapt=adapt,
                         baselines=baselines, ablations=ablations, triads=triad_baseline,
                         blend=blend, progress=progress)
    typer.echo(rep.to_json() if as_json else rep.format_table("test") + "\n" + EVALUATE_LEGEND)


@app.command()
@friendly
def forecast(
    model: ModelArg,
    db: DbOption = "signsim.db",
    run: Annotated[
        str | None, typer.Option(metavar="<run>", help="Run to forecast: an id, latest, -1, ... or "
                                 "a name (default: the model's own run).")
    ] = None,
    window: Annotated[
        float | None, typer.Option(help="Window length for negative shares (time units).")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG path for the negative-share plot.")] = None,
    device: Device = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Forecast every event after the training period into the forecasts table."""
    from models.forecast import forecast_model

    r = forecast_model(db, _model_id(db, model), run=run, window=window, plot=plot,
                       device=device, progress=progress)
    typer.echo(r.format_table())
    typer.echo(f"{r.n_rows:,} forecasts of run {r.run_id} written to the forecasts table; "
               f"negative-share MAE {r.mae_negative_share:.3f}")
    _echo_path("plot", r.plot)


@app.command()
@friendly
def twin(
    run: RunArg,
    db: DbOption = "signsim.db",
    split: Annotated[float, typer.Option(help="Share of the run's events to learn from.")] = 0.7,
    seeds: Annotated[int, typer.Option(help="Generated spans per method (1-100).")] = 5,
    out: Annotated[Path | None, typer.Option(help="Report folder (default reports/twin-RUN).")] = None,
    budget: Annotated[int, typer.Option(help="Simulations the rules' calibration may spend.")] = 60,
    methods: Annotated[str, typer.Option(
        metavar="<twin,calibrated,null>",
        help="Generators to compare: any of twin, calibrated, null, comma-separated.")
    ] = "twin,calibrated,null",
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Fit a learned twin of RUN, generate its held-out span, report fidelity vs rules and null."""
    from models.twin.run import scoreboard_text, twin_run

    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    r = twin_run(db, run, split=split, seeds=seeds, out=out, budget=budget, methods=chosen,
                 progress=progress)
    typer.echo(scoreboard_text(r.table))
    typer.echo("closest to the truth, statistics won: "
               + ", ".join(f"{m} {k}" for m, k in r.wins.items()))
    typer.echo("generation events/s: "
               + ", ".join(f"{m} {v:,.0f}" for m, v in r.events_per_s.items()))
    typer.echo("run ids stored: " + "; ".join(f"{m} {_id_list(ids)}" for m, ids in r.runs.items()))
    _echo_path("report", r.report)


def main() -> None:
    """Entry point used by ``python cli.py``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
