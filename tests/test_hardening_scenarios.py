"""Every scenario `validate` accepts runs, and every other one is refused in one paragraph.

The values of issue 9 that used to crash or never end are refused by name; a
property-based fuzz test (Hypothesis over the scenario schema) checks the rule on
generated files, each either refused with exit 2 and one line, or simulated to the end.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli import app
from sim.config import (
    MAX_MODEL_CANDIDATES,
    DynamicsConfig,
    NetworkConfig,
    PopulationConfig,
    RecordingConfig,
    SimConfig,
)
from sim.engine.interventions import REGISTRY
from sim.engine.kernel import NU, U_TRIES
from sim.errors import SignsimError
from sim.limits import check_run_resources, estimate_memory, machine_memory
from sim.scenario import DEFAULT_MAX, parse_scenario

runner = CliRunner()
SECTIONS = {"population": PopulationConfig, "network": NetworkConfig,
            "dynamics": DynamicsConfig, "recording": RecordingConfig}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def refused(res, fragment: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert fragment in res.output, res.output


@pytest.mark.parametrize("toml,fragment", [
    ("horizon = inf\n", "horizon: inf must be a finite number"),
    ("horizon = nan\n", "horizon: nan must be a finite number"),
    ("horizon = 1e300\n", "must be a finite number of days greater than 0 and at most"),
    ("[population]\nn_agents = 1000000000000\n", "n_agents: 1000000000000 is above the maximum"),
    ("[population]\nn_agents = 1000000000\n", "n_agents: 1000000000 is above the maximum"),
    ("[recording]\nbatch_events = 1000000000000\n", "batch_events: 1000000000000 is above"),
    ("[network]\nmean_degree = 1e18\n", "mean_degree: 1e+18 is above the maximum"),
    ("[population]\nmean_rate = 1e300\n", "mean_rate: 1e+300 is above the maximum"),
    ("[recording]\nmetric_cadence = 1e-12\n", "metric_cadence = 1e-12 gives 1e+13 ticks"),
    ("[population]\ntroll_rate_factor = inf\n", "troll_rate_factor: inf must be a finite"),
    ("[population]\nkinds = {citizen = nan, troll = 1.0}\n", "kinds.citizen: nan must be a finite"),
    ("[dynamics]\nmodel_candidates = 16\n", "model_candidates: 16 is above the maximum 9"),
    ("[[arms]]\nname = \"baseline\"\n[[arms.interventions]]\ntype = \"friction\"\nstart = nan\n",
     "arms[0].interventions[0].start: nan must be a finite number"),
    ("[[arms]]\nname = \"baseline\"\n[[arms.interventions]]\ntype = \"counter_speech\"\n"
     "rate_factor = 1e300\n", "rate_factor: 1e+300 is above the maximum 1000000"),
    ("horizon = 1000000.0\n[population]\nn_agents = 100000\n",
     "would draw about 1.16e+11 events"),
    ('name = "../../../x"\n', "name: '../../../x' is not a valid name"),
    ('name = "/tmp/x"\n', "name: '/tmp/x' is not a valid name"),
    ('[[arms]]\nname = "a/b"\n', "arms[0].name: 'a/b' is not a valid name"),
    ("seeds = 1000000000\n", "seeds: 1000000000 must be from 1 to 10000"),
    ("seeds = 1e9\n", "seeds: 1000000000.0 must be a list"),
    ("seeds = [0, 4294967296]\n", "seeds[1]: 4294967296 must be from 0 to 2147483647"),
    ("x = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n", "nested too deeply"),
    ("[population]\nkinds = " + "[" * 2000 + "]" * 2000 + "\n", "nested too deeply"),
])
def test_values_that_crashed_or_never_ended_are_refused_before_anything_is_written(
        tmp_path, toml, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    refused(invoke("validate", str(path)), fragment)
    db = tmp_path / "never.db"
    refused(invoke("simulate", str(path), "--db", str(db), "--no-progress"), fragment)
    assert not db.exists()


@pytest.mark.parametrize("args,fragment", [
    (("--seed", "18446744073709551615"), "--seed: 18446744073709551615 is not a seed"),
    (("--seed", "-1"), "--seed: -1 is not a seed"),
    (("--horizon", "inf"), "--horizon: inf must be a finite number of days"),
    (("--horizon", "nan"), "--horizon: nan must be a finite number of days"),
    (("--agents", "1000000000"), "population.n_agents: 1000000000 is above the maximum"),
])
def test_bad_simulate_flags_are_refused_before_anything_is_written(tmp_path, args, fragment):
    db = tmp_path / "never.db"
    refused(invoke("simulate", "--db", str(db), "--no-progress", *args), fragment)
    assert not db.exists()


def test_a_run_larger_than_the_machine_is_refused_with_its_estimate(tmp_path):
    cfg = SimConfig()
    cfg.population.n_agents, cfg.network.mean_degree = 50_000_000, 10_000.0
    assert estimate_memory(cfg) > machine_memory() > 0  # 50M agents x 10k follows each
    path = tmp_path / "huge.toml"
    path.write_text("[population]\nn_agents = 50000000\n[network]\nmean_degree = 10000.0\n")
    res = invoke("validate", str(path))
    refused(res, "the run needs an estimated ")
    assert f"{estimate_memory(cfg) / 2**30:,.1f} GiB" in res.output
    small = SimConfig()
    check_run_resources(small, "ok", memory=int(estimate_memory(small)) + 1)
    with pytest.raises(SignsimError, match="needs an estimated"):
        check_run_resources(small, "ok", memory=int(estimate_memory(small)) - 1)


def test_model_candidates_range_matches_what_the_learned_dynamics_draws():
    assert MAX_MODEL_CANDIDATES == NU - U_TRIES + 1
    parse_scenario(f"[dynamics]\nmodel_candidates = {MAX_MODEL_CANDIDATES}\n")


def test_every_numeric_setting_has_a_finite_range():
    classes = [*SECTIONS.values(), *(cls.Params for cls in REGISTRY.values())]
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, float):
                low = f.metadata.get("min", f.metadata.get("min_exclusive"))
                high = f.metadata.get("max", DEFAULT_MAX)
                assert low is not None and math.isfinite(low) and math.isfinite(high), f.name


def test_names_that_are_identifiers_are_kept(tmp_path):
    assert parse_scenario('name = "trolls_v2.1-b"\n').name == "trolls_v2.1-b"
    assert parse_scenario("", "some dir/my run.toml").name == "my_run"
    assert parse_scenario("", "...toml").name == "scenario"


def test_report_refuses_a_scenario_name_that_leaves_the_folder(tmp_path):
    db = tmp_path / "r.db"
    assert invoke("simulate", "--db", str(db), "--agents", "30", "--horizon", "1",
                  "--no-progress").exit_code == 0
    refused(invoke("report", "--scenario", "../../escape", "--db", str(db)),
            "--scenario: '../../escape' is not a valid name")
    assert not (tmp_path.parent / "escape").exists()


# -- fuzz ----------------------------------------------------------------------------------
#: Values that are never valid for a number, or only as a refusal.
HOSTILE = st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 10**30, -(10**30),
                           "12", True, [1.0], {"a": 1}])

#: Ranges that keep an accepted run tiny (the fuzz must finish in well under a minute).
TINY = {"n_agents": (2, 80), "groups": (1, 6), "mean_rate": (0.01, 3.0),
        "influencer_rate_factor": (0.0, 8.0), "troll_rate_factor": (0.0, 8.0),
        "mean_degree": (0.0, 12.0), "ba_m": (1, 6), "ws_k": (2, 12), "follow_slack": (0, 10),
        "flush_rows": (1, 5000), "batch_events": (1, 5000), "snapshot_sample": (0, 50),
        "metric_cadence": (0.0, 2.0), "snapshot_cadence": (0.0, 2.0), "ties": (1, 32),
        "model_candidates": (1, 12), "rate_sigma": (0.0, 3.0), "metric_window": (0.01, 3.0)}


def number(field: dataclasses.Field, tp: type) -> st.SearchStrategy[Any]:
    meta = field.metadata
    low = meta.get("min", meta.get("min_exclusive", -10.0))
    high = meta.get("max", 10.0)
    low, high = TINY.get(field.name, (low, min(high, max(low, 0.0) + 10.0)))
    if tp is int:
        inside: st.SearchStrategy[Any] = st.integers(math.ceil(low), int(high))
    else:
        inside = st.floats(low, high, allow_nan=False, exclude_min="min_exclusive" in meta)
    outside = st.sampled_from([low - 1, high + 1]).map(tp)
    return rarely(outside, inside)


def rarely(odd: st.SearchStrategy[Any], usual: st.SearchStrategy[Any],
           hostile: bool = True) -> st.SearchStrategy[Any]:
    """Mostly ``usual``; one draw in 20 ``odd``, one in 20 a hostile value."""
    return st.integers(0, 19).flatmap(
        lambda i: (HOSTILE if hostile else odd) if i == 0 else odd if i == 1 else usual)


def value(field: dataclasses.Field, tp: Any) -> st.SearchStrategy[Any]:
    if tp in (int, float):
        return number(field, tp)
    if tp is bool:
        return rarely(HOSTILE, st.booleans())
    if get_origin(tp) is Literal:
        return rarely(st.sampled_from(["lattice", "", "SBM"]),
                      st.sampled_from([a for a in get_args(tp) if a != "edge_list"]))
    if field.name == "kinds":
        return rarely(st.just({"citizen": math.nan, "troll": 1.0}), st.dictionaries(
            st.sampled_from(["citizen", "influencer", "troll", "counter_speaker"]),
            st.floats(0.0, 1.0), min_size=1).map(_normalised))
    if field.name == "opinion_range":
        return rarely(st.just([1.0, 1.0]), st.lists(st.floats(-5, 5, allow_nan=False),
                                                    min_size=2, max_size=2))
    return rarely(st.just("nowhere.pt"), st.just("")) if tp is str else HOSTILE


def _normalised(kinds: dict[str, float]) -> dict[str, float]:
    total = sum(kinds.values())
    return {k: v / total for k, v in kinds.items()} if total > 0 else {"citizen": 1.0}


def table(cls: type, skip: tuple[str, ...] = ()) -> st.SearchStrategy[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name not in skip]
    return st.fixed_dictionaries({}, optional={f.name: value(f, hints[f.name]) for f in fields})


def intervention() -> st.SearchStrategy[dict[str, Any]]:
    def one(kind: str) -> st.SearchStrategy[dict[str, Any]]:
        params = table(REGISTRY[kind].Params)
        when = st.fixed_dictionaries({}, optional={"start": rarely(HOSTILE, st.floats(0, 1.5)),
                                                   "end": st.floats(0, 3)})
        return st.tuples(params, when).map(lambda pw: {"type": kind, **pw[0], **pw[1]})

    return st.one_of(*(one(kind) for kind in sorted(REGISTRY)))


SCENARIOS = st.fixed_dictionaries(
    {"name": rarely(st.sampled_from(["../fuzz", "fuzz/x", ".hidden"]), st.just("fuzz"), False),
     "horizon": rarely(st.just(0.0), st.floats(0.05, 1.5)),
     "seeds": rarely(st.sampled_from([10**9, [0, 2**40]]), st.integers(1, 2), False)},
    optional={
        **{name: table(cls, skip=("path", "model") if name != "dynamics" else ("model",))
           for name, cls in SECTIONS.items()},
        "arms": st.lists(st.fixed_dictionaries(
            {"name": st.sampled_from(["baseline", "b", "c"])},
            optional={"interventions": st.lists(intervention(), max_size=2),
                      "population": table(PopulationConfig, skip=("kinds",))}),
            min_size=1, max_size=2),
    },
)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int | str):
        return repr(v).replace("'", '"') if isinstance(v, str) else str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(data: dict[str, Any]) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in data.items() if k not in (*SECTIONS, "arms")]
    for section in SECTIONS:
        if section in data:
            lines += [f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in data[section].items()]
    if "arms" in data:
        names = {arm["name"] for arm in data["arms"]}
        if "baseline" not in names:
            lines.insert(0, f'baseline = "{data["arms"][0]["name"]}"')
        for arm in data["arms"]:
            lines += ["[[arms]]"] + [f"{k} = {toml_value(v)}" for k, v in arm.items()]
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(SCENARIOS)
def test_fuzz_every_scenario_is_refused_in_one_paragraph_or_runs(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "fuzz.toml"
    path.write_text(to_toml(data))
    db = folder / "fuzz.db"
    res = invoke("validate", str(path))
    assert res.exit_code in (0, 2), res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    if res.exit_code == 2:
        return
    scenario = parse_scenario(path.read_text(), str(path), Path(folder))
    for arm in scenario.arms:
        res = invoke("simulate", str(path), "--arm", arm.name, "--db", str(db), "--no-progress",
                     "--seed", str(scenario.seeds[0]))
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
        assert res.exit_code in (0, 2) and "Traceback" not in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1, res.output
        if res.exit_code == 0:
            assert res.output.startswith("run "), res.output
        else:  # only a missing checkpoint or edge list is left for run time
            assert "does not exist" in res.output, res.output
