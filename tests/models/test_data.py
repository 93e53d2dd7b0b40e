"""From the store to tensors: id space, chronological order, splits, batches, run refs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data import (
    events_from_arrays,
    iter_batches,
    load_events,
    resolve_run,
    split_by_time,
)
from sim.contract import EventBatch
from sim.errors import SignsimError
from sim.store.database import open_store
from sim.store.writer import EventWriter


def write_run(store, rows, scenario="toy", status="complete"):
    run = store.create_run(scenario=scenario, arm="a", seed=0)
    writer = EventWriter(store, run, cause_names=("organic",), block_names=(None, "ban"))
    t, s, d, sign, w, delivered = (np.array(c) for c in zip(*rows, strict=True))
    writer.add(EventBatch(t=t, src=s, dst=d, sign=sign, weight=w,
                          blocked=(~delivered.astype(bool)).astype(np.int64),
                          cause=np.zeros(len(t), dtype=np.int64)))
    writer.close()
    if status == "complete":
        store.finish_run(run)
    return run


ROWS = [  # t, src, dst, sign, weight, delivered
    (2.0, 50, 10, 1, 0.5, True),
    (1.0, 10, 70, -1, 0.2, True),
    (2.0, 70, 50, 1, 0.9, False),
    (3.0, 10, 50, -1, 1.0, True),
]


def test_load_events_sorts_remaps_and_skips_blocked(tmp_path):
    store = open_store(str(tmp_path / "d.db"))
    run = write_run(store, ROWS)
    ev = load_events(store, run)
    assert ev.node_ids.tolist() == [10, 50, 70]  # one id space for sources and targets
    assert ev.seq.tolist() == [1, 0, 3]
    assert ev.src.tolist() == [0, 1, 0] and ev.dst.tolist() == [2, 0, 1]
    assert ev.t.tolist() == [1.0, 2.0, 3.0]
    assert ev.sign.tolist() == [-1.0, 1.0, -1.0]
    assert ev.weight.tolist() == pytest.approx([0.2, 0.5, 1.0])
    assert ev.src.dtype == torch.long and ev.t.dtype == torch.float32
    assert load_events(store, run, delivered_only=False).seq.tolist() == [1, 0, 2, 3]
    b = ev.batch(1, 3)
    assert b.start == 1 and b.signed_weight.tolist() == pytest.approx([0.5, -1.0])


def test_unknown_or_empty_runs_are_errors(tmp_path):
    store = open_store(str(tmp_path / "d.db"))
    with pytest.raises(SignsimError, match="No run with id 9"):
        load_events(store, 9)
    run = store.create_run(scenario="empty")
    with pytest.raises(SignsimError, match="no delivered interactions"):
        load_events(store, run)


def test_resolve_run_by_id_or_name(tmp_path):
    store = open_store(str(tmp_path / "d.db"))
    first = write_run(store, ROWS, scenario="net")
    second = write_run(store, ROWS, scenario="net")
    write_run(store, ROWS, scenario="net", status="running")
    assert resolve_run(store, str(first)) == first
    assert resolve_run(store, "net") == second  # newest complete run of that name
    with pytest.raises(SignsimError, match="No complete run with id or name 'other'.*net"):
        resolve_run(store, "other")
    with pytest.raises(SignsimError, match="No run with id 42"):
        resolve_run(store, 42)


def test_split_by_time_keeps_equal_times_together():
    t = np.repeat(np.arange(20.0), 5)  # 100 events, 5 per time
    ev = events_from_arrays(np.zeros(100), np.ones(100), t, np.ones(100), np.ones(100))
    sp = split_by_time(ev)
    assert (sp.train_end, sp.val_end, sp.n) == (70, 85, 100)
    assert ev.t[sp.train_end - 1] < ev.t[sp.train_end]
    uneven = events_from_arrays(np.zeros(10), np.ones(10), [0, 0, 0, 0, 0, 0, 0, 1, 2, 3],
                                np.ones(10), np.ones(10))
    sp2 = split_by_time(uneven)
    assert uneven.t[sp2.train_end - 1] < uneven.t[sp2.train_end]
    assert sp2.range("test") == (sp2.val_end, 10)
    with pytest.raises(SignsimError, match="Cannot split"):
        split_by_time(events_from_arrays([0, 0], [1, 1], [0, 0], [1, 1], [1, 1]))
    with pytest.raises(SignsimError, match="Bad split fractions"):
        split_by_time(ev, 0.9, 0.2)
    with pytest.raises(SignsimError, match="Unknown split part"):
        sp.range("holdout")


def test_batches_are_consecutive_and_cover_the_range():
    ev = events_from_arrays(np.arange(450) % 7, (np.arange(450) + 1) % 7, np.arange(450.0),
                            np.ones(450), np.ones(450))
    batches = list(iter_batches(ev, 10, 450))
    assert [len(b) for b in batches] == [200, 200, 40]
    assert [b.start for b in batches] == [10, 210, 410]
    with pytest.raises(SignsimError, match="Batch size"):
        list(iter_batches(ev, 0, 10, 0))


def test_events_from_arrays_validates():
    with pytest.raises(SignsimError, match="same length"):
        events_from_arrays([1], [2, 3], [0], [1], [1])
    with pytest.raises(SignsimError, match=r"\+1 or -1"):
        events_from_arrays([1], [2], [0], [0], [1])
