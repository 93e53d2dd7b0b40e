"""The compiled event kernel: one act after another, in time order, over columnar state.

Each act is processed exactly as the rules in :mod:`sim.engine.dynamics` describe, one event at
a time, so every decision sees the effects of all earlier events. The loops are compiled
with numba; setting ``NUMBA_DISABLE_JIT=1`` runs the same code as plain Python.

Randomness: the engine draws ``NU`` uniforms per event from the model's seeded
generator and passes them in; the kernel itself holds no random state.
"""

from __future__ import annotations

import math
from enum import IntEnum

import numpy as np
from numba import njit

from sim.contract import (
    B_FRICTION,
    B_MODERATION,
    B_NONE,
    B_RATE,
    B_UNAVAILABLE,
    COUNTER,
    COUNTERED,
    EXPOSURE,
    ORGANIC,
    RECOMMENDED,
    REPLY,
    TROLL,
)

__all__ = [
    "NU",
    "P",
    "Q",
    "choose_targets",
    "run_events",
]

#: Uniform random numbers consumed per event.
NU = 16
U_CHOICE, U_PICK, U_SIDE, U_SIGN, U_WEIGHT, U_MOD, U_FRICTION, U_FOLLOW, U_TRIES = range(9)
N_TRIES = NU - U_TRIES


class P(IntEnum):
    """Indices of the dynamics parameter vector (see :class:`sim.config.DynamicsConfig`)."""

    CONFIDENCE = 0
    ATTRACTION = 1
    REPULSION = 2
    P_REPLY = 3
    P_EXPOSURE = 4
    TEMPERATURE = 5
    BALANCE = 6
    CONTAGION = 7
    BASE_NEG = 8
    NEG_GAIN = 9
    NEG_RELIEF = 10
    NEG_DECAY = 11
    FOLLOW = 12
    UNFOLLOW = 13
    TROLL_NEG = 14
    TROLL_OUT = 15
    LO = 16
    HI = 17
    WEIGHT_SCALED = 18
    SIZE = 19


class Q(IntEnum):
    """Indices of the policy vector that interventions set (0 = off)."""

    MOD_ON = 0
    MOD_RECALL = 1
    MOD_FPR = 2
    MOD_STRIKES = 3
    MOD_SUSPEND = 4
    FRICTION = 5
    BRIDGING = 6
    RATE_CAP = 7  # acts per day of each kind: RATE_CAP + kind code (4 kinds)
    SIZE = 11


@njit(cache=True)
def _other(n: int, a: int, u: float) -> int:
    """A uniformly chosen agent other than ``a``."""
    j = int(u * (n - 1))
    if j >= n - 1:
        j = n - 2
    if j >= a:
        j += 1
    return j


@njit(cache=True)
def _choose(i, a, n, U, opinion, group, kind, last_actor, follow, follow_n, victims, vstate,
            P_, Q_):
    """Choose the target of event ``i`` by actor ``a``; returns (target, cause)."""
    u = U[i]
    k = kind[a]
    if k == COUNTER:
        if vstate[1] > 0:
            m = victims.shape[0]
            count = min(vstate[1], m)
            slot = (vstate[0] - 1 - int(u[U_PICK] * count)) % m
            t = victims[slot]
            if t != a:
                return t, COUNTERED
        return _other(n, a, u[U_PICK]), EXPOSURE
    if u[U_CHOICE] < P_[P.P_REPLY] and last_actor[a] >= 0:
        return last_actor[a], REPLY
    if k == TROLL and u[U_SIDE] < P_[P.TROLL_OUT]:
        for r in range(N_TRIES):
            t = _other(n, a, u[U_TRIES + r])
            if group[t] != group[a]:
                return t, EXPOSURE
        return _other(n, a, u[U_PICK]), EXPOSURE
    if Q_[Q.BRIDGING] > 0.0 and u[U_SIDE] < Q_[Q.BRIDGING]:
        best = -1
        best_d = 1e300
        for r in range(N_TRIES):
            t = _other(n, a, u[U_TRIES + r])
            if group[t] != group[a]:
                d = abs(opinion[t] - opinion[a])
                if d < best_d:
                    best_d = d
                    best = t
        if best >= 0:
            return best, RECOMMENDED
    if u[U_CHOICE] < P_[P.P_REPLY] + P_[P.P_EXPOSURE] or follow_n[a] == 0:
        return _other(n, a, u[U_PICK]), EXPOSURE
    j = int(u[U_PICK] * follow_n[a])
    if j >= follow_n[a]:
        j = follow_n[a] - 1
    return follow[a, j], ORGANIC


