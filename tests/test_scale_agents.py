"""Mesa semantics of the model's agents, made on demand over the population arrays.

Every ``AgentSet`` operation on ``model.agents`` is compared with Mesa's own
``AgentSet`` holding the very same agent objects (and a ``random.Random`` in the same
state), so what users of Mesa rely on holds: length, order, selection, shuffling,
sorting, aggregation, grouping, membership, removal, registration of other agents.
"""

from __future__ import annotations

import random
from typing import Any

import mesa
import numpy as np
import pytest
from mesa.agent import AgentSet

from sim.config import SimConfig
from sim.contract import KIND_CODES
from sim.engine.agents import Citizen, CounterSpeaker, Influencer, SignedAgent, Troll
from sim.engine.agentset import PopulationAgentSet
from sim.engine.model import SocialModel
from sim.scenario import parse_scenario

N = 400


def _model(n: int = N, seed: int = 3) -> SocialModel:
    cfg = SimConfig(horizon=2.0)
    cfg.population.n_agents = n
    cfg.population.kinds = {"citizen": 0.8, "influencer": 0.1, "troll": 0.1}
    cfg.recording.metric_cadence = 0.0
    return SocialModel(cfg, seed)


def _pair(model: SocialModel, seed: int = 11) -> tuple[PopulationAgentSet, AgentSet]:
    """Ours (a copy of model.agents) and Mesa's set of the same agents, same generator state."""
    ours = model.agents.select()
    ours.random = random.Random(seed)
    return ours, AgentSet(list(model.agents), random=random.Random(seed))


def _ids(agents) -> list[int]:
    return [a.unique_id for a in agents]


def test_building_makes_no_agent_objects_and_agents_mirror_the_arrays():
    model = _model()
    pop = model.population
    assert model.agent_list._cache == {}  # nothing made up front
    assert len(model.agents) == N == len(model.agent_list)
    agents = list(model.agents)
    assert [a.index for a in agents] == list(range(N))  # people's order
    assert _ids(agents) == list(range(1, N + 1))  # Mesa numbers agents from 1
    assert [type(a) for a in agents] == [(Citizen, Influencer, Troll, CounterSpeaker)[k]
                                        for k in pop.kind]
    assert [a.kind for a in agents] == [KIND_CODES[k] for k in pop.kind]
    a = model.agents[7]
    assert a is model.agents[7] is model.agent_list[7] is agents[7]  # one object per person
    a.note = "kept"  # an attribute a user sets stays on the agent
    assert model.agents[7].note == "kept"
    a.opinion = 0.25
    assert pop.opinion[7] == 0.25
    pop.opinion[7] = -0.5
    pop.active[7] = False
    assert (a.opinion, a.active, a.group, a.rate) == (-0.5, False, int(pop.group[7]),
                                                      float(pop.rate[7]))
    assert model.agents[-1].index == N - 1 and model.agents[2:5] == agents[2:5]
    with pytest.raises(IndexError):
        model.agents[N]
    assert a in model.agents and Citizen(model, 7) not in model.agents  # identity, not index


def test_agents_by_type_are_mesa_sets_of_each_kind():
    model = _model()
    kinds = model.population.kind
    first = {KIND_CODES[k]: int(np.argmax(kinds == k)) for k in np.unique(kinds)}
    assert model.agent_types == sorted({type(a) for a in model.agents}, key=lambda c: first[c.kind])
    for cls, agents in model.agents_by_type.items():
        assert isinstance(agents, AgentSet)
        expected = [a for a in model.agents if type(a) is cls]
        assert list(agents) == expected and len(agents) == len(expected)
        assert all(a in agents for a in expected)
        assert not any(a in agents for a in model.agents if type(a) is not cls)


def test_select_matches_mesa():
    model = _model()
    ours, ref = _pair(model)
    cases: list[dict[str, Any]] = [
        {"filter_func": lambda a: a.opinion > 0},
        {"agent_type": Troll},
        {"agent_type": SignedAgent, "at_most": 17},
        {"filter_func": lambda a: a.group == 1, "at_most": 0.25},
        {"at_most": 2.5},
        {"at_most": 0},
        {"filter_func": lambda a: a.rate > 1.0, "agent_type": Citizen, "at_most": 5},
        {},
    ]
    for kwargs in cases:
        assert _ids(ours.select(**kwargs)) == _ids(ref.select(**kwargs)), kwargs
    kept = ours.select(lambda a: a.index % 3 == 0, inplace=True)
    assert kept is ours and _ids(ours) == _ids(ref.select(lambda a: a.index % 3 == 0))


def test_shuffle_sort_and_do_match_mesa():
    model = _model()
    ours, ref = _pair(model)
    assert _ids(ours.shuffle()) == _ids(ref.shuffle())  # the same permutation
    assert _ids(ours.shuffle(inplace=True)) == _ids(ref.shuffle(inplace=True))
    assert _ids(ours) == _ids(ref)
    for key, ascending in (("opinion", True), ("opinion", False), ("group", False),
                           ("active", True), ("kind", True), ("unique_id", False),
                           (lambda a: round(a.rate, 1), True)):
        assert _ids(ours.sort(key, ascending)) == _ids(ref.sort(key, ascending)), key
    seen_ours: list[int] = []
    seen_ref: list[int] = []
    ours.shuffle_do(lambda a, out: out.append(a.unique_id), seen_ours)
    ref.shuffle_do(lambda a, out: out.append(a.unique_id), seen_ref)
    assert seen_ours == seen_ref
    assert ours.map("negativity_at", 1.0, 3.0) == ref.map("negativity_at", 1.0, 3.0)
    assert ours.do(lambda a: setattr(a, "tag", a.index * 2)) is ours
    assert [a.tag for a in ref] == [2 * a.index for a in ref]


