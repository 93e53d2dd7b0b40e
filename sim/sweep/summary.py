"""The answer first: the report's summary sentences and the statement of its Holm family.

:func:`summarise` reads the paired comparisons (:func:`sim.sweep.stats.compare_arms`) and
says, per arm against the baseline, which metrics changed: one sentence per metric with a
change significant after Holm, e.g. "`moderation` lowers `negative_share`: the final
value by 0.031 (-22.1%; 95% CI 0.027 to 0.035; Holm p < 0.0001), paired over 20 seeds:
clear decrease.", then the metrics without a clear change, those not tested because
they are constant, and those that cannot be assessed. :func:`family_text` says which
comparisons form the Holm family and which were left out, and why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sim.sweep.stats import format_p

__all__ = [
    "ArmSummary",
    "Change",
    "effect_sentence",
    "family_text",
    "format_number",
    "summarise",
]

_LABEL = {"final": "the final value", "time_avg": "the time average"}
_SHORT = {"final": "final value", "time_avg": "time average"}


@dataclass
class Change:
    """A metric an arm changed clearly.

    Attributes:
        name: The metric.
        direction: ``"lower"``, ``"higher"`` or ``"mixed"`` (the final value and the time
            average moved in opposite directions).
        sentence: The summary sentence (:func:`effect_sentence`).
    """

    name: str
    direction: str
    sentence: str


@dataclass
class ArmSummary:
    """What one arm changed against the baseline.

    Attributes:
        arm: The arm.
        n_pairs: Seeds paired with the baseline (the most over its metrics).
        changed: The metrics with a change significant after Holm, with their sentence.
        unchanged: Metrics with no change significant after Holm.
        constant: ``(metric, value)`` of the metrics equal in every run (not tested).
        unassessable: Metrics with fewer than two paired seeds.
    """

    arm: str
    n_pairs: int
    changed: list[Change] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    constant: list[tuple[str, float]] = field(default_factory=list)
    unassessable: list[str] = field(default_factory=list)

    def in_short(self) -> str:
        """One line: which metrics went down, up, both ways, or did not clearly change.

        Constant and unassessable metrics are not in it (the summary lists them with
        their reason).
        """
        parts = []
        for direction, label in (("lower", "lower"), ("higher", "higher"),
                                 ("mixed", "mixed changes in")):
            names = [f"`{c.name}`" for c in self.changed if c.direction == direction]
            if names:
                parts.append(f"{label} {', '.join(names)}")
        if self.unchanged:
            parts.append(f"no clear change in {', '.join(f'`{n}`' for n in self.unchanged)}")
        return "; ".join(parts) + "." if parts else "no metric was tested."


def format_number(x: float, ref: float = math.nan) -> str:
    """A number with as many decimals as its uncertainty warrants.

    Args:
        x: The number.
        ref: Its precision, e.g. the half-width of its interval: the number gets two
            significant digits of ``ref`` (at most 8 decimals). NaN or 0: four
            significant digits of ``x``.

    Returns:
        The formatted number (``"n/a"`` for NaN).
    """
    if math.isnan(x):
        return "n/a"
    if not (math.isfinite(ref) and ref > 0):
        return f"{x:.4g}"
    decimals = min(8, max(0, 1 - math.floor(math.log10(ref))))
    return f"{x:.{decimals}f}"


def _part(r: dict[Any, Any], signed: bool) -> str:
    """``the final value by 0.031 (-22.1%; 95% CI 0.027 to 0.035; Holm p < 0.0001)``."""
    diff, lo, hi = float(r["diff"]), float(r["ci_low"]), float(r["ci_high"])
    half = max(hi - diff, diff - lo)
    if not signed and diff < 0:
        diff, lo, hi = -diff, -hi, -lo
    rel = float(r["rel_change"])
    rel_text = "" if math.isnan(rel) else f"{100 * rel:+.1f}%; "
    where = _LABEL[str(r["stat"])]
    if signed:
        where += " lower" if float(r["diff"]) < 0 else " higher"
    return (f"{where} by {format_number(abs(diff) if signed else diff, half)} ({rel_text}95% CI "
            f"{format_number(lo, half)} to {format_number(hi, half)}; "
            f"{format_p(float(r['p_holm']), 'Holm p')})")


def effect_sentence(arm: str, name: str, rows: Sequence[dict[Any, Any]],
                    alpha: float = 0.05) -> str | None:
    """The summary sentence of one arm and metric, or None without a significant change.

    Args:
        arm: The arm.
        name: The metric.
        rows: The comparison rows of this arm and metric (one per statistic), as dicts
            with the columns of :func:`sim.sweep.stats.compare_arms`.
        alpha: Level of the Holm-adjusted p below which a change is called clear.

    Returns:
        One sentence ending in a verdict: "clear decrease", "clear increase" (with
        "(final value only)" when another statistic shows no clear change) or "mixed"
        when the final value and the time average moved in opposite directions.
    """
    clear = [float(r["p_holm"]) < alpha for r in rows]
    sig = [r for r, c in zip(rows, clear, strict=True) if c]
    if not sig:
        return None
    rest = [r for r, c in zip(rows, clear, strict=True) if not c and r["excluded"] == ""]
    down = {float(r["diff"]) < 0 for r in sig}
    n = max(int(r["n_pairs"]) for r in sig)
    if len(down) == 1:
        verb = "lowers" if down == {True} else "raises"
        verdict = "clear decrease" if down == {True} else "clear increase"
        if rest:
            verdict += f" ({' and '.join(_SHORT[str(r['stat'])] for r in sig)} only)"
        text = f"`{arm}` {verb} `{name}`: " + " and ".join(_part(r, False) for r in sig)
    else:
        verdict = "mixed: the statistics moved in opposite directions"
        text = f"`{arm}` changes `{name}`: " + " and ".join(_part(r, True) for r in sig)
    for r in rest:
        text += (f"; {_LABEL[str(r['stat'])]} shows no clear change "
                 f"({format_p(float(r['p_holm']), 'Holm p')})")
    return f"{text}, paired over {n} seeds: {verdict}."


def summarise(comparisons: pd.DataFrame, names: Sequence[str], arms: Sequence[str],
              baseline: str = "baseline", alpha: float = 0.05) -> list[ArmSummary]:
    """Per arm (the baseline left out), what changed and what did not.

    Args:
        comparisons: Output of :func:`sim.sweep.stats.compare_arms`.
        names: Metrics in report order.
        arms: Arms in report order.
        baseline: The baseline arm.
        alpha: Level of the Holm-adjusted p below which a change is called clear.

    Returns:
        One :class:`ArmSummary` per compared arm, in ``arms`` order.
    """
    out: list[ArmSummary] = []
    for arm in arms:
        sub = comparisons[comparisons["arm"] == arm]
        if arm == baseline or sub.empty:
            continue
        summary = ArmSummary(arm, int(sub["n_pairs"].max()))
        for name in names:
            rows = sub[sub["name"] == name].to_dict("records")
            if not rows:
                continue
            if all(r["excluded"] == "constant" for r in rows):
                summary.constant.append((name, float(rows[0]["baseline_mean"])))
                continue
            if all(r["excluded"] != "" for r in rows):
                summary.unassessable.append(name)
                continue
            sentence = effect_sentence(arm, name, rows, alpha)
            if sentence is None:
                summary.unchanged.append(name)
            else:
                sig = {float(r["diff"]) < 0 for r in rows if float(r["p_holm"]) < alpha}
                direction = "mixed" if len(sig) > 1 else "lower" if sig == {True} else "higher"
                summary.changed.append(Change(name, direction, sentence))
        out.append(summary)
    return out


def family_text(comparisons: pd.DataFrame, names: Sequence[str], baseline: str) -> str:
    """One paragraph saying which comparisons form the Holm family and which do not.

    Args:
        comparisons: Output of :func:`sim.sweep.stats.compare_arms`.
        names: Metrics in report order.
        baseline: The baseline arm.

    Returns:
        The paragraph (Markdown with `code` spans).
    """
    fam = comparisons[comparisons["excluded"] == ""]
    arms = list(dict.fromkeys(comparisons["arm"]))
    tested = []
    for name in names:
        stats = [s for s in _SHORT if ((fam["name"] == name) & (fam["stat"] == s)).any()]
        if stats:
            only = ("" if len(stats) == len(_SHORT)
                    else f" ({' and '.join(_SHORT[s] for s in stats)} only)")
            tested.append(f"`{name}`{only}")
    if fam.empty:
        text = "Holm family: empty, no comparison has a p-value."
    else:
        text = (f"Holm family: the {len(fam)} paired comparisons of "
                f"{', '.join(f'`{a}`' for a in arms)} with `{baseline}` on "
                f"{', '.join(tested)}, each on its final value and its time average; their "
                "p-values are adjusted together.")
    left: list[str] = []
    for reason, why in (("constant", "the same value in every run of every arm, so there "
                         "is no difference to test"),
                        ("fewer than 2 pairs", "fewer than 2 paired seeds, so no p-value")):
        sel = comparisons[comparisons["excluded"] == reason]
        if sel.empty:
            continue
        items = []
        for name in [n for n in names if n in set(sel["name"])]:
            stats = [s for s in _SHORT if ((sel["name"] == name) & (sel["stat"] == s)).any()]
            items.append(f"`{name}` ({' and '.join(_SHORT[s] for s in stats)})")
        left.append(f"{', '.join(items)}: {why}")
    if left:
        text += " Left out: " + "; ".join(left) + "."
    else:
        text += " No comparison was left out."
    return text