@njit(cache=True)
def _balance_vote(a, t, tie_partner, tie_sign):
    """Mean of s(a,k)*s(k,t) over agents k with a remembered tie to both a and t."""
    total = 0.0
    count = 0
    m = tie_partner.shape[1]
    for x in range(m):
        k = tie_partner[a, x]
        if k < 0 or k == t:
            continue
        for y in range(m):
            if tie_partner[t, y] == k:
                total += tie_sign[a, x] * tie_sign[t, y]
                count += 1
                break
    if count == 0:
        return 0.0
    return total / count


@njit(cache=True)
def _remember(i, j, s, tie_partner, tie_sign, tie_next):
    """Remember that the tie between ``i`` and ``j`` now has sign ``s`` (ring buffer)."""
    m = tie_partner.shape[1]
    for x in range(m):
        if tie_partner[i, x] == j:
            tie_sign[i, x] = s
            return
    x = tie_next[i]
    tie_partner[i, x] = j
    tie_sign[i, x] = s
    tie_next[i] = (x + 1) % m


@njit(cache=True)
def _decayed(neg, neg_time, j, now, tau):
    return neg[j] * math.exp(-(now - neg_time[j]) / tau)


@njit(cache=True)
def choose_targets(actors, U, opinion, group, kind, last_actor, follow, follow_n, victims,
                   vstate, P_, Q_, out_target, out_cause):
    """Choose targets for a batch from the state at its start (used by learned dynamics)."""
    n = opinion.shape[0]
    for i in range(actors.shape[0]):
        t, c = _choose(i, actors[i], n, U, opinion, group, kind, last_actor, follow, follow_n,
                       victims, vstate, P_, Q_)
        out_target[i] = t
        out_cause[i] = c


