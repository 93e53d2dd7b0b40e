r"""Decision rules: the ``Dynamics`` protocol and the mechanistic rules behind it.

The engine hands a dynamics object the times and actors of a batch of acts (drawn from
the superposed Poisson process) plus per-event uniforms, and gets back an
:class:`EventBatch`. The mechanistic rules, applied to one act of agent ``a`` at time
``t`` (all in :mod:`sim.engine.kernel`):

* **Target.** Counter-speakers answer a recent victim of a negative act. Otherwise, with
  probability ``p_reply`` the agent replies to whoever last acted on it; trolls look for
  an out-group agent with probability ``troll_outgroup``; a bridging recommendation
  (intervention) proposes the out-group agent with the closest opinion among a few
  candidates; with probability ``p_exposure`` (or when it follows nobody) a random agent;
  else a random followee.
* **Sign.** Trolls attacking the out-group are negative with probability
  ``troll_negativity``; counter-speakers are positive. Others are negative with
  probability :math:`\sigma(z)`,
  :math:`z = (d-\varepsilon)/T + b + c\,n_a - \beta\,v_{bal}`, with ``d`` the opinion
  distance, :math:`\varepsilon` the confidence bound, ``T`` the sign temperature,
  :math:`n_a` the actor's decayed negativity (contagion), and :math:`v_{bal}` the mean of
  :math:`s_{ak}s_{kt}` over common signed ties (structural balance). With ``T = 0`` the
  sign is deterministic: positive exactly when :math:`d < \varepsilon` (bounded confidence).
* **Weight** in [0.05, 1]: positive acts weigh more between close opinions; negative acts
  weigh more when the actor is negative; trolls hit hard.
* **Delivery.** Interventions may block the act (moderation, friction, rate limit); an
  act on a banned or suspended agent is not delivered.
* **Updates** after a delivered act: attraction :math:`o_a \mathrel{+}= \mu w (o_t-o_a)`
  and the mirror for the target after a positive act, repulsion with step ``repulsion``
  after a negative one (clipped to the interval; trolls and counter-speakers keep their
  opinion); the target's negativity rises by ``gain * w * (1 - n)`` after a negative act
  and falls by a factor ``1 - relief * w`` after a positive one, decaying with time
  constant ``negativity_decay`` in between (inertia); both remember the tie's sign; the
  actor may follow the target after a positive act or unfollow after a negative one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from sim.config import DynamicsConfig, PopulationConfig
from sim.contract import EventBatch
from sim.engine.kernel import P, choose_targets, empty_forcing, run_events

if TYPE_CHECKING:
    from sim.engine.model import SocialModel

__all__ = [
    "Dynamics",
    "MechanisticDynamics",
    "apply_events",
    "choose_batch_targets",
    "parameter_vector",
]


@runtime_checkable
class Dynamics(Protocol):
    """How agents decide: the only boundary between the engine and any decision model.

    A learned model (``models.forecast.LearnedDynamics``) implements the same method, so
    the engine never imports torch.
    """

    name: str

    def step(self, model: SocialModel, times: np.ndarray, actors: np.ndarray,
             uniforms: np.ndarray) -> EventBatch:
        """Decide and apply the acts of ``actors`` at ``times``; may stop early.

        Args:
            model: The running model (its state arrays are updated in place).
            times: Event times, ascending.
            actors: Acting agent of each event.
            uniforms: ``(len(times), sim.engine.kernel.NU)`` uniforms from the model's generator.

        Returns:
            The processed prefix of the batch.
        """
        ...


def parameter_vector(dyn: DynamicsConfig, pop: PopulationConfig) -> np.ndarray:
    """Pack dynamics settings into the kernel's parameter vector."""
    vec = np.zeros(P.SIZE)
    vec[P.CONFIDENCE] = dyn.confidence
    vec[P.ATTRACTION] = dyn.attraction
    vec[P.REPULSION] = dyn.repulsion
    vec[P.P_REPLY] = dyn.p_reply
    vec[P.P_EXPOSURE] = dyn.p_exposure
    vec[P.TEMPERATURE] = dyn.sign_temperature
    vec[P.BALANCE] = dyn.balance
    vec[P.CONTAGION] = dyn.contagion
    vec[P.BASE_NEG] = dyn.base_negativity
    vec[P.NEG_GAIN] = dyn.negativity_gain
    vec[P.NEG_RELIEF] = dyn.negativity_relief
    vec[P.NEG_DECAY] = dyn.negativity_decay
    vec[P.FOLLOW] = dyn.follow_prob
    vec[P.UNFOLLOW] = dyn.unfollow_prob
    vec[P.TROLL_NEG] = dyn.troll_negativity
    vec[P.TROLL_OUT] = dyn.troll_outgroup
    vec[P.LO], vec[P.HI] = pop.opinion_range
    vec[P.WEIGHT_SCALED] = 1.0 if dyn.weight_scaled_updates else 0.0
    return vec


