"""Plant named bugs one at a time in a copy of the project and report which the tests catch.

Usage::

    python benchmarks/mutation_check.py            # every mutation, prints JSON
    python benchmarks/mutation_check.py --list     # names only
    python benchmarks/mutation_check.py --only contagion_removed --only holm_is_bonferroni

The project's files (``git ls-files``: tracked plus untracked, not ignored) are copied to a
temporary folder. The fast test subset named by each mutation is first run on the
unchanged copy (it must pass), then once per mutation with that one edit applied and
reverted afterwards. A mutation is *caught* when its subset fails. The working tree is
never touched. Each edit must match its file exactly once, so a mutation that no longer
applies (the code moved on) is reported as ``not_applied`` rather than silently passing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    """One planted bug: text edits in one file and the tests expected to catch it."""

    name: str
    path: str
    edits: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]
    why: str
    env: dict[str, str] = field(default_factory=dict)


KERNEL_TESTS = ("tests/test_kernel_rules.py", "tests/test_kernel.py")
INVARIANTS = ("tests/test_scenario_invariants.py",)

MUTATIONS: tuple[Mutation, ...] = (
    # -- the five bugs of issue 13 ---------------------------------------------------------
    Mutation("contagion_removed", "sim/engine/kernel.py",
             (("+ P_[P.BASE_NEG] + P_[P.CONTAGION] * neg_a", "+ P_[P.BASE_NEG]"),),
             KERNEL_TESTS, "the negativity-contagion term leaves the sign rule"),
    Mutation("snap_rating_gt_1", "sim/store/importers.py",
             (("np.where(edges.rating > 0, 1, -1)", "np.where(edges.rating > 1, 1, -1)"),),
             ("tests/test_import.py", "-k", "not bitcoin_otc"),
             "a SNAP rating of +1 becomes a negative interaction"),
    Mutation("parquet_no_rows", "sim/store/export.py",
             (("df.to_parquet(path, index=False)", "df.head(0).to_parquet(path, index=False)"),),
             ("tests/test_graphstats_export.py",), "the Parquet export writes no rows"),
    Mutation("pyg_msg_weight_is_sign", "models/export.py",
             (('np.stack([sign, ev["weight"].astype(np.float32)], axis=1)',
               "np.stack([sign, sign], axis=1)"),),
             ("tests/test_graphstats_export.py",), "PyG msg carries the sign twice, no weight"),
    Mutation("query_keyword_guard_off", "sim/store/query.py",
             (("    check_read_only_sql(sql, ", "    0 and check_read_only_sql(sql, "),),
             ("tests/test_query_readonly.py",),
             "write statements reach the (read-only) connection"),
    # -- the rules of the simulation -------------------------------------------------------
    Mutation("balance_vote_sign_flipped", "sim/engine/kernel.py",
             (("z -= P_[P.BALANCE] * _balance_vote", "z += P_[P.BALANCE] * _balance_vote"),),
             KERNEL_TESTS, "friends of friends become more hostile"),
    Mutation("weight_ignores_opinion_span", "sim/engine/kernel.py",
             (("w = 0.5 * (1.0 - d / span) + 0.5 * u[U_WEIGHT]",
               "w = 0.5 * (1.0 - d) + 0.5 * u[U_WEIGHT]"),),
             KERNEL_TESTS, "positive weight uses the raw distance, not distance / span"),
    Mutation("negative_weight_uncapped", "sim/engine/kernel.py",
             (("0.4 * min(neg_a, 1.0)", "0.4 * neg_a"),),
             KERNEL_TESTS, "a negative act's weight grows without the cap on negativity"),
    Mutation("friction_blocks_positive_acts", "sim/engine/kernel.py",
             (("if blocked == B_NONE and s < 0 and u[U_FRICTION]",
               "if blocked == B_NONE and u[U_FRICTION]"),),
             INVARIANTS, "the friction prompt also withdraws supportive acts"),
    Mutation("moderation_false_positives_on_negatives", "sim/engine/kernel.py",
             (("(s > 0 and u[U_MOD] < Q_[Q.MOD_FPR])", "(s < 0 and u[U_MOD] < Q_[Q.MOD_FPR])"),),
             INVARIANTS, "the false-positive rate is applied to negative acts"),
    Mutation("rate_limit_off_by_one", "sim/engine/kernel.py",
             (("day_acts[a] > cap", "day_acts[a] >= cap"),),
             INVARIANTS, "a cap of 2 acts per day lets only 1 through"),
    # -- storage and statistics ------------------------------------------------------------
    Mutation("seq_skips_at_each_flush", "sim/store/writer.py",
             (("job = (self._batches, self.added - self._buffered, self._side)",
               "job = (self._batches, self.added - self._buffered + (self.added > self._buffered),"
               " self._side)"),),
             ("tests/test_writer.py", "tests/test_store.py", "-k",
              "hand_written or written_completely"),
             "seq jumps by one at every flush after the first"),
    Mutation("holm_is_bonferroni", "sim/sweep/stats.py",
             (("(m - np.arange(m)) * p[order]", "m * p[order]"),),
             ("tests/test_stats.py",), "Holm's step-down replaced by plain Bonferroni"),
    Mutation("holm_not_monotone", "sim/sweep/stats.py",
             (("out[order] = np.maximum.accumulate(scaled)", "out[order] = scaled"),),
             ("tests/test_stats.py",), "adjusted p-values may decrease down the ranking"),
    Mutation("tgb_timestamps_in_days", "sim/store/export.py",
             (('((d["t"].to_numpy() - t0) * 86400.0).round(3)',
               '(d["t"].to_numpy() - t0).round(3)'),),
             ("tests/test_graphstats_export.py",), "TGB timestamps are days, not seconds"),
    # -- learning ---------------------------------------------------------------------------
    Mutation("protocol_observes_before_scoring", "models/protocol.py",
             (("        out.add(method.score(batch, neg, col3), batch)\n"
               "        if adapt:\n            method.learn(batch)\n        method.observe(batch)\n",
               "        method.observe(batch)\n"
               "        out.add(method.score(batch, neg, col3), batch)\n"
               "        if adapt:\n            method.learn(batch)\n"),),
             ("tests/models/test_protocol.py",),
             "each batch is scored after its own labels were written to memory"),
    Mutation("edgebank_inverts_last_sign", "models/baselines.py",
             (("torch.where(count > 0, (last_sign > 0).float(), self.prior.p_pos)",
               "torch.where(count > 0, (last_sign < 0).float(), self.prior.p_pos)"),),
             ("tests/models/test_features_baselines.py", "-k", "edgebank"),
             "EdgeBank predicts the opposite of the pair's last sign"),
    Mutation("reputation_of_the_source", "models/baselines.py",
             (("p_pos, w = self._sign_weight(batch.dst)", "p_pos, w = self._sign_weight(batch.src)"),),
             ("tests/models/test_features_baselines.py", "-k", "reputation"),
             "the reputation heuristic looks at the rater instead of the ratee"),
    Mutation("memory_partner_read_after_the_batch", "models/memory.py",
             (("        self.pend_partner[n_sel, slot] = self.memory.index_select(1, other[idx])"
               ".transpose(0, 1)\n",
               ""),
              ("        self.current_last.index_copy_(0, todo, last)\n",
               "        self.current_last.index_copy_(0, todo, last)\n"
               "        self.pend_partner[n_sel, slot] = self.current.index_select(1, other[idx])"
               ".transpose(0, 1)\n")),
             ("tests/models/test_memory.py",),
             "a pending message reads the partner's memory after the batch, not before it"),
    Mutation("memory_balance_routing_swapped", "models/memory.py",
             (("partner[:, m], partner[:, 1 - m])", "partner[:, 1 - m], partner[:, m])"),),
             ("tests/models/test_memory.py", "-k", "balanced or reference"),
             "balanced aggregation routes a friend's memory where an enemy's belongs"),
    Mutation("triads_in_and_out_signs_swapped", "models/triads.py",
             (("for rows in (inverse[:key.numel()], inverse[key.numel():]):",
               "for rows in (inverse[key.numel():], inverse[:key.numel()]):"),),
             ("tests/models/test_triads.py",),
             "the triad index files u -> w under w -> u"),
    Mutation("pair_count_not_accumulated", "models/features.py",
             (("count = self.tables.lookup(key)[0] + repeats.to(torch.int32)",
               "count = repeats.to(torch.int32)"),),
             ("tests/models/test_sorted_tables.py",),
             "the pair table forgets a pair's earlier events when it recurs"),
    Mutation("fg_refresh_every_batch", "models/features.py",
             (("if self._hist_n - self._fg_at >= self.fg_growth * self._fg_at:",
               "if True:"),),
             ("tests/models/test_features_baselines.py",),
             "fairness/goodness ignore fg_growth and refresh after every batch"),
    Mutation("blend_averages_probabilities", "models/blend.py",
             (('space: str = "log_odds"', 'space: str = "probability"'),),
             ("tests/models/test_blend.py",),
             "the blend averages probabilities instead of log-odds"),
    Mutation("forecast_stores_p_negative", "models/forecast.py",
             (('"p_positive": float(pred["p_pos"][i])', '"p_positive": 1.0 - float(pred["p_pos"][i])'),),
             ("tests/models/test_deterministic_stream.py", "-k", "forecast"),
             "the forecasts table stores P(negative) as p_positive"),
)


def project_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files of the working tree."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=root, check=True, capture_output=True).stdout
    return sorted({p for p in out.decode().split("\0") if p and (root / p).is_file()})


def make_copy(root: Path, dest: Path) -> None:
    """Copy the project's files into ``dest``."""
    for rel in project_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def run_tests(copy: Path, tests: tuple[str, ...], env: dict[str, str], timeout: float
              ) -> tuple[int, float, list[str]]:
    """Run a pytest subset in the copy; returns (exit code, seconds, failing test ids)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-rfE",
           "--no-header", *tests]
    full_env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", **env}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=full_env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, time.perf_counter() - t0, ["timeout"]
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in proc.stdout.splitlines()
              if line.startswith(("FAILED ", "ERROR "))]
    return proc.returncode, time.perf_counter() - t0, failed


def apply(copy: Path, m: Mutation) -> str | None:
    """Apply ``m`` in the copy; returns the original text, or None if an edit does not match once."""
    path = copy / m.path
    original = path.read_text(encoding="utf-8")
    text = original
    for old, new in m.edits:
        if text.count(old) != 1:
            return None
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return original


def imports_from_copy(copy: Path) -> bool:
    """The copy's own packages are the ones imported there (not the editable install)."""
    probe = "import sim, models, cli; print(sim.__file__, models.__file__, cli.__file__)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=copy, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(copy)}, check=True).stdout
    return all(Path(p).resolve().is_relative_to(copy.resolve()) for p in out.split())


