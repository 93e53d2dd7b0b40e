"""Learned dynamics: a trained checkpoint drives a simulated population through the engine."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from models.learned import LearnedDynamics
from models.train import TrainConfig
from models.train_job import train_run
from sim.engine.simulate import run_into_store, simulate
from sim.scenario import parse_scenario
from sim.store.database import open_store

SMALL = {"memory_dim": 8, "time_dim": 4, "msg_dim": 8, "embed_dim": 8, "hidden": 16,
         "neighbors": 5}
FAST = TrainConfig(epochs=1, batch_size=100, n_neg=10, select_neg=5, patience=1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("learned")
    db = str(tmp / "train.db")
    run = simulate(db, n_agents=40, horizon=8, seed=1).run_id
    result = train_run(db, run, train=FAST, model_overrides=SMALL, out_dir=tmp / "ckpt",
                       device="cpu", progress=False)
    return tmp, result.checkpoint


def scenario(ckpt: str, friction: float | None = None):
    text = f"""
    horizon = 3.0
    [population]
    n_agents = 60
    [dynamics]
    model = "{ckpt}"
    model_candidates = 4
    [[arms]]
    name = "baseline"
    """
    if friction is not None:
        text += f'interventions = [{{ type = "friction", start = 1.0, share = {friction} }}]\n'
    return parse_scenario(text).arms[0]


def test_learned_run_is_complete_and_reproducible(checkpoint, tmp_path):
    _, ckpt = checkpoint
    arm = scenario(ckpt)
    hashes = []
    for name in ("a.db", "b.db"):
        store = open_store(str(tmp_path / name))
        res = run_into_store(store, arm.config, seed=2, interventions=arm.interventions)
        assert store.run(res.run_id)["status"] == "complete" and res.events > 100
        hashes.append(store.table_hash(res.run_id))
    assert hashes[0] == hashes[1]
    con = sqlite3.connect(tmp_path / "a.db")
    causes = {c for (c,) in con.execute("SELECT DISTINCT cause FROM interactions")}
    weights = np.array([w for (w,) in con.execute("SELECT weight FROM interactions")])
    con.close()
    assert "learned" in causes and causes <= {"organic", "exposure", "reply", "learned"}
    assert weights.min() >= 0.05 and weights.max() <= 1.0


def test_interventions_act_on_learned_decisions(checkpoint, tmp_path):
    _, ckpt = checkpoint
    arm = scenario(ckpt, friction=1.0)
    store = open_store(str(tmp_path / "f.db"))
    res = run_into_store(store, arm.config, seed=2, interventions=arm.interventions)
    df = store.frame("SELECT t, sign, blocked_by FROM interactions WHERE run_id = :r",
                     {"r": res.run_id})
    late_neg = df[(df.t >= 1.0) & (df.sign < 0)]
    assert len(late_neg) > 0 and (late_neg.blocked_by == "friction").all()
    assert (df[df.t < 1.0].blocked_by.isna()).all()


def test_batches_are_capped_and_the_clock_stays_exact(checkpoint):
    from sim.engine.model import SocialModel
    from sim.engine.recording import Recorder

    _, ckpt = checkpoint
    arm = scenario(ckpt)
    dyn = LearnedDynamics(ckpt, candidates=4, max_batch=7, device="cpu")
    rec = Recorder(None, keep_events=True)
    model = SocialModel(arm.config, 5, dynamics=dyn, recorder=rec)
    model.run()
    assert max(len(b) for b in rec.batches) <= 7
    t = rec.events()["t"]
    assert (np.diff(t) >= 0).all() and t.max() < 3.0
    lam = model.population.rate.sum() * 3.0
    assert abs(t.size - lam) < 4 * np.sqrt(lam)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    from sim.errors import SignsimError

    arm = scenario(str(tmp_path / "none.pt"))
    with pytest.raises(SignsimError, match="checkpoint .*none.pt' does not exist"):
        run_into_store(open_store(str(tmp_path / "m.db")), arm.config, seed=0)
