"""Shipped scenarios: each runs at a small size and matches its golden summary; bad files
are rejected with a precise message; the scenarios README documents every key.

The goldens are regression guards written by this code; what the results should be is
checked independently in ``test_scenario_invariants.py``. Regenerate the golden summaries
(after an intended change of the simulation results, never from inside a test run)::

    python -m tests.test_scenarios --update
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest

from sim.config import DynamicsConfig, NetworkConfig, PopulationConfig, RecordingConfig
from sim.engine.interventions import REGISTRY
from sim.errors import SignsimError
from sim.scenario import Scenario, load_scenario, parse_scenario
from sim.store.database import Store, open_store
from sim.sweep.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
GOLDEN = Path(__file__).resolve().parent / "golden"
NAMES = ("moderation", "bridging", "trolls")

#: The small size every shipped scenario is run at in the tests.
SMALL = {"n_agents": 200, "horizon": 4.0, "seeds": [0, 1]}
#: Final metric values kept in the golden summaries.
GOLDEN_METRICS = ("negative_share", "toxicity_mean", "mean_negativity", "opinion_variance",
                  "group_mean_distance", "activity", "suspended")


def shrink(scenario: Scenario, n_agents: int = SMALL["n_agents"],
           horizon: float = SMALL["horizon"], seeds: list[int] = SMALL["seeds"]) -> Scenario:
    """A small copy of a scenario: fewer agents, days and seeds.

    Intervention times scale with the horizon, and the number of agents an intervention
    picks (counter-speakers, top-k bans) with the population, so every arm still acts.
    """
    sc = copy.deepcopy(scenario)
    sc.seeds = list(seeds)
    for arm in sc.arms:
        scale_t = horizon / arm.config.horizon
        scale_n = n_agents / arm.config.population.n_agents
        arm.config.population.n_agents = n_agents
        arm.config.horizon = horizon
        for spec in arm.interventions:
            spec.start *= scale_t
            spec.end = None if spec.end is None else spec.end * scale_t
            for key in ("agents", "top_k"):
                value = getattr(spec.params, key, 0)
                if value:
                    setattr(spec.params, key, max(1, round(value * scale_n)))
    return sc


def summarize(store: Store, scenario: str) -> dict[str, dict[str, dict[str, float | int]]]:
    """Per arm and seed: interaction counts and final metric values (6 decimals)."""
    counts = store.frame(
        "SELECT r.arm AS arm, r.seed AS seed, r.id AS id, COUNT(i.seq) AS n, "
        "SUM(CASE WHEN i.sign < 0 THEN 1 ELSE 0 END) AS neg, "
        "SUM(CASE WHEN i.delivered THEN 0 ELSE 1 END) AS blocked, "
        "SUM(i.weight) AS w FROM runs r JOIN interactions i ON i.run_id = r.id "
        "WHERE r.scenario = :s AND r.status = 'complete' GROUP BY r.id ORDER BY r.id",
        {"s": scenario},
    )
    finals = store.frame(
        "SELECT m.run_id AS id, m.name AS name, m.value AS value FROM metrics m "
        "JOIN (SELECT run_id, name, MAX(t) AS t FROM metrics GROUP BY run_id, name) l "
        "ON l.run_id = m.run_id AND l.name = m.name AND l.t = m.t",
    )
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for row in counts.itertuples():
        entry: dict[str, float | int] = {
            "interactions": int(row.n), "negative": int(row.neg), "blocked": int(row.blocked),
            "weight_sum": round(float(row.w), 6),
        }
        mine = finals[finals["id"] == row.id]
        for name in GOLDEN_METRICS:
            values = mine.loc[mine["name"] == name, "value"]
            entry[f"final_{name}"] = round(float(values.iloc[0]), 6) if len(values) else None
        out.setdefault(str(row.arm), {})[str(row.seed)] = entry
    return out


def run_small(name: str, db: str) -> dict:
    """Run a shipped scenario at the small size; return its golden summary."""
    sc = shrink(load_scenario(SCENARIOS / f"{name}.toml"))
    run_experiment(sc, db, progress=False)
    store = open_store(db)
    try:
        return {"scenario": name, "size": SMALL, "runs": summarize(store, sc.name)}
    finally:
        store.dispose()


def _diff(expected: dict, got: dict) -> list[str]:
    lines = []
    for arm in sorted(set(expected["runs"]) | set(got["runs"])):
        e_arm, g_arm = expected["runs"].get(arm, {}), got["runs"].get(arm, {})
        for seed in sorted(set(e_arm) | set(g_arm)):
            e, g = e_arm.get(seed, {}), g_arm.get(seed, {})
            for key in sorted(set(e) | set(g)):
                if e.get(key) != g.get(key):
                    lines.append(f"{arm}/seed {seed}/{key}: golden {e.get(key)} != {g.get(key)}")
    return lines


@pytest.mark.parametrize("name", NAMES)
def test_scenario_matches_golden(name, tmp_path):
    got = run_small(name, str(tmp_path / f"{name}.db"))
    path = GOLDEN / f"{name}.json"
    arms = [a.name for a in load_scenario(SCENARIOS / f"{name}.toml").arms]
    assert sorted(got["runs"]) == sorted(arms)
    assert all(len(seeds) == len(SMALL["seeds"]) for seeds in got["runs"].values())
    assert path.exists(), f"no golden file {path}; create it with python -m tests.test_scenarios --update"
    expected = json.loads(path.read_text(encoding="utf-8"))
    diff = _diff(expected, got)
    assert not diff, (
        f"scenario '{name}' no longer matches {path.name} ({len(diff)} differences; "
        "regenerate with `python -m tests.test_scenarios --update` if intended):\n"
        + "\n".join(diff[:20])
    )


@pytest.mark.parametrize("name", NAMES)
def test_shipped_scenarios_have_a_question(name):
    sc = load_scenario(SCENARIOS / f"{name}.toml")
    assert sc.name == name
    assert sc.description.strip().endswith("?")
    assert sc.baseline == "baseline" and sc.arms[0].name == "baseline"
    assert len(sc.seeds) >= 8
    assert all(arm.interventions for arm in sc.arms[1:])


# -- rejected files ----------------------------------------------------------------------
BASE = 'name = "x"\nhorizon = 3\n'


@pytest.mark.parametrize(("text", "pattern"), [
    (BASE + "[population]\nn_agent = 10\n",
     r"^bad\.toml: population\.n_agent: unknown key; allowed keys: n_agents, groups, kinds"),
    (BASE + "colour = 1\n", r"^bad\.toml: colour: unknown key; allowed keys: arms, baseline"),
    (BASE + '[[arms]]\nname = "a"\nfoo = 1\n', r"^bad\.toml: arms\[0\]\.foo: unknown key"),
    ('horizon = "ten"\n', r"^bad\.toml: horizon: 'ten' must be a number\.$"),
    (BASE + "[population]\nn_agents = 2.5\n",
     r"^bad\.toml: population\.n_agents: 2\.5 must be a whole number\.$"),
    (BASE + "[dynamics]\nweight_scaled_updates = 1\n",
     r"dynamics\.weight_scaled_updates: 1 must be true or false\."),
    (BASE + "[dynamics]\nattraction = 1.5\n",
     r"dynamics\.attraction: 1\.5 is above the maximum 1\.0\."),
    (BASE + '[[arms]]\nname = "baseline"\ninterventions = [{type = "shadowban"}]\n',
     r"^bad\.toml: arms\[0\]\.interventions\[0\]\.type: unknown intervention 'shadowban'; "
     r"use one of: ban, bridging, counter_speech, friction, moderation, rate_limit\.$"),
    (BASE + '[[arms]]\nname = "baseline"\ninterventions = [{type = "friction", shares = 1}]\n',
     r"arms\[0\]\.interventions\[0\]\.shares: unknown key; allowed keys: share\.$"),
    ('name = "x"\nseeds = [1, 2\nhorizon = 3\n',
     r"^bad\.toml: TOML syntax error: Unclosed array \(at line 3, column 1\)$"),
    ('name = "x"\nhorizon = 3 3\n',
     r"^bad\.toml: TOML syntax error: .* \(at line 2, column 13\)$"),
    ('name = "x\n', r"^bad\.toml: TOML syntax error: .*\(at line 1, column 10\)"),
    (BASE + '[network]\nkind = "grid"\n',
     r"^bad\.toml: network\.kind: 'grid' is not allowed; use one of: sbm, barabasi_albert, "
     r"watts_strogatz, edge_list, none\.$"),
    (BASE + '[population]\nrate_distribution = "zipf"\n',
     r"population\.rate_distribution: 'zipf' is not allowed; use one of: lognormal, pareto, "
     r"constant\."),
    (BASE + '[population]\nkinds = {citizen = 0.5, elf = 0.5}\n',
     r"population\.kinds\.elf: unknown agent kind 'elf'; use one of: citizen, influencer, "
     r"troll, counter_speaker\."),
    (BASE + 'baseline = "control"\n',
     r"baseline: 'control' is not one of the arms: baseline\."),
])
def test_bad_files_are_rejected_with_a_precise_message(tmp_path, text, pattern):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SignsimError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert re.search(pattern, message.replace(str(tmp_path) + os.sep, "")), message


def test_parse_scenario_names_the_source():
    with pytest.raises(SignsimError, match=r"^<scenario>: horizon: -1\.0 must be greater than"):
        parse_scenario("horizon = -1\n")


# -- the README documents every key ------------------------------------------------------
def toml_value(value: object) -> str:
    """A default value as written in TOML (and in the README's tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return f"{value:.1f}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def _default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def documented_sections() -> dict[str, type]:
    sections: dict[str, type] = {
        "[population]": PopulationConfig, "[network]": NetworkConfig,
        "[dynamics]": DynamicsConfig, "[recording]": RecordingConfig,
    }
    for name, cls in REGISTRY.items():
        sections[f"`{name}`"] = cls.Params
    return sections


def test_readme_documents_every_key_with_its_default():
    readme = (SCENARIOS / "README.md").read_text(encoding="utf-8")
    heads = [(m.start(), m.group(1)) for m in re.finditer(r"^#+ (.*)$", readme, re.M)]
    for title, cls in documented_sections().items():
        starts = [pos for pos, head in heads if title in head]
        assert starts, f"README has no section titled with {title}"
        start = starts[0]
        end = min([pos for pos, _ in heads if pos > start] + [len(readme)])
        body = readme[start:end]
        for f in dataclasses.fields(cls):
            row = re.search(rf"^\| `{f.name}` \|([^|]*)\|([^|]*)\|", body, re.M)
            assert row, f"README section {title} does not document `{f.name}`"
            shown = row.group(2).strip().strip("`")
            assert shown == toml_value(_default(f)), (
                f"README {title} `{f.name}`: default {shown!r}, code has "
                f"{toml_value(_default(f))!r}")
    for key in ("name", "description", "horizon", "seeds", "baseline", "[[arms]]"):
        assert f"`{key}`" in readme


def update_goldens() -> None:
    """Rewrite every golden summary from a fresh small run."""
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in NAMES:
            got = run_small(name, str(Path(tmp) / f"{name}.db"))
            path = GOLDEN / f"{name}.json"
            path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            print(f"wrote {path}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python -m tests.test_scenarios --update")
    update_goldens()
