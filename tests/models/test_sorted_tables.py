"""Sorted key tables and the pair table built on them, against plain dict references."""

from __future__ import annotations

import pytest
import torch

from models.features import PairTable
from models.sorted_tables import SortedTables, find_keys, upsert


def _dict_pairs(events):
    table = {}
    for u, v, s, t in events:
        count = table.get((u, v), (0, 0.0, 0.0))[0]
        table[(u, v)] = (count + 1, s, t)
    return table


@pytest.mark.parametrize("min_recent", [1, 7, 10**9])
def test_pair_table_matches_a_dict_of_every_pair(min_recent):
    g = torch.Generator().manual_seed(11)
    n, pairs = 9, PairTable(9, min_recent=min_recent)
    seen = []
    for batch in range(25):
        b = int(torch.randint(1, 30, (1,), generator=g))
        u, v = torch.randint(0, n, (b,), generator=g), torch.randint(0, n, (b,), generator=g)
        s = torch.where(torch.rand(b, generator=g) < 0.6, 1.0, -1.0)
        t = torch.arange(b, dtype=torch.float64) + 100.0 * batch
        # Lookups come before the batch is observed, as in the protocol.
        qu, qv = torch.randint(0, n, (40,), generator=g), torch.randint(0, n, (40,), generator=g)
        count, sign, last_t = pairs.lookup(qu, qv)
        ref = _dict_pairs(seen)
        want = [ref.get((a, c), (0, 0.0, 0.0)) for a, c in zip(qu.tolist(), qv.tolist(), strict=True)]
        assert count.tolist() == [float(w[0]) for w in want]
        assert sign.tolist() == [w[1] for w in want]
        assert last_t.tolist() == [w[2] for w in want]
        assert count.dtype == torch.float32 and last_t.dtype == torch.float64
        pairs.observe(u, v, s, t)
        seen += list(zip(u.tolist(), v.tolist(), s.tolist(), t.tolist(), strict=True))
    ref = _dict_pairs(seen)
    keys, count, sign, last_t = pairs.table()
    assert keys.tolist() == sorted(a * n + c for a, c in ref)
    assert count.tolist() == [ref[(k // n, k % n)][0] for k in keys.tolist()]
    assert sign.tolist() == [ref[(k // n, k % n)][1] for k in keys.tolist()]
    assert last_t.tolist() == [ref[(k // n, k % n)][2] for k in keys.tolist()]
    assert len(pairs) == len(ref) and pairs.nbytes() == len(ref) * (8 + 4 + 4 + 8)


def test_a_saved_state_is_a_copy_and_restores_the_table():
    pairs = PairTable(5, min_recent=10**9)
    pairs.observe(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([1.0, -1.0]),
                  torch.tensor([1.0, 2.0], dtype=torch.float64))
    saved = pairs.state()
    pairs.observe(torch.tensor([0]), torch.tensor([1]), torch.tensor([-1.0]),
                  torch.tensor([3.0], dtype=torch.float64))
    assert pairs.lookup(torch.tensor([0]), torch.tensor([1]))[0].tolist() == [2.0]
    pairs.load_state(saved)
    count, sign, t = pairs.lookup(torch.tensor([0, 1, 4]), torch.tensor([1, 2, 4]))
    assert count.tolist() == [1.0, 1.0, 0.0] and sign.tolist() == [1.0, -1.0, 0.0]
    assert t.tolist() == [1.0, 2.0, 0.0]
    pairs.reset()
    assert len(pairs) == 0


def test_sorted_table_helpers_on_hand_written_keys():
    keys = torch.tensor([2, 5, 9])
    row, ok = find_keys(keys, torch.tensor([5, 3, 9, 10]))
    assert ok.tolist() == [True, False, True, False] and row[ok].tolist() == [1, 2]
    table = (keys, torch.tensor([20, 50, 90]))
    new = upsert(table, torch.tensor([1, 5, 7]),
                 [(torch.tensor([10, 55, 70]), torch.tensor([True, True, False]))])
    assert new[0].tolist() == [1, 2, 5, 7, 9] and new[1].tolist() == [10, 20, 55, 0, 90]
    assert table[1].tolist() == [20, 50, 90]  # the given table is unchanged
    store = SortedTables((torch.int32,), min_recent=1)
    every = torch.ones(2, dtype=torch.bool)
    store.update(torch.tensor([4, 8]), [(torch.tensor([1, 2], dtype=torch.int32), every)])
    store.update(torch.tensor([4, 6]), [(torch.tensor([3, 4], dtype=torch.int32), every)])
    assert store.lookup(torch.tensor([8, 4, 6, 5]))[0].tolist() == [2, 3, 4, 0]
    assert store.table()[0].tolist() == [4, 6, 8] and len(store) == 3
    # A masked column keeps its value where the mask does not hold.
    store.update(torch.tensor([4, 9]), [(torch.tensor([7, 5], dtype=torch.int32),
                                         torch.tensor([False, True]))])
    assert store.lookup(torch.tensor([4, 9]))[0].tolist() == [3, 5]
