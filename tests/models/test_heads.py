"""Options of the attention embedding and the pair heads."""

from __future__ import annotations

import torch

from models.modules import NeighborAttention, PairHeads, TimeEncoder


def test_per_sign_attention_is_two_separate_softmaxes():
    torch.manual_seed(0)
    att = NeighborAttention(6, TimeEncoder(4), 3, 8, heads=2, per_sign=True)
    x, table = torch.randn(2, 6), torch.randn(5, 6)
    row = torch.tensor([0, 0, 0, 1, 1])
    index = torch.tensor([0, 1, 2, 3, 4])
    dt = torch.rand(5)
    edge = torch.tensor([[1.0, 0.5, 0], [-1.0, 0.2, 1], [1.0, 0.9, 0], [-1.0, 0.3, 0],
                         [-1.0, 0.1, 1]])
    full = att(x, table, row, index, dt, edge)
    pos, neg = edge[:, 0] > 0, edge[:, 0] < 0

    def only(mask, e=edge):
        return att(x, table, row[mask], index[mask], dt[mask], e[mask])

    # The output map is linear in the two concatenated aggregates, and each aggregate
    # depends on its own sign's interactions only.
    base = att.root(x) + att.out.bias
    torch.testing.assert_close(full, only(pos) + only(neg) - base)
    # A node's positive neighbours never lose attention weight to its negative ones:
    # changing the negative interactions leaves the positive aggregate as it was.
    louder = edge.clone()
    louder[neg, 1] *= 5
    changed = att(x, table, row, index, dt, louder)
    assert not torch.allclose(changed, full)
    torch.testing.assert_close(changed - only(neg, louder) + base, only(pos))
    # with one softmax, the negative interactions do take weight from the positive ones
    one = NeighborAttention(6, TimeEncoder(4), 3, 8, heads=2)
    one.load_state_dict({k: v for k, v in att.state_dict().items() if not k.startswith("out")},
                        strict=False)
    a = one(x, table, row, index, dt, edge) - one(x, table, row[pos], index[pos], dt[pos],
                                                  edge[pos])
    assert a.abs().max() > 1e-3
    single = NeighborAttention(6, TimeEncoder(4), 3, 8, heads=2)
    assert single.out.in_features == 8 and att.out.in_features == 16


def test_sign_conditioned_weight_head():
    torch.manual_seed(1)
    heads = PairHeads(4, 3, 8, split_trunk=True, sign_weight=True)
    z = torch.randn(5, 4)
    iu, iv, f = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 0]), torch.randn(3, 3)
    exist, sign, weight, classes = heads(z, iu, iv, f)
    assert exist.shape == sign.shape == weight.shape == (3,) and classes.shape == (3, 3)
    torch.testing.assert_close(heads.exist(z, iu, iv, f), exist)
    hs = heads.sign_trunk(z, iu, iv, f)
    o = heads.sign_out(hs)
    p = torch.sigmoid(o[:, 0])
    expected = p * torch.sigmoid(o[:, 1]) - (1 - p) * torch.sigmoid(o[:, 2])
    torch.testing.assert_close(weight, expected)
    assert (weight.abs() < 1).all()
    plain = PairHeads(4, 3, 8)
    assert plain.out.out_features == 6
    torch.testing.assert_close(plain.exist(z, iu, iv, f), plain(z, iu, iv, f)[0])


def test_attention_keys_equal_separate_time_and_edge_maps_and_old_checkpoints_load():
    torch.manual_seed(1)
    att = NeighborAttention(6, TimeEncoder(4), 3, 8, heads=2)
    x, table = torch.randn(2, 6), torch.randn(3, 6)
    row, index = torch.tensor([0, 0, 1]), torch.tensor([0, 2, 1])
    dt, edge = torch.rand(3), torch.randn(3, 3)
    # A checkpoint from before the merge held the time and edge maps as two matrices.
    old = {k: v for k, v in att.state_dict().items() if k != "kv_rel.weight"}
    w_time, w_edge = att.kv_rel.weight.detach().split([4, 3], dim=1)
    old["kv_time.weight"], old["kv_edge.weight"] = w_time.clone(), w_edge.clone()
    fresh = NeighborAttention(6, TimeEncoder(4), 3, 8, heads=2)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.kv_rel.weight, att.kv_rel.weight)
    # Keys and values are the neighbour's map plus the two per-edge maps.
    out = fresh(x, table, row, index, dt, edge)
    kv = (fresh.kv_node(table)[index] + fresh.time_enc(dt) @ w_time.t() + edge @ w_edge.t())
    key, val = kv.view(-1, 2, 2, 4).unbind(1)
    q = fresh.q(torch.cat([x, fresh.time_enc(torch.zeros(2))], dim=-1))[row].view(-1, 2, 4)
    score = (q * key).sum(-1) / 2.0
    agg = torch.zeros(2, 2, 4)
    for node in (0, 1):
        sel = row == node
        agg[node] = (torch.softmax(score[sel], dim=0).unsqueeze(-1) * val[sel]).sum(0)
    torch.testing.assert_close(out, fresh.root(x) + fresh.out(agg.view(2, 8)))
