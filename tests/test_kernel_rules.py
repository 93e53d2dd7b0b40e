"""The sign and weight rules of the kernel, unforced, against hand-computed values.

Each case builds a three-agent model, sets the actor's negativity and signed ties by hand,
forces only the target, and feeds one act whose sign uniform lies just below or just above
the probability the rule documents (``sim/engine/dynamics.py``):
``P(negative) = sigmoid((d - eps) / T + b + c * n_a - beta * v_bal)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.engine.dynamics import apply_events
from sim.engine.kernel import NU, U_SIGN, U_WEIGHT, P
from sim.engine.model import SocialModel

from .test_kernel import tiny_model

EPS, TEMP, BASE, CONTAGION, BALANCE, TAU = 0.5, 0.2, -1.0, 2.0, 1.5, 2.0
N0, T_NEG, NOW = 0.6, 1.0, 2.0  # actor 0's negativity 0.6 set at t=1, act at t=2
DELTA = 1e-9


def rule_model(balance: float = 0.0, kind: int = 0) -> SocialModel:
    model = tiny_model()  # opinions [0.0, 0.4, -0.6], range [-1, 1]
    p = model.params
    p[P.CONFIDENCE], p[P.TEMPERATURE], p[P.BASE_NEG] = EPS, TEMP, BASE
    p[P.CONTAGION], p[P.BALANCE], p[P.NEG_DECAY] = CONTAGION, balance, TAU
    pop = model.population
    pop.negativity[0], pop.neg_time[0] = N0, T_NEG
    pop.kind[0] = kind
    return model


def act(model: SocialModel, target: int, u_sign: float, u_weight: float = 0.3) -> tuple[int, float]:
    """One unforced act of agent 0 on ``target`` at NOW; returns (sign, weight)."""
    u = np.full((1, NU), 0.5)
    u[0, U_SIGN], u[0, U_WEIGHT] = u_sign, u_weight
    forcing = (np.array([target]), np.zeros(1, dtype=np.int8), np.zeros(1, dtype=np.int8),
               np.array([np.nan]))
    out = apply_events(model, np.array([NOW]), np.array([0]), u, forcing)
    return int(out.sign[0]), float(out.weight[0])


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


NEG_A = N0 * math.exp(-(NOW - T_NEG) / TAU)  # decayed negativity of the actor: 0.3639


def test_sign_probability_includes_distance_and_contagion():
    # target 1: d = 0.4; z = (0.4 - 0.5)/0.2 - 1 + 2 * 0.3639 = -0.7722, p = 0.3160
    p = sigmoid((0.4 - EPS) / TEMP + BASE + CONTAGION * NEG_A)
    assert p == pytest.approx(0.31601, abs=1e-5)
    assert act(rule_model(), 1, p - DELTA)[0] == -1
    assert act(rule_model(), 1, p + DELTA)[0] == 1
    # target 2: d = 0.6 -> z = 0.5 - 1 + 0.7278 = 0.2278; more distant, more often negative
    p2 = sigmoid((0.6 - EPS) / TEMP + BASE + CONTAGION * NEG_A)
    assert p2 == pytest.approx(0.55671, abs=1e-5)
    assert act(rule_model(), 2, p2 - DELTA)[0] == -1
    assert act(rule_model(), 2, p2 + DELTA)[0] == 1


def test_a_calm_actor_is_less_negative_than_an_upset_one():
    calm = rule_model()
    calm.population.negativity[0] = 0.0
    p = sigmoid((0.4 - EPS) / TEMP + BASE)  # no contagion: 0.18243
    assert act(calm, 1, p - DELTA)[0] == -1
    assert act(rule_model(), 1, p + 0.05)[0] == -1  # the upset actor is still negative here
    calm = rule_model()
    calm.population.negativity[0] = 0.0
    assert act(calm, 1, p + DELTA)[0] == 1


def test_structural_balance_term_lowers_negativity_between_friends_of_friends():
    def with_ties(s02: int, s12: int) -> SocialModel:
        model = rule_model(balance=BALANCE)
        net = model.net
        net.tie_partner[0, 0], net.tie_sign[0, 0] = 2, s02
        net.tie_partner[1, 0], net.tie_sign[1, 0] = 2, s12
        return model

    base_z = (0.4 - EPS) / TEMP + BASE + CONTAGION * NEG_A
    # 0 and 1 share a friend (2): vote +1 -> z - 1.5
    p_friends = sigmoid(base_z - BALANCE)
    assert p_friends == pytest.approx(0.09345, abs=1e-5)
    assert act(with_ties(1, 1), 1, p_friends - DELTA)[0] == -1
    assert act(with_ties(1, 1), 1, p_friends + DELTA)[0] == 1
    # 2 is 0's friend and 1's enemy: vote -1 -> z + 1.5
    p_enemy = sigmoid(base_z + BALANCE)
    assert p_enemy == pytest.approx(0.67433, abs=1e-5)
    assert act(with_ties(1, -1), 1, p_enemy - DELTA)[0] == -1
    assert act(with_ties(1, -1), 1, p_enemy + DELTA)[0] == 1


def test_zero_temperature_is_bounded_confidence():
    for target, d in ((1, 0.4), (2, 0.6)):
        model = rule_model()
        model.params[P.TEMPERATURE] = 0.0
        expected = -1 if d >= EPS else 1
        assert act(model, target, 0.0)[0] == expected  # no randomness at T = 0
        model = rule_model()
        model.params[P.TEMPERATURE] = 0.0
        assert act(model, target, 0.999)[0] == expected


def test_weight_rule_hand_values():
    # positive act on agent 1: 0.5 * (1 - d / span) + 0.5 * u = 0.5 * (1 - 0.4/2) + 0.15
    assert act(rule_model(), 1, 0.999, u_weight=0.3) == (1, pytest.approx(0.55, abs=1e-12))
    assert act(rule_model(), 2, 0.999, u_weight=0.0) == (1, pytest.approx(0.35, abs=1e-12))
    # negative act of a citizen: 0.3 + 0.4 * min(n_a, 1) + 0.3 * u
    sign, w = act(rule_model(), 1, 0.0, u_weight=0.5)
    assert sign == -1 and w == pytest.approx(0.3 + 0.4 * NEG_A + 0.15, abs=1e-12)
    upset = rule_model()
    upset.population.negativity[0], upset.population.neg_time[0] = 5.0, NOW
    assert act(upset, 1, 0.0, u_weight=0.5) == (-1, pytest.approx(0.85, abs=1e-12))  # capped n_a
    # a troll's negative act on its own group: 0.6 + 0.4 * u
    assert act(rule_model(kind=2), 1, 0.0, u_weight=0.25) == (-1, pytest.approx(0.7, abs=1e-12))


def test_weight_is_clipped_to_its_range():
    model = rule_model()
    model.population.opinion[:] = [-1.0, 1.0, 0.0]  # d = span: positive weight 0.5 * u
    assert act(model, 1, 0.99999, u_weight=0.02) == (1, pytest.approx(0.05, abs=1e-12))
