"""CLI conventions: run and model references, --version, -h, choices in help, completion, docs."""

from __future__ import annotations

import json
import os
import re
import typing
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

import cli
from cli import app
from sim.config import NetworkConfig
from sim.errors import SignsimError
from sim.store.database import open_store
from sim.store.export import EXPORT_FORMATS
from sim.store.importers import FORMATS as IMPORT_FORMATS

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")
runner = CliRunner()


def invoke(*args: str, **kwargs: typing.Any):
    return runner.invoke(app, list(args), prog_name="signsim", **kwargs)


def error_of(res) -> str:
    """The one-paragraph error of a refused command (exit status 2, no traceback)."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    return " ".join(re.sub("[│╭╮╰╯─]", " ", res.output).split())  # without Rich's box


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    """Three small runs: seeds 0, 1, 2 (ids 1, 2, 3), each printed with its id."""
    path = str(tmp_path_factory.mktemp("conv") / "sim.db")
    for seed in range(3):
        res = invoke("simulate", "--db", path, "--agents", "60", "--horizon", "1",
                     "--seed", str(seed), "--no-progress")
        assert res.exit_code == 0, res.output
        assert res.output.startswith(f"run {seed + 1}: ")
    return path


def stats_run(db: str, *ref: str) -> dict[str, typing.Any]:
    res = invoke("stats", *ref, "--db", db, "--json", "--windows", "2")
    assert res.exit_code == 0, res.output
    return json.loads(res.output)["run"]


# -- run references: id, latest, -1, -2, ..., name -----------------------------------------
@pytest.mark.parametrize(("ref", "run_id", "seed"), [
    ("3", 3, 2), ("1", 1, 0), ("latest", 3, 2), ("LATEST", 3, 2), ("-1", 3, 2), ("-2", 2, 1),
    ("-3", 1, 0), ("adhoc", 3, 2),
])
def test_stats_takes_every_kind_of_run_reference(db, ref, run_id, seed):
    run = stats_run(db, ref)
    assert (run["id"], run["seed"]) == (run_id, seed)


def test_a_negative_reference_is_a_value_wherever_it_stands(db):
    # before or after the options, and an option's own negative value stays its value
    assert stats_run(db, "--windows", "3", "-2")["id"] == 2
    res = invoke("stats", "--db", db, "-2", "--windows", "-1")  # -1 is --windows' value
    assert "Invalid value for '--windows': Input should be greater than or equal to 1" in error_of(
        res)
    res = invoke("stats", "-1", "--db", db, "--windws", "3")
    assert res.exit_code == 2 and "No such option: --windws" in res.output


def test_export_takes_latest_and_writes_that_run(db, tmp_path):
    out = tmp_path / "last.csv"
    res = invoke("export", "-1", str(out), "--db", db)
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(out)
    stored = open_store(db, create=False, read_only=True).interactions(3)
    assert set(rows["run_id"]) == {3} and len(rows) == len(stored["seq"])
    assert rows["seq"].tolist() == stored["seq"].tolist()


@pytest.mark.parametrize(("ref", "needle"), [
    ("-4", "No run '-4': the database holds 3 runs, so -1 to -3 (or an id) are valid."),
    ("-0", "'-0' is not a run reference"),
    ("99", "No run with id 99"),
    ("nosuch", "No complete run with id or name 'nosuch' in the database (known names: adhoc)"),
])
def test_unknown_run_references_are_refused_clearly(db, ref, needle):
    assert needle in error_of(invoke("stats", ref, "--db", db))


def test_latest_in_an_empty_database(tmp_path):
    path = str(tmp_path / "empty.db")
    open_store(path).dispose()
    for args in (["stats", "latest"], ["export", "-1", str(tmp_path / "x.csv")],
                 ["train", "-1", "--no-progress"], ["twin", "latest", "--no-progress"]):
        msg = error_of(invoke(*args, "--db", path))
        assert f"No run '{args[1]}': the database holds no runs yet." in msg, args
    assert not (tmp_path / "x.csv").exists()


def test_running_runs_count_for_latest_but_not_for_names(tmp_path):
    store = open_store(str(tmp_path / "r.db"))
    done = store.create_run(scenario="net")
    store.finish_run(done)
    running = store.create_run(scenario="net")
    assert store.resolve_run("latest") == store.resolve_run(-1) == running
    assert store.resolve_run("net") == done  # a name: the newest complete run
    assert store.resolve_run(-2) == store.resolve_run(str(done)) == done


def test_models_delegate_to_the_store_resolver(tmp_path):
    from models.data import resolve_run

    store = open_store(str(tmp_path / "m.db"))
    first, second = store.create_run(scenario="a"), store.create_run(scenario="b")
    assert resolve_run(store, "latest") == second and resolve_run(store, "-2") == first


# -- model references ---------------------------------------------------------------------
def add_models(store, names: list[str]) -> None:
    run = store.create_run(scenario="net")
    store.write_rows("models", [{"name": n, "run_id": run, "created_at": datetime.now(UTC),
                                 "checkpoint": f"{n}.pt"} for n in names])


def test_model_references(tmp_path):
    store = open_store(str(tmp_path / "m.db"))
    with pytest.raises(SignsimError, match="No model 'latest': the database holds no models yet"):
        store.resolve_model("latest")
    add_models(store, ["semba", "unsigned", "semba"])
    assert [store.resolve_model(r) for r in ("1", 2, "latest", "-1", "-3", "semba", "unsigned")] \
        == [1, 2, 3, 3, 1, 3, 2]
    with pytest.raises(SignsimError, match=r"No model with id 7 .*models: 1 \(semba\), 2"):
        store.resolve_model("7")
    with pytest.raises(SignsimError, match="No model '-4': the database holds 3 models"):
        store.resolve_model("-4")
    with pytest.raises(SignsimError, match="No model with id or name 'gat'"):
        store.resolve_model("gat")


@pytest.mark.parametrize("command", ["evaluate", "forecast"])
def test_model_commands_take_latest(tmp_path, command):
    path = str(tmp_path / "m.db")
    add_models(open_store(path), ["old"])  # model 1 on run 1
    add_models(open_store(path), ["new"])  # model 2 on run 2
    assert "No model '-3': the database holds 2 models, so -1 to -2" in error_of(
        invoke(command, "-3", "--db", path, "--no-progress"))
    # the model's run is empty: refused after the reference was resolved to the right model
    for ref, run in (("latest", 2), ("-1", 2), ("-2", 1), ("old", 1)):
        msg = error_of(invoke(command, ref, "--db", path, "--device", "cpu", "--no-progress"))
        assert f"Run {run} (net, status running) has no delivered interactions" in msg, ref


def test_train_then_evaluate_and_forecast_the_latest(db, tmp_path):
    res = invoke("train", "-1", "--db", db, "--epochs", "1", "--memory-dim", "8",
                 "--batch-size", "20", "--fg-growth", "0.1", "--device", "cpu",
                 "--out", str(tmp_path), "--no-progress")
    assert res.exit_code == 0, res.output
    model_id = int(res.output.split()[1])
    assert res.output.startswith(f"model {model_id} on run 3 (cpu")
    stored = open_store(db).frame("SELECT config_json FROM models WHERE id = :i",
                                  {"i": model_id})["config_json"].iloc[0]
    assert json.loads(stored)["model"]["fg_growth"] == 0.1
    assert "fg_growth must be >= 0" in error_of(invoke(
        "train", "-1", "--db", db, "--fg-growth", "-1", "--device", "cpu", "--no-progress"))
    res = invoke("evaluate", "latest", "--db", db, "--no-baselines", "--device", "cpu",
                 "--no-progress")
    assert res.exit_code == 0, res.output
    assert res.output.endswith(cli.EVALUATE_LEGEND + "\n")  # the legend right under the table
    assert res.output.splitlines()[3].split()[0] == "model"
    res = invoke("forecast", "-1", "--run", "-2", "--db", db, "--device", "cpu",
                 "--plot", str(tmp_path / "f.png"), "--no-progress")
    assert res.exit_code == 0, res.output
    assert "forecasts of run 2 written" in res.output




@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_references_on_postgresql(pg_db):
    store = open_store(pg_db)
    with pytest.raises(SignsimError, match="No run 'latest': the database holds no runs yet"):
        store.resolve_run("latest")
    ids = [store.create_run(scenario="net") for _ in range(3)]
    store.finish_run(ids[0])
    assert [store.resolve_run(r) for r in ("latest", "-1", "-3", str(ids[1]), "net")] == [
        ids[2], ids[2], ids[0], ids[1], ids[0]]
    res = invoke("stats", "-3", "--db", pg_db, "--json")
    assert res.exit_code == 0 and json.loads(res.output)["run"]["id"] == ids[0]
    add_models(store, ["a", "b"])
    assert [store.resolve_model(r) for r in ("latest", "-2", "a")] == [2, 1, 1]
    store.dispose()


# -- --version, -h, completion --------------------------------------------------------------
def test_version():
    res = invoke("--version")
    assert res.exit_code == 0 and res.output == f"signsim {metadata.version('signsim')}\n"


@pytest.mark.parametrize("command", [[], ["stats"], ["train"], ["run"]])
def test_dash_h_is_help(command):
    short, long = invoke(*command, "-h"), invoke(*command, "--help")
    assert short.exit_code == long.exit_code == 0
    assert short.output == long.output and "Usage: signsim" in short.output


def test_completion_is_installed_and_completes_choices():
    res = invoke("--help")
    assert "--install-completion" in res.output and "--show-completion" in res.output
    env = {"_SIGNSIM_COMPLETE": "complete_bash", "COMP_WORDS": "signsim export 1 o --format p",
           "COMP_CWORD": "5"}
    assert invoke(env=env).output.split() == ["parquet", "pyg"]
    env.update(COMP_WORDS="signsim ev", COMP_CWORD="1")
    assert invoke(env=env).output.split() == ["evaluate"]


# -- help shows allowed values, no placeholders ---------------------------------------------
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_no_placeholders(command):
    res = invoke(*([command] if command else []), "--help", env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for placeholder in ("<bool>", "<str>", "{"):
        assert placeholder not in res.output, (command, placeholder)


def literal_choices(func, name: str) -> tuple[str, ...]:
    hint = typing.get_type_hints(func, include_extras=True)[name]
    for arg in (typing.get_args(hint)[0], *typing.get_args(typing.get_args(hint)[0])):
        if typing.get_origin(arg) is typing.Literal:
            return typing.get_args(arg)
    raise AssertionError(f"{func.__name__} {name} has no fixed choices")


def test_choices_are_the_librarys():
    from models.signed_tgn import VARIANTS
    from models.twin.run import METHODS

    network_kinds = typing.get_args(typing.get_type_hints(NetworkConfig)["kind"])
    assert literal_choices(cli.export, "fmt") == EXPORT_FORMATS
    assert literal_choices(cli.import_network, "fmt") == IMPORT_FORMATS
    assert literal_choices(cli.train, "variant") == VARIANTS
    assert literal_choices(cli.simulate, "network") == network_kinds
    assert literal_choices(cli.runs, "fmt") == literal_choices(cli.query, "fmt") == (
        "table", "csv", "json")
    assert f"<{','.join(METHODS)}>" in invoke("twin", "-h", env={"COLUMNS": "200"}).output


@pytest.mark.parametrize(("command", "shown"), [
    ("runs", "<table|csv|json>"), ("query", "<table|csv|json>"),
    ("export", "<csv|parquet|tgb|pyg>"), ("import", "<snap-signed>"),
    ("train", "<semba|no_balance|unsigned>"), ("train", "<auto|cpu|cuda|cuda:N>"),
    ("simulate", "<sbm|barabasi_albert|watts_strogatz|edge_list|none>"),
    ("evaluate", "<auto|cpu|cuda|cuda:N>"), ("stats", "<path|url>"),
])
def test_help_shows_allowed_values(command, shown):
    assert shown in invoke(command, "-h", env={"COLUMNS": "200"}).output


def test_a_value_outside_the_choices_is_refused_with_them(db, tmp_path):
    msg = error_of(invoke("export", "1", str(tmp_path / "x.xml"), "--format", "xml", "--db", db))
    assert "'xml' is not one of 'csv', 'parquet', 'tgb', 'pyg'" in msg
    assert not (tmp_path / "x.xml").exists()


def test_the_library_still_refuses_what_the_choices_keep_out(db, tmp_path):
    from models.train_job import train_run
    from sim.store.export import export_run

    with pytest.raises(SignsimError, match="Bad model settings: unknown variant 'magic'"):
        train_run(db, "latest", variant="magic", device="cpu", out_dir=tmp_path, progress=False)
    with pytest.raises(SignsimError, match="Unknown export format 'xml'"):
        export_run(open_store(db, create=False, read_only=True), 1, "xml", tmp_path / "x.xml")


# -- docs that agree ------------------------------------------------------------------------
def test_evaluate_legend_explains_every_column():
    from models.evaluate import METRIC_COLUMNS

    models_doc = (ROOT / "docs" / "models.md").read_text()
    for _, label in METRIC_COLUMNS:
        assert re.search(rf"(?<![\w.]){re.escape(label)}(?![\w])", cli.EVALUATE_LEGEND), label
        assert f"`{label}`" in models_doc, label


def option_names(command: str) -> list[list[str]]:
    """The long names of each option of a command (``--progress``, ``--no-progress``)."""
    cmd = get_command(app).commands[command]  # type: ignore[attr-defined]
    return [[o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")]
            for p in cmd.params if isinstance(p, typer.core.TyperOption)]


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_documents_every_command_and_option(command):
    readme = (ROOT / "README.md").read_text()
    heading = re.search(rf"^### .*`signsim {command}\b.*$", readme, re.M)
    assert heading, f"README has no section for signsim {command}"
    section = readme[heading.start():].split("\n### ", 1)[0]
    missing = [names[0] for names in option_names(command) if names[0] != "--db"
               and not any(re.search(rf"{n}(?![\w-])", section) for n in names)]
    assert not missing, f"README's signsim {command} section lacks {missing}"


def test_readme_says_which_commands_take_db():
    without = [c for c in COMMANDS if ["--db"] not in option_names(c)]
    assert without == ["validate"]
    assert "Every command but `validate` takes `--db" in (ROOT / "README.md").read_text()
