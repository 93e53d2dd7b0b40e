"""Scenario files: TOML -> a validated :class:`Scenario` (arms x seeds of one setting).

A scenario never executes code: it is data, checked field by field. Every error names
the file, the key path and the offending value; unknown keys are errors.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import reprlib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from sim.config import (
    AGENT_KINDS,
    INTERVENTION_PARAMS,
    DynamicsConfig,
    NetworkConfig,
    PopulationConfig,
    RecordingConfig,
    SimConfig,
)
from sim.errors import SignsimError
from sim.limits import MAX_SEED, check_horizon, check_run_resources

__all__ = [
    "DEFAULT_MAX",
    "Arm",
    "InterventionSpec",
    "Scenario",
    "MAX_SEEDS",
    "NAME_PATTERN",
    "build_dataclass",
    "check_name",
    "load_scenario",
    "parse_scenario",
]

_SECTIONS: dict[str, type] = {
    "population": PopulationConfig,
    "network": NetworkConfig,
    "dynamics": DynamicsConfig,
    "recording": RecordingConfig,
}
_TOP_KEYS = {"name", "description", "horizon", "seeds", "baseline", "arms", *_SECTIONS}
_ARM_KEYS = {"name", "description", "interventions", *_SECTIONS}

#: Scenario and arm names: identifiers that are safe as one folder or file name.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")

#: Upper bound of a numeric setting that names no ``max`` of its own.
DEFAULT_MAX = 1_000_000

#: Most seeds of one scenario.
MAX_SEEDS = 10_000

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def _show(value: Any) -> str:
    """A short repr for messages (bounded depth and length, even for deep tables)."""
    return _SHORT.repr(value)


def check_name(name: str, where: str, key: str) -> str:
    """Return ``name`` when it is an identifier (letters, digits, ``_ . -``); raise otherwise.

    Names become folder and file names (``reports/<name>``), so a name can never hold a
    path separator, start with a dot, or be longer than 100 characters.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise _fail(where, key, f"{_show(name)} is not a valid name; use 1 to 100 letters, "
                    "digits, '_', '.' or '-', not starting with '.' or '-'.")
    return name


@dataclass
class InterventionSpec:
    """One intervention of an arm, as written in the scenario file.

    Attributes:
        type: Registry name (``moderation``, ``ban`` ...).
        start: Day it starts.
        end: Day it ends (``None``: until the horizon).
        params: Validated parameters (the intervention's own dataclass).
    """

    type: str
    start: float
    end: float | None
    params: Any


@dataclass
class Arm:
    """One arm: the base settings with its overrides, plus its interventions."""

    name: str
    config: SimConfig
    interventions: list[InterventionSpec] = field(default_factory=list)
    description: str = ""


