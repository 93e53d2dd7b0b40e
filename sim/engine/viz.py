"""Mesa's browser visualisation (Solara) of a running signsim model.

:func:`make_page` builds a ``mesa.visualization.SolaraViz`` page around a
:class:`~sim.engine.mesa_tools.MesaSocialModel` with three plots, redrawn at every step (one
metric tick): the opinion histogram per group, the negative share over the ticks (Mesa's
own plot component, reading the DataCollector), and a signed network sample (the
remembered signed ties of a fixed sample of agents, placed by opinion and group).
The sidebar has Mesa's controls (step, play, reset) and sliders for the population size,
the confidence bound and the seed.

Serve it with ``solara run sim.engine.viz``; the environment variables ``SIGNSIM_VIZ_SCENARIO``,
``SIGNSIM_VIZ_ARM``, ``SIGNSIM_VIZ_AGENTS``, ``SIGNSIM_VIZ_HORIZON`` and
``SIGNSIM_VIZ_SEED`` choose the model (default: 300 agents of the default settings over
30 days, seed 0).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import solara
from matplotlib.figure import Figure
from mesa.visualization import Slider, SolaraViz, make_plot_component
from mesa.visualization.utils import update_counter

from sim.contract import KIND_CODES
from sim.engine.mesa_tools import MesaSocialModel

__all__ = ["NetworkSample", "OpinionHistogram", "Page", "make_page", "network_sample"]

#: Agents drawn in the network sample.
SAMPLE_SIZE = 40
_KIND_COLOURS = ("tab:blue", "tab:orange", "black", "tab:green")


def network_sample(model: MesaSocialModel, size: int = SAMPLE_SIZE
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fixed sample of agents and their remembered signed ties.

    The sample comes from a generator of its own (seeded with the model's seed), never
    from the model's generator, so watching a model does not change its run.

    Args:
        model: The model.
        size: Number of sampled agents.

    Returns:
        ``(sample, src, dst, sign)``: the sampled agent ids, and one entry per remembered
        tie of a sampled agent (its partner may be outside the sample).
    """
    n = model.population.n
    sample = np.sort(np.random.default_rng(model.seed).choice(n, size=min(size, n), replace=False))
    partner = model.net.tie_partner[sample]
    sign = model.net.tie_sign[sample]
    keep = (partner >= 0) & (sign != 0)
    src = np.repeat(sample, partner.shape[1]).reshape(partner.shape)[keep]
    return sample, src, partner[keep], sign[keep].astype(np.int64)


def _positions(model: MesaSocialModel, agents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plot positions: the opinion across, the group plus a fixed spread by id up."""
    spread = (agents * 0.6180339887) % 1.0 - 0.5
    return model.population.opinion[agents], model.population.group[agents] + 0.7 * spread


def _figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=(5.5, 3.6))
    return fig, fig.subplots()


@solara.component
def OpinionHistogram(model: MesaSocialModel) -> None:
    """Histogram of the current opinions, stacked by group."""
    update_counter.get()
    fig, ax = _figure()
    pop = model.population
    lo, hi = model.config.population.opinion_range
    groups = np.unique(pop.group)
    ax.hist([pop.opinion[pop.group == g] for g in groups], bins=40, range=(lo, hi),
            stacked=True, label=[f"group {g}" for g in groups])
    ax.set_xlabel("opinion")
    ax.set_ylabel("agents")
    ax.set_title(f"Opinions at day {model.env.now:g}")
    ax.legend(loc="upper center", fontsize="small")
    solara.FigureMatplotlib(fig, format="png", bbox_inches="tight")


@solara.component
def NetworkSample(model: MesaSocialModel) -> None:
    """Remembered signed ties of a sample of agents (green positive, red negative)."""
    update_counter.get()
    fig, ax = _figure()
    sample, src, dst, sign = network_sample(model)
    x0, y0 = _positions(model, src)
    x1, y1 = _positions(model, dst)
    for s, colour in ((1, "tab:green"), (-1, "tab:red")):
        m = sign == s
        ax.plot(np.stack([x0[m], x1[m]]), np.stack([y0[m], y1[m]]), color=colour, alpha=0.5,
                linewidth=0.8)
    partners = np.setdiff1d(dst, sample)
    px, py = _positions(model, partners)
    ax.scatter(px, py, s=6, color="grey")
    sx, sy = _positions(model, sample)
    kinds = model.population.kind[sample]
    for code, name in enumerate(KIND_CODES):
        m = kinds == code
        if m.any():
            ax.scatter(sx[m], sy[m], s=30, color=_KIND_COLOURS[code % len(_KIND_COLOURS)],
                       label=name, zorder=3)
    ax.set_xlabel("opinion")
    ax.set_ylabel("group")
    ax.set_yticks(np.unique(model.population.group))
    ax.set_title(f"Signed ties of {sample.size} agents: {int((sign > 0).sum())} positive, "
                 f"{int((sign < 0).sum())} negative")
    ax.legend(loc="upper center", fontsize="small", ncol=4)
    solara.FigureMatplotlib(fig, format="png", bbox_inches="tight")


def _tick_axis(ax: Any) -> None:
    ax.set_ylim(0.0, 1.0)
    ax.set_title("Negative share of delivered acts, per metric tick")


def make_page(*, scenario: str | None = None, arm: str | None = None, n_agents: int = 300,
              horizon: float = 30.0, seed: int = 0, confidence: float = 0.5) -> Any:
    """A SolaraViz page of a :class:`~sim.engine.mesa_tools.MesaSocialModel`.

    Args:
        scenario: Scenario file (``None``: the default settings).
        arm: Arm of the scenario (default: its baseline).
        n_agents: Population size (a slider, 50 to 3000).
        horizon: Horizon in days.
        seed: Seed (a slider, 0 to 99).
        confidence: Confidence bound (a slider, 0 to 2).

    Returns:
        The page (a Solara element).
    """
    model = MesaSocialModel(scenario=scenario, arm=arm, n_agents=n_agents, horizon=horizon,
                            seed=seed, confidence=confidence, collect_agents=False)
    params: dict[str, Any] = {
        "scenario": scenario,
        "arm": arm,
        "horizon": horizon,
        "collect_agents": False,
        "n_agents": Slider("agents", n_agents, 50, 3000, 50),
        "confidence": Slider("confidence", confidence, 0.0, 2.0, 0.05),
        "seed": Slider("seed", seed, 0, 99, 1),
    }
    components = [
        OpinionHistogram,
        make_plot_component({"negative_share": "tab:red"}, post_process=_tick_axis),
        NetworkSample,
    ]
    return SolaraViz(model, components=components, model_params=params, name="signsim")


def _env_settings() -> dict[str, Any]:
    env = os.environ
    out: dict[str, Any] = {"scenario": env.get("SIGNSIM_VIZ_SCENARIO") or None,
                           "arm": env.get("SIGNSIM_VIZ_ARM") or None}
    for key, name, cast in (("n_agents", "AGENTS", int), ("horizon", "HORIZON", float),
                            ("seed", "SEED", int)):
        if env.get(f"SIGNSIM_VIZ_{name}"):
            out[key] = cast(env[f"SIGNSIM_VIZ_{name}"])
    return out


@solara.component
def Page() -> Any:
    """The page ``solara run sim.engine.viz`` serves (settings from ``SIGNSIM_VIZ_*``)."""
    return make_page(**_env_settings())