def test_get_agg_set_and_groupby_match_mesa():
    model = _model()
    ours, ref = _pair(model)
    for names in ("opinion", "group", "kind", "active", "unique_id", "index", "rate",
                  ["opinion", "kind"], ["group", "index"]):
        assert ours.get(names) == ref.get(names), names
    assert ours.get("missing", "default", 5) == ref.get("missing", "default", 5)
    with pytest.raises(AttributeError):
        ours.get("missing")
    with pytest.raises(ValueError, match="handle_missing"):
        ours.get("opinion", "ignore")
    funcs: list[Any] = [np.mean, sum, max, len, np.median, [min, max, np.std]]
    for func in funcs:
        assert ours.agg("opinion", func) == ref.agg("opinion", func), func
    assert ours.agg("kind", lambda v: v.count("troll")) == ref.agg("kind", lambda v: v.count("troll"))
    for by in ("kind", "group", "active", lambda a: a.opinion > 0.2):
        got, want = ours.groupby(by), ref.groupby(by)
        assert list(got.groups) == list(want.groups)
        assert {k: _ids(v) for k, v in got} == {k: _ids(v) for k, v in want}
        assert got.count() == want.count()
        assert got.agg("rate", sum) == want.agg("rate", sum)
        assert got.map("agg", "opinion", np.mean) == want.map("agg", "opinion", np.mean)
    listed = ours.groupby("group", result_type="list").groups
    want_listed = ref.groupby("group").groups
    assert {k: _ids(v) for k, v in listed.items()} == {k: _ids(v) for k, v in want_listed.items()}
    ours.select(agent_type=Troll).set("opinion", 0.75)
    assert np.all(model.population.opinion[model.population.kind == 2] == 0.75)
    ours.select(at_most=3).set("label", "x")
    assert [getattr(a, "label", None) for a in ref][:4] == ["x", "x", "x", None]


def test_changing_a_set_matches_mesa():
    model = _model()
    ours, ref = _pair(model)
    a, b = model.agents[3], model.agents[9]
    for s in (ours, ref):
        s.discard(a)
        s.remove(b)
        s.add(a)  # back, at the end
        s.discard(b)  # absent: no error
    assert _ids(ours) == _ids(ref)
    with pytest.raises(KeyError):
        ours.remove(b)
    assert ours.index(a) == len(ours) - 1 == ref.index(a)
    assert list(reversed(ours)) == list(reversed(ref))
    assert ours.count(a) == 1 and ours.count(b) == 0
    assert (ours & ref.select(agent_type=Troll)) == (ref & ref.select(agent_type=Troll))
    with pytest.raises(ValueError, match="not an agent of this model"):
        ours.add(_model(seed=4).agents[0])


def test_removing_and_registering_agents_as_in_mesa():
    model = _model()
    trolls = model.agents_by_type[Troll]
    n_trolls = len(trolls)
    victim = trolls[0]
    picked = model.agents.select(lambda a: a.index < 50)
    victim.remove()
    assert len(model.agents) == N - 1 and victim not in model.agents
    assert victim not in picked and len(trolls) == n_trolls - 1
    assert victim.index not in [a.index for a in model.agents]
    victim.remove()  # a second remove is silent, as in Mesa

    class Platform(mesa.Agent):
        pass

    platform = Platform(model)  # another Mesa agent registered with the model
    assert platform.unique_id == N + 1 and list(model.agents)[-1] is platform
    assert Platform in model.agent_types and list(model.agents_by_type[Platform]) == [platform]
    assert len(model.agents) == N and platform in model.agents
    assert model.agents.select(agent_type=Platform)[0] is platform
    assert model.agents.select(agent_type=SignedAgent, at_most=1)[0].index == 0
    assert model.agents.get("unique_id")[-1] == N + 1
    platform.remove()
    assert platform not in model.agents and len(model.agents) == N - 1
    model.remove_all_agents()
    assert len(model.agents) == 0 and list(model.agents) == []
    assert model.population.n == N  # the people are still simulated


def test_counter_speakers_change_class_and_keep_their_id():
    text = """
    horizon = 4.0
    [population]
    n_agents = 300
    [recording]
    metric_cadence = 0.0
    [[arms]]
    name = "baseline"
    interventions = [{type = "counter_speech", start = 1.0, end = 3.0, agents = 12}]
    """
    arm = parse_scenario(text).arms[0]
    model = SocialModel(arm.config, 5, interventions=arm.interventions)
    before = list(model.agents)
    model.run(until=2.0)
    speakers = model.agents_by_type[CounterSpeaker]
    assert len(speakers) == 12 == int((model.population.kind == 3).sum())
    for agent in speakers:
        old = before[agent.index]
        assert type(old) is Citizen and old not in model.agents and agent in model.agents
        assert agent.unique_id == old.unique_id == agent.index + 1
    assert len(model.agents) == 300
    recruited = [a.index for a in speakers]
    model.run()
    assert len(model.agents_by_type[CounterSpeaker]) == 0  # kept, empty, as Mesa keeps types
    assert CounterSpeaker in model.agent_types
    assert all(type(model.agents[i]) is Citizen for i in recruited)