@njit(cache=True, nogil=True)
def run_events(times, actors, U, f_target, f_cause, f_sign, f_weight,
               opinion, group, kind, negativity, neg_time, active, last_actor,
               follow, follow_n, tie_partner, tie_sign, tie_next,
               strikes, day_acts, day_index, victims, vstate, P_, Q_,
               out_target, out_sign, out_weight, out_blocked, out_cause, suspended):
    """Process events in order; stop early right after an act that suspends its actor.

    ``f_*`` arrays force a decision (target >= 0, sign != 0, weight not NaN); otherwise
    the mechanistic rule decides. Returns the number of events processed; ``suspended``
    receives the id of an agent suspended by the last processed event (or -1).
    """
    n = opinion.shape[0]
    lo = P_[P.LO]
    hi = P_[P.HI]
    span = hi - lo
    tau = P_[P.NEG_DECAY]
    suspended[0] = -1
    for i in range(times.shape[0]):
        now = times[i]
        a = actors[i]
        u = U[i]
        # 1. target
        if f_target[i] >= 0:
            t = f_target[i]
            cause = f_cause[i]
        else:
            t, cause = _choose(i, a, n, U, opinion, group, kind, last_actor, follow, follow_n,
                               victims, vstate, P_, Q_)
        d = abs(opinion[a] - opinion[t])
        neg_a = _decayed(negativity, neg_time, a, now, tau)
        # 2. sign
        if f_sign[i] != 0:
            s = f_sign[i]
        elif kind[a] == COUNTER:
            s = 1
        elif kind[a] == TROLL and group[t] != group[a]:
            s = -1 if u[U_SIGN] < P_[P.TROLL_NEG] else 1
        elif P_[P.TEMPERATURE] <= 0.0:
            s = -1 if d >= P_[P.CONFIDENCE] else 1
        else:
            z = (d - P_[P.CONFIDENCE]) / P_[P.TEMPERATURE] + P_[P.BASE_NEG] + P_[P.CONTAGION] * neg_a
            if P_[P.BALANCE] > 0.0:
                z -= P_[P.BALANCE] * _balance_vote(a, t, tie_partner, tie_sign)
            s = -1 if u[U_SIGN] < 1.0 / (1.0 + math.exp(-z)) else 1
        # 3. weight
        if not math.isnan(f_weight[i]):
            w = f_weight[i]
        elif s > 0:
            w = 0.5 * (1.0 - d / span) + 0.5 * u[U_WEIGHT]
        elif kind[a] == TROLL:
            w = 0.6 + 0.4 * u[U_WEIGHT]
        else:
            w = 0.3 + 0.4 * min(neg_a, 1.0) + 0.3 * u[U_WEIGHT]
        w = min(max(w, 0.05), 1.0)
        # 4. delivery (interventions act here)
        blocked = B_NONE
        if not active[t]:
            blocked = B_UNAVAILABLE
        cap = Q_[Q.RATE_CAP + kind[a]]
        if cap > 0.0:
            day = int(math.floor(now))
            if day_index[a] != day:
                day_index[a] = day
                day_acts[a] = 0
            day_acts[a] += 1
            if blocked == B_NONE and day_acts[a] > cap:
                blocked = B_RATE
        if blocked == B_NONE and s < 0 and u[U_FRICTION] < Q_[Q.FRICTION]:
            blocked = B_FRICTION
        stop = False
        if blocked == B_NONE and Q_[Q.MOD_ON] > 0.0:
            if (s < 0 and u[U_MOD] < Q_[Q.MOD_RECALL]) or (s > 0 and u[U_MOD] < Q_[Q.MOD_FPR]):
                blocked = B_MODERATION
                strikes[a] += 1
                if Q_[Q.MOD_STRIKES] > 0.0 and strikes[a] >= Q_[Q.MOD_STRIKES]:
                    strikes[a] = 0
                    active[a] = False
                    suspended[0] = a
                    stop = True
        out_target[i] = t
        out_sign[i] = s
        out_weight[i] = w
        out_blocked[i] = blocked
        out_cause[i] = cause
        # 5. state updates after a delivered act
        if blocked == B_NONE:
            step = w if P_[P.WEIGHT_SCALED] > 0.0 else 1.0
            diff = opinion[t] - opinion[a]
            if s > 0:
                move = P_[P.ATTRACTION] * step * diff
            else:
                move = -P_[P.REPULSION] * step * diff
            if kind[a] != TROLL and kind[a] != COUNTER:
                opinion[a] = min(max(opinion[a] + move, lo), hi)
            if kind[t] != TROLL and kind[t] != COUNTER:
                opinion[t] = min(max(opinion[t] - move, lo), hi)
            neg_t = _decayed(negativity, neg_time, t, now, tau)
            if s < 0:
                neg_t = neg_t + P_[P.NEG_GAIN] * w * (1.0 - neg_t)
                victims[vstate[0] % victims.shape[0]] = t
                vstate[0] = (vstate[0] + 1) % victims.shape[0]
                vstate[1] += 1
            else:
                neg_t = neg_t * (1.0 - P_[P.NEG_RELIEF] * w)
            negativity[t] = neg_t
            neg_time[t] = now
            last_actor[t] = a
            _remember(a, t, s, tie_partner, tie_sign, tie_next)
            _remember(t, a, s, tie_partner, tie_sign, tie_next)
            # follow / unfollow
            pos = -1
            for x in range(follow_n[a]):
                if follow[a, x] == t:
                    pos = x
                    break
            if s > 0 and pos < 0 and u[U_FOLLOW] < P_[P.FOLLOW] and follow_n[a] < follow.shape[1]:
                follow[a, follow_n[a]] = t
                follow_n[a] += 1
            elif s < 0 and pos >= 0 and u[U_FOLLOW] < P_[P.UNFOLLOW]:
                follow[a, pos] = follow[a, follow_n[a] - 1]
                follow_n[a] -= 1
        if stop:
            return i + 1
    return times.shape[0]


def empty_forcing(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Forcing arrays that force nothing (the mechanistic rule decides everything)."""
    return (
        np.full(k, -1, dtype=np.int64),
        np.zeros(k, dtype=np.int8),
        np.zeros(k, dtype=np.int8),
        np.full(k, np.nan),
    )
