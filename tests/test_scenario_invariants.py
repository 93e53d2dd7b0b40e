"""Each shipped scenario, run small, obeys expectations known without running the code.

The golden summaries (``test_scenarios.py``) guard against any change of results; these
tests say which results are right. Every expectation follows from the scenario file and
the documented rules: exact invariants (who may be blocked, when, by what), and blocking
shares that are binomial with a known probability, checked to within 4.5 standard errors.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sim.store.database import open_store

from .test_scenarios import SMALL, run_small

#: Interventions start on day 5 of 30; the small runs scale that to the small horizon.
START = 5.0 * SMALL["horizon"] / 30.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per scenario: every interaction of every run, joined with its run's arm and seed."""
    out = {}
    for name in ("moderation", "bridging", "trolls"):
        db = str(tmp_path_factory.mktemp(name) / f"{name}.db")
        run_small(name, db)
        store = open_store(db)
        out[name] = {
            "events": store.frame(
                "SELECT r.arm, r.seed, i.* FROM interactions i JOIN runs r ON r.id = i.run_id "
                "ORDER BY i.run_id, i.seq"),
            "agents": store.frame('SELECT run_id, agent_id, kind, "group" FROM agents'),
            "log": store.frame("SELECT * FROM interventions"),
        }
        store.dispose()
    return out


