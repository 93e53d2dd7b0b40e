"""The event kernel on a hand-written stream with exact expected state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.config import SimConfig
from sim.engine.dynamics import apply_events
from sim.engine.kernel import NU, _balance_vote
from sim.engine.model import SocialModel


def tiny_model() -> SocialModel:
    cfg = SimConfig(horizon=10.0)
    cfg.population.n_agents = 3
    cfg.population.groups = 1
    cfg.population.kinds = {"citizen": 1.0}
    cfg.network.kind = "none"
    dyn = cfg.dynamics
    dyn.attraction, dyn.repulsion = 0.5, 0.25
    dyn.weight_scaled_updates = False
    dyn.negativity_gain, dyn.negativity_relief, dyn.negativity_decay = 0.5, 0.2, 2.0
    dyn.follow_prob, dyn.unfollow_prob = 1.0, 1.0
    cfg.recording.metric_cadence = 0.0
    model = SocialModel(cfg, seed=0)
    model.population.opinion[:] = [0.0, 0.4, -0.6]
    return model


def test_hand_written_stream_updates_state_exactly():
    model = tiny_model()
    times = np.array([1.0, 2.0, 3.0, 4.0])
    actors = np.array([0, 2, 0, 1])
    forcing = (
        np.array([1, 0, 2, 0]),
        np.zeros(4, dtype=np.int8),
        np.array([1, -1, -1, 1], dtype=np.int8),
        np.array([0.5, 0.8, 1.0, 0.5]),
    )
    out = apply_events(model, times, actors, np.full((4, NU), 0.5), forcing)
    pop, net = model.population, model.net
    assert out.dst.tolist() == [1, 0, 2, 0]
    assert out.sign.tolist() == [1, -1, -1, 1]
    assert out.blocked.tolist() == [0, 0, 0, 0]
    # 1: attraction 0.5*(0.4-0) -> 0.2, 0.2; 2: repulsion between 0.2 and -0.6 -> 0.4, -0.8
    # 3: repulsion between 0.4 and -0.8 -> 0.7, -1.1 clipped to -1; 4: 0.45, 0.45
    assert pop.opinion.tolist() == pytest.approx([0.45, 0.45, -1.0], abs=1e-12)
    neg0 = 0.5 * 0.8 * math.exp(-(4.0 - 2.0) / 2.0) * (1 - 0.2 * 0.5)
    assert pop.negativity.tolist() == pytest.approx([neg0, 0.0, 0.5], abs=1e-12)
    assert pop.neg_time.tolist() == [4.0, 1.0, 3.0]
    assert pop.last_actor.tolist() == [1, 0, 0]
    # 0 followed 1 after a positive act (follow_prob = 1); 1 followed 0 at event 4
    assert net.follow[0, : net.follow_n[0]].tolist() == [1]
    assert net.follow[1, : net.follow_n[1]].tolist() == [0]
    assert net.follow_n[2] == 0
    # signed ties remembered on both sides; a friend's enemy is an enemy
    assert sorted(zip(net.tie_partner[0, :2].tolist(), net.tie_sign[0, :2].tolist(), strict=False)) == [
        (1, 1), (2, -1)]
    assert _balance_vote(1, 2, net.tie_partner, net.tie_sign) == -1.0


def test_unavailable_target_is_blocked_and_changes_nothing():
    model = tiny_model()
    model.population.active[1] = False
    before = model.population.opinion.copy()
    forcing = (np.array([1]), np.zeros(1, dtype=np.int8), np.array([1], dtype=np.int8),
               np.array([1.0]))
    out = apply_events(model, np.array([1.0]), np.array([0]), np.full((1, NU), 0.5), forcing)
    assert out.blocked.tolist() == [4]
    assert model.population.opinion.tolist() == before.tolist()
    assert model.population.last_actor.tolist() == [-1, -1, -1]


def test_moderation_suspension_ends_the_batch():
    from sim.engine.kernel import Q

    model = tiny_model()
    model.policy[[Q.MOD_ON, Q.MOD_RECALL, Q.MOD_STRIKES]] = [1.0, 1.0, 2.0]
    forcing = (np.array([1, 1, 1, 1]), np.zeros(4, dtype=np.int8),
               np.array([-1, -1, -1, -1], dtype=np.int8), np.full(4, 0.5))
    out = apply_events(model, np.arange(1.0, 5.0), np.zeros(4, dtype=np.int64),
                       np.full((4, NU), 0.5), forcing)
    assert len(out) == 2  # second strike suspends agent 0: the batch stops there
    assert out.blocked.tolist() == [1, 1]
    assert out.suspended == 0
    assert not model.population.active[0]