def choose_batch_targets(model: SocialModel, actors: np.ndarray, uniforms: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Targets and causes for a batch, from the state at the batch's start."""
    pop, net = model.population, model.net
    k = actors.shape[0]
    targets = np.empty(k, dtype=np.int64)
    causes = np.empty(k, dtype=np.int8)
    choose_targets(actors, uniforms, pop.opinion, pop.group, pop.kind, pop.last_actor,
                   net.follow, net.follow_n, net.victims, net.vstate, model.params,
                   model.policy, targets, causes)
    return targets, causes


def apply_events(model: SocialModel, times: np.ndarray, actors: np.ndarray,
                 uniforms: np.ndarray,
                 forcing: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
                 ) -> EventBatch:
    """Run the kernel over a batch: decide what is not forced, deliver, update state.

    Args:
        model: The running model.
        times: Event times.
        actors: Acting agents.
        uniforms: Per-event uniforms.
        forcing: ``(target, cause, sign, weight)`` arrays; -1 / 0 / NaN entries are
            decided by the mechanistic rule.

    Returns:
        The processed events (a prefix when an act suspended its actor).
    """
    k = times.shape[0]
    f_target, f_cause, f_sign, f_weight = forcing if forcing is not None else empty_forcing(k)
    pop, net = model.population, model.net
    out_target = np.empty(k, dtype=np.int64)
    out_sign = np.empty(k, dtype=np.int8)
    out_weight = np.empty(k, dtype=np.float64)
    out_blocked = np.empty(k, dtype=np.int8)
    out_cause = np.empty(k, dtype=np.int8)
    suspended = np.full(1, -1, dtype=np.int64)
    done = run_events(
        times, actors, uniforms, f_target, f_cause, f_sign, f_weight,
        pop.opinion, pop.group, pop.kind, pop.negativity, pop.neg_time, pop.active,
        pop.last_actor, net.follow, net.follow_n, net.tie_partner, net.tie_sign,
        net.tie_next, net.strikes, net.day_acts, net.day_index, net.victims, net.vstate,
        model.params, model.policy,
        out_target, out_sign, out_weight, out_blocked, out_cause, suspended,
    )
    return EventBatch(
        t=times[:done], src=actors[:done], dst=out_target[:done], sign=out_sign[:done],
        weight=out_weight[:done], blocked=out_blocked[:done], cause=out_cause[:done],
        suspended=int(suspended[0]),
    )


class MechanisticDynamics:
    """The rule-based dynamics described in this module's docstring."""

    name = "mechanistic"

    def step(self, model: SocialModel, times: np.ndarray, actors: np.ndarray,
             uniforms: np.ndarray) -> EventBatch:
        """Apply the mechanistic rules to a batch (see :class:`Dynamics`)."""
        return apply_events(model, times, actors, uniforms)