@dataclass
class Scenario:
    """A validated scenario file.

    Attributes:
        name: Scenario name (used as ``runs.scenario``).
        description: The question it answers.
        seeds: Seeds run by every arm (common random numbers).
        baseline: Name of the reference arm.
        arms: The arms, baseline included.
        text: The file's text (stored with every run).
        path: Where it was read from (``None`` for text).
    """

    name: str
    description: str
    seeds: list[int]
    baseline: str
    arms: list[Arm]
    text: str = ""
    path: Path | None = None

    def arm(self, name: str) -> Arm:
        """Return the arm called ``name``."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise SignsimError(
            f"Scenario '{self.name}' has no arm '{name}'; arms: {', '.join(a.name for a in self.arms)}."
        )


def _fail(where: str, key: str, msg: str) -> SignsimError:
    return SignsimError(f"{where}: {key}: {msg}")


def _check_value(value: Any, tp: Any, where: str, key: str, meta: dict[str, Any]) -> Any:
    """Check one value against a field type and its range metadata; return it converted."""
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise _fail(where, key, f"{_show(value)} is not allowed; use one of: "
                        + ", ".join(str(a) for a in allowed) + ".")
        return value
    if origin in (types.UnionType, typing.Union):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _check_value(value, args[0], where, key, meta)
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(where, key, f"{_show(value)} must be true or false.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, key, f"{_show(value)} must be a whole number.")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, key, f"{_show(value)} must be a number.")
        value = float(value)
        if not math.isfinite(value):
            raise _fail(where, key, f"{value!r} must be a finite number.")
    elif tp is str:
        if not isinstance(value, str):
            raise _fail(where, key, f"{_show(value)} must be a string.")
        return value
    elif origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise _fail(where, key, f"{_show(value)} must be a list.")
        return [_check_value(v, item, where, f"{key}[{i}]", {}) for i, v in enumerate(value)]
    elif origin is dict:
        _, item = get_args(tp)
        if not isinstance(value, dict):
            raise _fail(where, key, f"{_show(value)} must be a table.")
        return {k: _check_value(v, item, where, f"{key}.{k}", {}) for k, v in value.items()}
    if "min" in meta and value < meta["min"]:
        raise _fail(where, key, f"{_show(value)} is below the minimum {meta['min']}.")
    if "min_exclusive" in meta and value <= meta["min_exclusive"]:
        raise _fail(where, key, f"{_show(value)} must be greater than {meta['min_exclusive']}.")
    if "max" in meta and value > meta["max"]:
        raise _fail(where, key, f"{_show(value)} is above the maximum {meta['max']}.")
    return value


def build_dataclass(cls: type, data: dict[str, Any], where: str, prefix: str,
                    base: Any = None) -> Any:
    """Build dataclass ``cls`` from a TOML table, on top of ``base`` when given.

    Args:
        cls: The dataclass type.
        data: The table's keys and values.
        where: File name for error messages.
        prefix: Key path of the table (``dynamics``, ``arms[1].dynamics``).
        base: An instance whose values are kept for keys the table does not name.

    Returns:
        A new instance of ``cls``.

    Raises:
        SignsimError: On an unknown key, a wrong type or an out-of-range value.
    """
    if not isinstance(data, dict):
        raise _fail(where, prefix, f"{_show(data)} must be a table.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    obj = copy.deepcopy(base) if base is not None else cls()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            raise _fail(where, path, "unknown key; allowed keys: " + ", ".join(fields) + ".")
        meta = dict(fields[key].metadata)
        if hints[key] in (int, float):
            meta.setdefault("max", DEFAULT_MAX)
        setattr(obj, key, _check_value(value, hints[key], where, path, meta))
    return obj


def _check_population(pop: PopulationConfig, where: str, prefix: str) -> None:
    for kind in pop.kinds:
        if kind not in AGENT_KINDS:
            raise _fail(where, f"{prefix}.kinds.{kind}",
                        f"unknown agent kind '{kind}'; use one of: {', '.join(AGENT_KINDS)}.")
        if pop.kinds[kind] < 0:
            raise _fail(where, f"{prefix}.kinds.{kind}", f"{pop.kinds[kind]} is negative.")
    total = sum(pop.kinds.values())
    if abs(total - 1.0) > 1e-6:
        raise _fail(where, f"{prefix}.kinds", f"shares sum to {total:g}, not 1.")
    lo_hi = pop.opinion_range
    if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:
        raise _fail(where, f"{prefix}.opinion_range", f"{_show(lo_hi)} must be [low, high] with low < high.")


def _build_config(data: dict[str, Any], where: str, prefix: str, base: SimConfig) -> SimConfig:
    cfg = copy.deepcopy(base)
    for section, cls in _SECTIONS.items():
        if section in data:
            key = f"{prefix}{section}"
            setattr(cfg, section, build_dataclass(cls, data[section], where, key,
                                                  getattr(cfg, section)))
    _check_population(cfg.population, where, f"{prefix}population")
    if cfg.network.kind == "edge_list" and not cfg.network.path:
        raise _fail(where, f"{prefix}network.path", "an edge_list network needs a path.")
    return cfg


def _resolve_paths(cfg: SimConfig, base_dir: Path | None) -> None:
    """Make relative file paths (edge list, checkpoint, twin source) relative to the scenario file."""
    if base_dir is None:
        return
    if cfg.network.path and not Path(cfg.network.path).is_absolute():
        cfg.network.path = str(base_dir / cfg.network.path)
    if cfg.dynamics.model and not Path(cfg.dynamics.model).is_absolute():
        cfg.dynamics.model = str(base_dir / cfg.dynamics.model)
    if cfg.dynamics.twin and not Path(cfg.dynamics.twin).is_absolute():
        cfg.dynamics.twin = str(base_dir / cfg.dynamics.twin)


def _build_interventions(items: Any, where: str, prefix: str, horizon: float
                         ) -> list[InterventionSpec]:
    if not isinstance(items, list):
        raise _fail(where, prefix, f"{_show(items)} must be a list of tables.")
    specs = []
    for i, item in enumerate(items):
        path = f"{prefix}[{i}]"
        if not isinstance(item, dict) or "type" not in item:
            raise _fail(where, path, "each intervention is a table with a 'type' key.")
        kind = item["type"]
        if kind not in INTERVENTION_PARAMS:
            raise _fail(where, f"{path}.type", f"unknown intervention '{kind}'; use one of: "
                        + ", ".join(sorted(INTERVENTION_PARAMS)) + ".")
        rest = {k: v for k, v in item.items() if k not in ("type", "start", "end")}
        start = _check_value(item.get("start", 0.0), float, where, f"{path}.start", {"min": 0.0})
        end = item.get("end")
        if end is not None:
            end = _check_value(end, float, where, f"{path}.end", {"min": 0.0})
            if end <= start:
                raise _fail(where, f"{path}.end", f"{end} must be after start {start}.")
        if start > horizon:
            raise _fail(where, f"{path}.start", f"{start} is after the horizon {horizon}.")
        params = build_dataclass(INTERVENTION_PARAMS[kind], rest, where, path)
        spec = InterventionSpec(type=kind, start=start, end=end, params=params)
        try:
            check = getattr(params, "check", None)  # combinations of parameters
            if check is not None:
                check()
        except SignsimError as exc:
            raise _fail(where, path, str(exc)) from None
        specs.append(spec)
    return specs


def parse_scenario(text: str, where: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """Parse and validate scenario TOML text.

    Args:
        text: The TOML text.
        where: Name used in error messages (usually the file path).
        base_dir: Folder that relative paths (edge lists) resolve from.

    Returns:
        The validated scenario.

    Raises:
        SignsimError: Naming the file, key path and value of the first problem.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SignsimError(f"{where}: TOML syntax error: {exc}") from None
    except RecursionError:
        raise SignsimError(f"{where}: TOML tables or arrays are nested too deeply; a "
                           "scenario needs at most a few levels.") from None
    for key in data:
        if key not in _TOP_KEYS:
            raise _fail(where, key, "unknown key; allowed keys: " + ", ".join(sorted(_TOP_KEYS)) + ".")
    if "name" in data:
        name = check_name(_check_value(data["name"], str, where, "name", {}), where, "name")
    else:  # the file's stem, made an identifier ("my run.toml" -> "my_run")
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(where).stem).lstrip(".-")[:100] or "scenario"
    description = _check_value(data.get("description", ""), str, where, "description", {})
    horizon = check_horizon(_check_value(data.get("horizon", 10.0), float, where, "horizon",
                                         {"min_exclusive": 0.0}), f"{where}: horizon")
    seeds_raw = data.get("seeds", 1)
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        if not 1 <= seeds_raw <= MAX_SEEDS:
            raise _fail(where, "seeds", f"{seeds_raw} must be from 1 to {MAX_SEEDS} (or a list "
                        "of seeds).")
        seeds = list(range(seeds_raw))
    else:
        seeds = _check_value(seeds_raw, list[int], where, "seeds", {})
        if not seeds or len(set(seeds)) != len(seeds) or len(seeds) > MAX_SEEDS:
            raise _fail(where, "seeds", f"{_show(seeds_raw)} must be a non-empty list of at most "
                        f"{MAX_SEEDS} distinct seeds.")
        for i, seed in enumerate(seeds):
            if not 0 <= seed <= MAX_SEED:
                raise _fail(where, f"seeds[{i}]", f"{seed} must be from 0 to {MAX_SEED}.")
    base = _build_config(data, where, "", SimConfig(horizon=horizon))
    arms_raw = data.get("arms", [{"name": "baseline"}])
    if not isinstance(arms_raw, list) or not arms_raw:
        raise _fail(where, "arms", "must be a non-empty list of [[arms]] tables.")
    arms: list[Arm] = []
    for i, arm_data in enumerate(arms_raw):
        prefix = f"arms[{i}]"
        if not isinstance(arm_data, dict):
            raise _fail(where, prefix, "must be a table.")
        for key in arm_data:
            if key not in _ARM_KEYS:
                raise _fail(where, f"{prefix}.{key}", "unknown key; allowed keys: "
                            + ", ".join(sorted(_ARM_KEYS)) + ".")
        arm_name = check_name(_check_value(arm_data.get("name"), str, where, f"{prefix}.name", {}),
                              where, f"{prefix}.name")
        if any(a.name == arm_name for a in arms):
            raise _fail(where, f"{prefix}.name", f"arm '{arm_name}' is defined twice.")
        cfg = _build_config(arm_data, where, f"{prefix}.", base)
        _resolve_paths(cfg, base_dir)
        check_run_resources(cfg, f"{where}: arms[{i}] ({arm_name})")
        specs = _build_interventions(arm_data.get("interventions", []), where,
                                     f"{prefix}.interventions", horizon)
        arms.append(Arm(arm_name, cfg, specs, str(arm_data.get("description", ""))))
    baseline = _check_value(data.get("baseline", "baseline"), str, where, "baseline", {})
    if baseline not in {a.name for a in arms}:
        raise _fail(where, "baseline", f"'{baseline}' is not one of the arms: "
                    + ", ".join(a.name for a in arms) + ".")
    return Scenario(name, description, seeds, baseline, arms, text)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        SignsimError: When the file is missing or invalid.
    """
    p = Path(path)
    if not p.is_file():
        raise SignsimError(f"Scenario file '{p}' does not exist.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SignsimError(f"Cannot read scenario file '{p}': {exc}") from None
    scenario = parse_scenario(text, str(p), p.parent)
    scenario.path = p
    return scenario
