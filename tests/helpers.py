"""Small builders shared by the tests (and the benchmarks that need a scratch database)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from sim.config import SimConfig
from sim.engine.model import SocialModel
from sim.engine.recording import Recorder


@contextmanager
def scratch_pg_database(server: str, prefix: str = "signsim_test") -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of URL ``server``; its URL.

    The database is dropped afterwards, also when the body fails.
    """
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def deffuant_config(eps: float, n_agents: int = 400, horizon: float = 60.0) -> SimConfig:
    """The classic bounded-confidence model: random pairs, attraction only, mu = 0.5."""
    cfg = SimConfig(horizon=horizon)
    pop, dyn = cfg.population, cfg.dynamics
    pop.n_agents = n_agents
    pop.groups = 1
    pop.kinds = {"citizen": 1.0}
    pop.opinion_range = [0.0, 1.0]
    pop.initial_opinion = "uniform"
    pop.rate_distribution = "constant"
    cfg.network.kind = "none"
    dyn.confidence = eps
    dyn.attraction = 0.5
    dyn.repulsion = 0.0
    dyn.p_reply = 0.0
    dyn.p_exposure = 1.0
    dyn.sign_temperature = 0.0
    dyn.balance = 0.0
    dyn.weight_scaled_updates = False
    dyn.follow_prob = 0.0
    cfg.recording.metric_cadence = 0.0
    return cfg


def major_clusters(opinions: np.ndarray, gap: float = 0.02, share: float = 0.05) -> int:
    """Clusters of sorted opinions split at gaps > ``gap``, counting those >= ``share``."""
    x = np.sort(opinions)
    cuts = np.flatnonzero(np.diff(x) > gap)
    sizes = np.diff(np.concatenate(([0], cuts + 1, [x.shape[0]])))
    return int(np.count_nonzero(sizes >= share * x.shape[0]))


def run_memory(cfg: SimConfig, seed: int) -> tuple[SocialModel, Recorder]:
    """Run a model with an in-memory recorder."""
    rec = Recorder(None, keep_events=True)
    model = SocialModel(cfg, seed, recorder=rec)
    model.run()
    return model, rec


BUSY_SCENARIO = """
horizon = 6.0
[population]
n_agents = 400
kinds = {citizen = 0.85, troll = 0.15}
[recording]
flush_rows = 700
snapshot_cadence = 2.0
snapshot_sample = 40
[[arms]]
name = "baseline"
[[arms.interventions]]
type = "moderation"
recall = 0.8
false_positive_rate = 0.01
strikes = 2
suspension_days = 1.0
start = 1.0
[[arms.interventions]]
type = "friction"
start = 2.0
"""
"""A small run that writes every side table: several flushes, snapshots, moderation and
friction log rows."""