def arm(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame[frame["arm"] == name]


def assert_binomial_share(hits: int, n: int, p: float) -> None:
    """``hits`` of ``n`` Bernoulli(p) trials: within 4.5 standard errors of ``n * p``."""
    assert n >= 100, f"too few trials ({n}) to check a share"
    sd = math.sqrt(n * p * (1 - p))
    assert abs(hits - n * p) <= 4.5 * sd, f"{hits}/{n} = {hits / n:.3f}, expected {p}"


@pytest.mark.parametrize("name", ["moderation", "bridging", "trolls"])
def test_rows_every_scenario_must_satisfy(runs, name):
    ev = runs[name]["events"]
    assert set(ev["sign"]) == {-1, 1}
    assert ev["weight"].between(0.05, 1.0).all()
    assert (ev["t"] >= 0).all() and (ev["t"] <= SMALL["horizon"]).all()
    assert (ev["delivered"].astype(bool) == ev["blocked_by"].isna()).all()
    assert (ev["src"] != ev["dst"]).all()
    for _, one in ev.groupby("run_id"):
        assert one["seq"].tolist() == list(range(len(one)))
        assert one["t"].is_monotonic_increasing
    # the baseline has no intervention: nothing is ever blocked
    assert arm(ev, "baseline")["blocked_by"].isna().all()
    # before the interventions start, nothing is blocked in any arm
    assert ev.loc[ev["t"] < START, "blocked_by"].isna().all()
    # common random numbers: the activity process (who acts when) before the start is the
    # same in every arm of a seed
    for _, same_seed in ev[ev["t"] < START].groupby("seed"):
        per_arm = [list(zip(g["t"], g["src"], strict=True)) for _, g in same_seed.groupby("arm")]
        assert all(p == per_arm[0] for p in per_arm[1:])


def test_moderation_and_friction_block_what_the_file_says(runs):
    ev = runs["moderation"]["events"]
    after = ev[(ev["t"] >= START) & (ev["blocked_by"] != "unavailable")]
    by = after["blocked_by"]
    neg = after["sign"] < 0
    assert set(arm(ev, "moderation")["blocked_by"].dropna()) <= {"moderation", "unavailable"}
    assert set(arm(ev, "friction")["blocked_by"].dropna()) == {"friction"}
    # friction only withdraws negative acts
    assert (after.loc[by == "friction", "sign"] < 0).all()
    mod, fri, both = (after["arm"] == a for a in ("moderation", "friction", "both"))
    # moderation: recall 0.4 on negative acts, false positives 0.02 on positive ones
    assert_binomial_share(int((by[mod & neg] == "moderation").sum()), int((mod & neg).sum()), 0.4)
    assert_binomial_share(int((by[mod & ~neg] == "moderation").sum()), int((mod & ~neg).sum()),
                          0.02)
    # friction: 25% of negative acts withdrawn
    assert_binomial_share(int((by[fri & neg] == "friction").sum()), int((fri & neg).sum()), 0.25)
    # both: friction first (0.25), then moderation on the rest: 0.75 * 0.4 = 0.3
    assert_binomial_share(int((by[both & neg] == "friction").sum()), int((both & neg).sum()), 0.25)
    assert_binomial_share(int((by[both & neg] == "moderation").sum()), int((both & neg).sum()),
                          0.3)
    # suspensions happen after 5 strikes and are logged
    log = runs["moderation"]["log"]
    assert (log.loc[log["action"] == "suspend", "t"] >= START).all()


def test_bridging_recommends_only_out_group_accounts_after_the_start(runs):
    ev, agents = runs["bridging"]["events"], runs["bridging"]["agents"]
    rec = ev[ev["cause"] == "recommended"]
    assert set(rec["arm"]) == {"bridging", "bridging_strong", "bridging_friction"}
    assert (rec["t"] >= START).all()
    group = agents.set_index(["run_id", "agent_id"])["group"]
    src_group = group.loc[list(zip(rec["run_id"], rec["src"], strict=True))].to_numpy()
    dst_group = group.loc[list(zip(rec["run_id"], rec["dst"], strict=True))].to_numpy()
    assert (src_group != dst_group).all()
    # the strong arm recommends twice the share: more recommended acts than the weak arm
    n = rec.groupby("arm").size()
    assert n["bridging_strong"] > n["bridging"]
    fr = arm(ev, "bridging_friction")
    assert set(fr["blocked_by"].dropna()) == {"friction"}
    assert (fr.loc[fr["blocked_by"] == "friction", "sign"] < 0).all()


def test_troll_interventions_hold_exactly(runs):
    ev, agents = runs["trolls"]["events"], runs["trolls"]["agents"]
    kind = agents.set_index(["run_id", "agent_id"])["kind"]
    ev = ev.assign(src_kind=kind.loc[list(zip(ev["run_id"], ev["src"], strict=True))].to_numpy(),
                   dst_kind=kind.loc[list(zip(ev["run_id"], ev["dst"], strict=True))].to_numpy())
    after = ev[ev["t"] > START]
    # ban: every troll banned at the start; none acts after, acts on them are undelivered
    ban = arm(after, "ban")
    assert not (ban["src_kind"] == "troll").any()
    on_trolls = ban[ban["dst_kind"] == "troll"]
    assert len(on_trolls) > 0 and (on_trolls["blocked_by"] == "unavailable").all()
    banned = runs["trolls"]["log"].query("action == 'ban'")
    n_trolls = agents[agents["kind"] == "troll"].groupby("run_id").size()
    assert banned.groupby("run_id").size().tolist() == n_trolls[banned["run_id"].unique()].tolist()
    # rate limit 2 per day on trolls: per troll and day, acts 1-2 pass the cap and every
    # later act is blocked (by the cap, or earlier because its target is unavailable)
    rl = arm(after, "rate_limit")
    assert (rl.loc[rl["blocked_by"] == "rate_limit", "src_kind"] == "troll").all()
    trolls = rl[rl["src_kind"] == "troll"].assign(day=lambda d: d["t"].floordiv(1))
    rank = trolls.groupby(["run_id", "src", "day"]).cumcount()
    assert (trolls.loc[rank < 2, "blocked_by"] != "rate_limit").all()
    assert trolls.loc[rank >= 2, "blocked_by"].isin(["rate_limit", "unavailable"]).all()
    assert (rank >= 2).sum() > 0
    # counter-speech: counter-speakers answer a victim of an earlier delivered negative act
    # with support
    cs = arm(ev, "counter_speech")
    counter = cs[cs["cause"] == "counter"]
    assert len(counter) > 0 and (counter["sign"] == 1).all() and (counter["t"] >= START).all()
    hit = cs[(cs["sign"] < 0) & cs["blocked_by"].isna()]
    for row in counter.itertuples():
        earlier = hit[(hit["run_id"] == row.run_id) & (hit["seq"] < row.seq)]
        assert row.dst in set(earlier["dst"])
    speakers = set(zip(counter["run_id"], counter["src"], strict=True))
    acts = cs[(cs["t"] >= START)
              & pd.Series(list(zip(cs["run_id"], cs["src"], strict=True)), index=cs.index).isin(speakers)]
    assert (acts["sign"] == 1).all()
