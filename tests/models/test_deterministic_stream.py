"""Train, evaluate and forecast on a stream whose sign and weight are known functions of the pair.

Thirty-two fixed pairs repeat in a seeded random order; a pair's rating is ``-w`` when
its target is one of the "disliked" nodes and ``+w`` otherwise, with ``w`` fixed per pair.
The stream is imported through ``signsim import`` like a real SNAP network. Every pair
appears in the first 32 events, so by validation every method has seen every pair many
times, and the answers are known without running any of them:

* EdgeBank (last sign and signed weight of the pair) and the reputation heuristic (the
  target's smoothed share of positive ratings) separate the signs perfectly: sign AUC and
  macro-F1 exactly 1; EdgeBank's signed-weight RMSE is exactly 0.
* The learned methods (the model, logistic regression, gradient boosting, the unsigned
  TGN) see a sign that is a fixed function of the target node: each must rank it almost
  perfectly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from models.evaluate import evaluate_model
from models.forecast import forecast_model
from models.train import TrainConfig
from models.train_job import train_run
from sim.store.database import open_store
from sim.store.importers import import_network

NODES = list(range(1, 17))
DISLIKED = {4, 8, 12, 16}
# Triad and activity features off: on 16 nodes every pair shares most neighbours, the
# existence MRR then peaks (epoch 5 of 25) before the sign head is calibrated, and the
# selection (sign AUC + MRR, sign AUC already 1) keeps that epoch: its forecast negative
# share is 0.30 against the true 0.23 (the ranking stays perfect).
SMALL = {"memory_dim": 8, "time_dim": 4, "msg_dim": 8, "embed_dim": 8, "hidden": 16,
         "neighbors": 5, "triads": False, "activity": False}
FAST = TrainConfig(epochs=25, batch_size=50, n_neg=10, select_neg=5, patience=25)


def pairs() -> list[tuple[int, int, int]]:
    """(source, target, signed rating) for each of the 32 pairs."""
    out = []
    for u in NODES:
        for step in (1, 5):
            v = (u - 1 + step) % len(NODES) + 1
            rating = 1 + (u * 7 + v) % 10
            out.append((u, v, -rating if v in DISLIKED else rating))
    return out


def stream_text(n_events: int = 1200, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    table = pairs()
    order = list(range(len(table))) + rng.integers(0, len(table), n_events - len(table)).tolist()
    lines = [f"{table[k][0]},{table[k][1]},{table[k][2]},{1_000_000 + 600 * i}"
             for i, k in enumerate(order)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic on any machine, and no oversubscription
    tmp = tmp_path_factory.mktemp("det")
    path = tmp / "det-net.csv"
    path.write_text(stream_text())
    db = str(tmp / "det.db")
    run = import_network(db, path).run_id
    result = train_run(db, run, train=FAST, model_overrides=SMALL, out_dir=tmp / "ckpt",
                       device="cpu", progress=False)
    report = evaluate_model(db, result.model_id, device="cpu", progress=False, record=False)
    torch.set_num_threads(threads)
    return {"db": db, "run": run, "model": result.model_id, "report": report, "tmp": tmp}


def test_the_stream_is_what_it_claims():
    table = pairs()
    assert len({(u, v) for u, v, _ in table}) == 32
    assert sum(r < 0 for *_, r in table) == 8  # 2 sources per disliked target
    assert all(1 <= abs(r) <= 10 for *_, r in table)


def test_memorising_baselines_are_exact(setup):
    m = setup["report"].metrics
    for method in ("edgebank", "reputation"):
        for part in ("val", "test"):
            assert m[method][part]["sign_auc"] == 1.0, (method, part)
            assert m[method][part]["sign_macro_f1"] == 1.0, (method, part)
            assert m[method][part]["sign_f1_neg"] == 1.0, (method, part)
    for part in ("val", "test"):
        assert m["edgebank"][part]["weight_rmse"] == pytest.approx(0.0, abs=1e-7)
        assert m["edgebank"][part]["weight_pearson"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("method", ["model", "logreg", "gbdt", "tgn"])
def test_every_learning_method_gets_the_sign_right(setup, method):
    test = setup["report"].metrics[method]["test"]
    assert test["sign_auc"] >= 0.99, test
    # the decision threshold is chosen on validation, so a few test events may fall on
    # the wrong side of it even when the ranking is perfect
    assert test["sign_macro_f1"] >= 0.85, test


def test_forecast_separates_the_signs_and_matches_the_negative_share(setup):
    db, mid = setup["db"], setup["model"]
    res = forecast_model(db, mid, plot=setup["tmp"] / "f.png", device="cpu", progress=False)
    rows = open_store(db).frame("SELECT * FROM forecasts WHERE model_id = :m ORDER BY seq",
                                {"m": mid})
    assert len(rows) == res.n_rows == 1200 - int(0.7 * 1200)
    # the stored truth is the imported stream itself
    table = {(u, v): r for u, v, r in pairs()}
    assert all(np.sign(table[(s, d)]) == st for s, d, st in
               zip(rows.src, rows.dst, rows.sign_true, strict=True))
    assert rows.weight_true.tolist() == pytest.approx(
        [table[(s, d)] / 10 for s, d in zip(rows.src, rows.dst, strict=True)])
    assert roc_auc_score(rows.sign_true > 0, rows.p_positive) >= 0.99
    # observed shares per window count the events on disliked targets
    n_disliked = int(rows.dst.isin(DISLIKED).sum())
    assert sum(w["n"] for w in res.windows) == len(rows)
    assert sum(w["observed_negative_share"] * w["n"] for w in res.windows) == pytest.approx(n_disliked)
    forecast_share = sum(w["forecast_negative_share"] * w["n"] for w in res.windows) / len(rows)
    assert forecast_share == pytest.approx(n_disliked / len(rows), abs=0.03)
    assert res.mae_negative_share < 0.05
