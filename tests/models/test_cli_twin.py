"""`signsim twin` and learned-dynamics inputs through the CLI: happy path and bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _one_paragraph_error(res) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.output.strip() and "\n\n" not in res.output.strip()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("twin-cli")
    src = folder / "otc-head.csv"
    src.write_text("".join((ROOT / "data" / "soc-sign-bitcoinotc.csv").read_text()
                           .splitlines(keepends=True)[:1500]))
    path = folder / "t.db"
    res = invoke("import", str(src), "--db", str(path))
    assert res.exit_code == 0, res.output
    return path


def test_twin_command_stores_runs_and_writes_the_report(db: Path, tmp_path: Path) -> None:
    res = invoke("twin", "otc-head", "--db", str(db), "--seeds", "2", "--methods", "twin,null",
                 "--out", str(tmp_path / "rep"), "--no-progress")
    assert res.exit_code == 0, res.output
    assert "closest to the truth" in res.output and "event_count" in res.output
    md = (tmp_path / "rep" / "fidelity.md").read_text()
    assert "| 1. event count |" in md
    for png in ("fidelity_negative_share.png", "fidelity_degree_ccdf.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = invoke("query", "SELECT arm, seed, status FROM runs WHERE scenario = 'twin-otc-head' "
                  "ORDER BY id", "--db", str(db), "--format", "csv")
    assert runs.output.split() == ["arm,seed,status", "twin,0,complete", "twin,1,complete",
                                   "null,0,complete", "null,1,complete"]


@pytest.mark.parametrize("args, words", [
    (["--split", "1.5"], "split"),
    (["--seeds", "0"], "--seeds"),
    (["--methods", "twin,magic"], "magic"),
])
def test_twin_bad_options(db: Path, args: list[str], words: str) -> None:
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    res = invoke("twin", "otc-head", "--db", str(db), "--no-progress", *args)
    _one_paragraph_error(res)
    assert words in res.output
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_twin_unknown_run(db: Path) -> None:
    res = invoke("twin", "no-such-run", "--db", str(db), "--no-progress")
    _one_paragraph_error(res)
    assert "no-such-run" in res.output


def _scenario(tmp_path: Path, checkpoint: Path, candidates: int = 4) -> Path:
    path = tmp_path / "learned.toml"
    path.write_text(f'name = "learned"\nhorizon = 1.0\nseeds = 1\n[population]\nn_agents = 50\n'
                    f'[dynamics]\nmodel = "{checkpoint}"\nmodel_candidates = {candidates}\n'
                    '[[arms]]\nname = "baseline"\n')
    return path


def _checkpoint(tmp_path: Path, **change) -> Path:
    from models.signed_tgn import ModelConfig, build_model

    model = build_model(ModelConfig(num_nodes=50, memory_dim=8, time_dim=4, msg_dim=8,
                                    embed_dim=8, hidden=8))
    data = {"state_dict": model.state_dict(), "config": {"model": model.config.to_dict()}}
    if change.get("drop_state"):
        del data["state_dict"]
    if "variant" in change:
        data["config"]["model"]["variant"] = change["variant"]
    if "memory_dim" in change:
        data["config"]["model"]["memory_dim"] = change["memory_dim"]
    path = tmp_path / "ckpt.pt"
    torch.save(data, path)
    return path


@pytest.mark.parametrize("change, words", [
    ({"drop_state": True}, "state_dict"),
    ({"variant": "quantum"}, "does not fit"),
    ({"memory_dim": 16}, "does not fit"),
])
def test_learned_dynamics_checkpoint_that_does_not_fit(tmp_path: Path, change: dict, words: str
                                                        ) -> None:
    scenario = _scenario(tmp_path, _checkpoint(tmp_path, **change))
    res = invoke("simulate", str(scenario), "--db", str(tmp_path / "x.db"), "--no-progress")
    _one_paragraph_error(res)
    assert words in res.output


def test_learned_dynamics_checkpoint_that_fits_runs(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, _checkpoint(tmp_path))
    res = invoke("simulate", str(scenario), "--db", str(tmp_path / "x.db"), "--no-progress")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("candidates", [0, 10, 16])
def test_out_of_range_candidate_counts_are_refused(tmp_path: Path, candidates: int) -> None:
    scenario = _scenario(tmp_path, _checkpoint(tmp_path), candidates)
    res = invoke("validate", str(scenario))
    _one_paragraph_error(res)
    assert "model_candidates" in res.output
