"""A full small train / evaluate / forecast cycle on a real simulated run, library and CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from cli import app
from models.evaluate import evaluate_model
from models.forecast import forecast_model
from models.train import TrainConfig, load_checkpoint
from models.train_job import train_run
from sim.engine.simulate import simulate
from sim.errors import SignsimError
from sim.store.database import open_store

SMALL = {"memory_dim": 8, "time_dim": 4, "msg_dim": 8, "embed_dim": 8, "hidden": 16,
         "neighbors": 5}
FAST = TrainConfig(epochs=2, batch_size=100, n_neg=20, select_neg=10, patience=1)
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    db = str(tmp / "sim.db")
    run = simulate(db, n_agents=50, horizon=15, seed=3).run_id
    other = simulate(db, n_agents=40, horizon=10, seed=4).run_id
    result = train_run(db, run, train=FAST, model_overrides=SMALL, out_dir=tmp / "ckpt",
                       device="cpu", progress=False)
    return {"db": db, "run": run, "other": other, "result": result, "tmp": tmp}


def test_train_records_the_model_and_a_safe_checkpoint(trained):
    r = trained["result"]
    assert r.run_id == trained["run"] and r.best_epoch in (1, 2) and r.device == "cpu"
    row = open_store(trained["db"]).frame("SELECT * FROM models WHERE id = :i",
                                          {"i": r.model_id}).iloc[0]
    assert row.run_id == trained["run"] and row.checkpoint.endswith(".pt")
    config = json.loads(row.config_json)
    assert config["model"]["variant"] == "semba" and config["train"]["epochs"] == 2
    metrics = json.loads(row.metrics_json)
    assert metrics["best_epoch"] == r.best_epoch and len(metrics["history"]) >= 1
    raw = torch.load(row.checkpoint, weights_only=True)
    assert set(raw) == {"state_dict", "config"}
    json.dumps(raw["config"])  # JSON-safe
    model, cfg = load_checkpoint(row.checkpoint, num_nodes=7)
    assert model.num_nodes == 7 and cfg["run_id"] == trained["run"]
    for key, value in raw["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value)


def test_evaluate_runs_model_and_baselines_in_one_protocol(trained):
    rep = evaluate_model(trained["db"], trained["result"].model_id, device="cpu",
                         progress=False)
    assert list(rep.metrics) == ["model", "edgebank", "edgebank_window", "reputation",
                                 "logreg", "gbdt", "gbdt+triads", "tgn", "gbdt_all+triads",
                                 "blend"]
    for method, parts in rep.metrics.items():
        for part in ("val", "test"):
            m = parts[part]
            assert 0 <= m["exist_mrr"] <= 1, method
            assert math.isfinite(m["sign_macro_f1"]) and math.isfinite(m["weight_rmse"])
        assert parts["val"]["sign_threshold"] == parts["test"]["sign_threshold"]
        assert 0 <= m["sign_macro_f1_preq"] <= 1 and 0 <= m["three_class_macro_f1_preq"] <= 1
    data = json.loads(rep.to_json())
    assert set(data["test"]) == set(rep.metrics) and "prequential" in data["protocol"]
    table = rep.format_table()
    assert table.splitlines()[1].split()[:3] == ["method", "MRR", "AP"]
    assert table.splitlines()[1].split()[-3:] == ["pq.mF1", "pq.F1n", "pq.3c"]
    stored = open_store(trained["db"]).frame("SELECT metrics_json FROM models WHERE id = :i",
                                             {"i": trained["result"].model_id})
    assert "evaluation" in json.loads(stored.metrics_json[0])


def test_forecast_writes_rows_and_a_plot(trained):
    db, mid = trained["db"], trained["result"].model_id
    png = trained["tmp"] / "share.png"
    res = forecast_model(db, mid, plot=png, device="cpu", progress=False)
    store = open_store(db)
    n_after = store.frame(
        "SELECT count(*) n FROM interactions WHERE run_id = :r AND delivered",
        {"r": trained["run"]}).n[0]
    rows = store.frame("SELECT * FROM forecasts WHERE model_id = :m ORDER BY seq", {"m": mid})
    assert 0 < res.n_rows == len(rows) < n_after
    assert rows.p_exist.between(0, 1).all() and rows.p_positive.between(0, 1).all()
    assert rows.weight_pred.between(-1, 1).all() and set(rows.sign_true) <= {-1, 1}
    agents = set(store.frame("SELECT agent_id FROM agents WHERE run_id = :r",
                             {"r": trained["run"]}).agent_id)
    assert set(rows.src) <= agents and set(rows.dst) <= agents
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    assert sum(w["n"] for w in res.windows) == res.n_rows
    assert 0 <= res.mae_negative_share <= 1
    again = forecast_model(db, mid, plot=png, device="cpu", progress=False)  # replaces rows
    assert again.n_rows == len(store.frame("SELECT seq FROM forecasts WHERE model_id = :m",
                                           {"m": mid}))
    other = forecast_model(db, mid, run=str(trained["other"]), plot=png, device="cpu",
                           progress=False)
    assert other.run_id == trained["other"] and other.n_rows > 0


def test_cli_train_evaluate_forecast(trained):
    db, tmp = trained["db"], trained["tmp"]
    res = runner.invoke(app, ["train", str(trained["run"]), "--db", db, "--epochs", "1",
                              "--memory-dim", "8", "--batch-size", "100", "--device", "cpu",
                              "--out", str(tmp / "cli"), "--no-progress", "--variant",
                              "no_balance"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("model ") and "checkpoint:" in res.output
    model_id = res.output.split()[1]
    res = runner.invoke(app, ["evaluate", model_id, "--db", db, "--no-baselines", "--json",
                              "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert list(json.loads(res.output)["test"]) == ["model"]
    res = runner.invoke(app, ["forecast", model_id, "--db", db, "--device", "cpu",
                              "--plot", str(tmp / "cli.png"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "forecasts of run" in res.output and (tmp / "cli.png").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["train", "99", "--no-progress"], "No run with id 99"),
    (["train", "nosuchnet", "--no-progress"], "No complete run with id or name 'nosuchnet'"),
    (["train", "1", "--device", "tpu", "--no-progress"], "Unknown device 'tpu'"),
    (["train", "1", "--variant", "magic", "--no-progress"], "'magic' is not one of"),
    (["evaluate", "99", "--no-progress"], "No model with id 99"),
    (["forecast", "99", "--no-progress"], "No model with id 99"),
])
def test_cli_errors_are_one_paragraph(trained, args, needle):
    res = runner.invoke(app, [*args, "--db", trained["db"]])
    assert res.exit_code == 2 and needle in res.output, res.output
    assert "Traceback" not in res.output


def test_missing_database_and_checkpoint(trained, tmp_path):
    with pytest.raises(SignsimError, match="does not exist"):
        train_run(str(tmp_path / "none.db"), 1, progress=False)
    with pytest.raises(SignsimError, match="does not exist"):
        load_checkpoint(tmp_path / "gone.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SignsimError, match="cannot be read"):
        load_checkpoint(bad)