def check(mutations: tuple[Mutation, ...], timeout: float) -> dict:
    """Run the baseline subsets and every mutation; the JSON-ready summary."""
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="signsim-mut-") as tmp:
        copy = Path(tmp) / "signsim"
        make_copy(ROOT, copy)
        if not imports_from_copy(copy):
            raise SystemExit("the copy's tests would import the working tree's packages")
        baseline = {}
        for tests in sorted({m.tests for m in mutations}):
            rc, secs, failed = run_tests(copy, tests, {}, timeout)
            baseline[" ".join(tests)] = {"rc": rc, "seconds": round(secs, 1), "failed": failed}
        results = []
        for m in mutations:
            entry: dict = {"name": m.name, "file": m.path, "why": m.why, "tests": " ".join(m.tests)}
            if baseline[" ".join(m.tests)]["rc"] != 0:
                entry["status"] = "subset_fails_unmutated"
                results.append(entry)
                continue
            original = apply(copy, m)
            if original is None:
                entry["status"] = "not_applied"
                results.append(entry)
                continue
            try:
                rc, secs, failed = run_tests(copy, m.tests, m.env, timeout)
            finally:
                (copy / m.path).write_text(original, encoding="utf-8")
            entry.update(status="caught" if rc != 0 else "missed", rc=rc,
                         seconds=round(secs, 1), failed=failed[:3])
            results.append(entry)
    caught = [r["name"] for r in results if r["status"] == "caught"]
    return {
        "planted": len(mutations),
        "caught": len(caught),
        "missed": [r["name"] for r in results if r["status"] == "missed"],
        "not_checked": [f"{r['name']} ({r['status']})" for r in results
                        if r["status"] not in ("caught", "missed")],
        "seconds": round(time.perf_counter() - t_start, 1),
        "baseline": baseline,
        "mutations": results,
    }


def main() -> None:
    """Parse arguments, run the check, print JSON; exit 1 unless every mutation is caught."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="run only this mutation")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    args = parser.parse_args()
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:42} {m.path:22} {m.why}")
        return
    known = {m.name for m in MUTATIONS}
    unknown = sorted(set(args.only) - known)
    if unknown:
        raise SystemExit(f"unknown mutation(s): {', '.join(unknown)}; see --list")
    chosen = tuple(m for m in MUTATIONS if not args.only or m.name in args.only)
    summary = check(chosen, args.timeout)
    print(json.dumps(summary, indent=1))
    sys.exit(0 if summary["caught"] == summary["planted"] else 1)


if __name__ == "__main__":
    main()
