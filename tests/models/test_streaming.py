"""Events streamed from a real database in chunks equal the in-memory load, in order."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from models.data import first_batch_size, iter_batches, load_events, split_by_time
from models.stream import (
    iter_event_chunks,
    load_window,
    stream_batches,
    stream_info,
)
from sim.contract import EventBatch
from sim.errors import SignsimError
from sim.store.database import open_store
from sim.store.writer import EventWriter

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")


def write_run(store, t, src, dst, sign, weight, delivered) -> int:
    run = store.create_run(scenario="stream", arm="a", seed=0)
    writer = EventWriter(store, run, cause_names=("organic",), block_names=(None, "ban"))
    writer.add(EventBatch(t=np.asarray(t, float), src=np.asarray(src), dst=np.asarray(dst),
                          sign=np.asarray(sign), weight=np.asarray(weight, float),
                          blocked=(~np.asarray(delivered, bool)).astype(np.int64),
                          cause=np.zeros(len(t), dtype=np.int64)))
    writer.close()
    store.finish_run(run)
    return run


def tied_run(store, n: int = 300, seed: int = 0) -> int:
    """Many events share a time (ties across chunk boundaries); some are blocked."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 25, n)).astype(float) * 0.5
    src = rng.integers(1000, 1040, n)
    dst = rng.integers(1000, 1040, n)
    sign = np.where(rng.random(n) < 0.3, -1, 1)
    return write_run(store, t, src, dst, sign, rng.integers(1, 11, n) / 10,
                     rng.random(n) > 0.1)


def assert_same(a, b) -> None:
    for name in ("src", "dst", "t", "sign", "weight"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.seq, b.seq)


def check_store(store, run: int) -> None:
    ev = load_events(store, run)
    info = stream_info(store, run)
    assert np.array_equal(info.node_ids, ev.node_ids)
    assert info.n_events == len(ev)
    assert info.split == split_by_time(ev)
    for chunk in (1, 7, 64, 10_000):
        got = list(iter_event_chunks(store, info, chunk=chunk))
        assert [off for off, _ in got] == list(range(0, len(ev), chunk))
        assert all(len(c) == min(chunk, len(ev) - off) for off, c in got)
        whole = load_window(store, info, 0, len(ev), chunk)
        assert_same(whole, ev)
    # any window, by keyset from an offset: the same events as the in-memory slice
    for a, b in ((1, 2), (37, 161), (len(ev) - 5, len(ev))):
        win = load_window(store, info, a, b, chunk=9)
        sl = ev.batch(a, b)
        for name in ("src", "dst", "t", "sign", "weight"):
            assert torch.equal(getattr(win, name), getattr(sl, name))
        assert np.array_equal(win.seq, ev.seq[a:b])


def test_chunked_stream_equals_the_in_memory_load_on_sqlite(tmp_path):
    store = open_store(str(tmp_path / "s.db"))
    check_store(store, tied_run(store))




@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_chunked_stream_equals_the_in_memory_load_on_postgres(pg_db):
    store = open_store(pg_db)
    check_store(store, tied_run(store, seed=1))
    store.dispose()


def test_split_counts_float32_times_like_the_in_memory_split(tmp_path):
    # times 1 microday apart collide in float32 around 1000 days: the streamed split must
    # count the events whose float32 time equals the quantile's, as split_by_time does
    store = open_store(str(tmp_path / "f.db"))
    n = 400
    t = 1000.0 + np.arange(n) * 1e-6 + np.repeat([0.0, 1.0], n // 2)
    run = write_run(store, t, np.arange(n) % 17, (np.arange(n) + 3) % 17,
                    np.ones(n, int), np.ones(n), np.ones(n, bool))
    ev = load_events(store, run)
    assert len(torch.unique(ev.t)) < n  # collisions happen
    for train, val in ((0.3, 0.2), (0.7, 0.15), (0.55, 0.4)):
        try:
            expected = split_by_time(ev, train, val)
        except SignsimError:
            with pytest.raises(SignsimError):
                stream_info(store, run, train, val)
            continue
        assert stream_info(store, run, train, val).split == expected


@pytest.mark.parametrize("batch,first", [(50, None), (50, 20), (64, 5), (1000, 300)])
def test_stream_batches_cross_chunks_like_iter_batches(tmp_path, batch, first):
    store = open_store(str(tmp_path / "b.db"))
    run = tied_run(store, n=257)
    ev = load_events(store, run)
    info = stream_info(store, run)
    want = list(iter_batches(ev, 0, 200, batch, first))
    got = list(stream_batches(iter_event_chunks(store, info, 0, 200, chunk=13), batch, first))
    assert [b.start for b in got] == [b.start for b in want]
    for g, w in zip(got, want, strict=True):
        for name in ("src", "dst", "t", "sign", "weight"):
            assert torch.equal(getattr(g, name), getattr(w, name))


def test_first_batch_size_is_a_random_multiple_of_the_chunk():
    gen = torch.Generator().manual_seed(0)
    sizes = [first_batch_size(1000, 200, gen) for _ in range(400)]
    assert set(sizes) == {None, 200, 400, 600, 800}
    counts = np.bincount([0 if s is None else s // 200 for s in sizes])
    assert counts.min() > 400 / 5 * 0.6  # roughly uniform over the 5 offsets
    # one chunk per batch (small-batch training): nothing is drawn, nothing moves
    gen2 = torch.Generator().manual_seed(0)
    assert first_batch_size(200, 200, gen2) is None
    assert first_batch_size(200, 0, gen2) is None
    assert torch.equal(gen2.get_state(), torch.Generator().manual_seed(0).get_state())


def test_stream_errors_are_clear(tmp_path):
    store = open_store(str(tmp_path / "e.db"))
    run = write_run(store, [1.0, 2.0], [1, 2], [2, 1], [1, 1], [1.0, 1.0], [False, False])
    with pytest.raises(SignsimError, match="no delivered interactions"):
        stream_info(store, run)
    run2 = tied_run(store)
    info = stream_info(store, run2)
    with pytest.raises(SignsimError, match="Chunk size"):
        next(iter_event_chunks(store, info, chunk=0))
