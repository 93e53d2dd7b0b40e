"""Data-parallel training: 2 gloo CPU processes, identical replicas, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint
from models.distributed import DistContext, parameter_digest, plan_processes
from models.train import TrainConfig
from models.train_job import train_run
from sim.errors import SignsimError
from sim.store.database import open_store
from tests.models.test_streaming import write_run

SMALL = {"memory_dim": 8, "time_dim": 4, "msg_dim": 8, "embed_dim": 8, "hidden": 16,
         "neighbors": 5}


def small_run(path) -> tuple[str, int]:
    rng = np.random.default_rng(3)
    n = 900
    src = rng.integers(0, 30, n)
    dst = (src + 1 + rng.integers(0, 29, n)) % 30
    sign = np.where(np.isin(dst, [0, 7, 14]) | (rng.random(n) < 0.1), -1, 1)
    db = str(path / "ddp.db")
    store = open_store(db)
    run = write_run(store, np.sort(rng.random(n) * 50), src, dst, sign,
                    rng.integers(1, 11, n) / 10, np.ones(n, bool))
    store.dispose()
    return db, run


def ddp_train(db: str, run: int, out, seed: int = 0, **extra) -> object:
    cfg = TrainConfig(epochs=2, batch_size=50, train_batch_size=100, chunk_size=25,
                      n_neg=6, select_neg=6, seed=seed, **extra)
    return train_run(db, run, train=cfg, model_overrides=SMALL, out_dir=out, device="cpu",
                     progress=False, gpus=2)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    db, run = small_run(tmp)
    first = ddp_train(db, run, tmp / "a")
    again = ddp_train(db, run, tmp / "b")
    return {"db": db, "run": run, "first": first, "again": again, "tmp": tmp}


def test_two_gloo_processes_train_identical_replicas(two_runs):
    r = two_runs["first"]
    assert r.processes == 2 and r.device == "cpu"
    assert len(r.param_sha256) == 2 and r.param_sha256[0] == r.param_sha256[1]
    assert r.best_epoch in (1, 2) and np.isfinite(r.val_metrics["sign_auc"])
    model, config = load_checkpoint(r.checkpoint)
    assert parameter_digest(model) == r.param_sha256[0]
    assert config["processes"] == 2
    row = open_store(two_runs["db"]).frame("SELECT metrics_json FROM models WHERE id = :i",
                                           {"i": r.model_id})
    assert '"processes": 2' in row["metrics_json"].iloc[0]


def test_data_parallel_training_is_deterministic_for_a_seed(two_runs):
    assert two_runs["again"].param_sha256 == two_runs["first"].param_sha256
    assert two_runs["again"].val_metrics == two_runs["first"].val_metrics


def test_data_parallel_training_streams_from_the_database(two_runs):
    r = ddp_train(two_runs["db"], two_runs["run"], two_runs["tmp"] / "c", seed=1,
                  stream_chunk=70)
    assert r.param_sha256[0] == r.param_sha256[1]
    assert r.param_sha256[0] != two_runs["first"].param_sha256[0]  # another seed


def test_rank_shares_cover_a_batch_exactly():
    for n in (2, 5, 101):
        shares = [DistContext(rank=k, world=3, device=torch.device("cpu")).share(10, 10 + n)
                  for k in range(3)]
        assert shares[0][0] == 10 and shares[-1][1] == 10 + n
        assert all(a[1] == b[0] for a, b in zip(shares, shares[1:], strict=False))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_gpus_without_cuda_is_a_clear_error_unless_cpu_is_asked_for():
    with pytest.raises(SignsimError, match="none is available; add --device cpu"):
        plan_processes(2, "auto")
    assert plan_processes(2, "cpu") == ("gloo", [torch.device("cpu")] * 2)
    with pytest.raises(SignsimError, match="at least 1"):
        plan_processes(0, "cpu")
