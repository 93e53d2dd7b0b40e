"""Memories on hand-written streams: exact updates, balanced routing, pending events."""

from __future__ import annotations

import math

import pytest
import torch

from models.data import events_from_arrays, iter_batches
from models.memory import RecentNeighbors
from models.signed_tgn import ModelConfig, build_model

from .conftest import DEVICES

A, B, C = 0, 1, 2


def tiny_model(variant: str, device: str):
    """Memory size 1 with weights set by hand.

    Message functions: ``relu(s_partner + 2)`` for positive events and ``relu(s_partner +
    3)`` for negative ones (the time encoding and edge features get weight 0). GRUs with
    zero weights except the candidate input weight ``k`` (1 for the positive or only
    memory, 2 for the negative one): ``h' = 0.5 * tanh(k * msg) + 0.5 * h``.
    """
    cfg = ModelConfig(num_nodes=3, variant=variant, memory_dim=1, time_dim=1, msg_dim=1,
                      embed_dim=2, hidden=2, heads=1, neighbors=2, use_features=False)
    model = build_model(cfg)
    with torch.no_grad():
        model.time_enc.lin.weight.zero_()
        model.time_enc.lin.bias.fill_(math.pi / 2)
        for i, msg in enumerate(model.memory.msg):
            msg.lin.weight.zero_()
            msg.lin.weight[0, 1] = 1.0  # [s_self, s_partner, phi, sign, weight, role]
            msg.lin.bias.fill_(2.0 + i)
        for k, gru in enumerate(model.memory.grus):
            for p in gru.parameters():
                p.zero_()
            gru.weight_ih[2, 0] = 1.0 + k
    return model.to(device)


def stream(rows, device):
    src, dst, t, sign = zip(*rows, strict=True)
    ev = events_from_arrays(list(src), list(dst), list(t), list(sign), [0.5] * len(rows))
    return ev.to(device)


def g(msg: float, h: float = 0.0, k: float = 1.0) -> float:
    return 0.5 * math.tanh(k * msg) + 0.5 * h


def snap(model):
    return model.memory.snapshot().cpu()


@pytest.mark.parametrize("device", DEVICES)
def test_balanced_aggregation_exact_values(device):
    model = tiny_model("semba", device)
    ev = stream([(A, B, 1.0, 1), (A, C, 2.0, -1), (C, B, 3.0, 1), (B, A, 3.5, -1)], device)
    model.observe(ev.batch(0, 1))  # A -> B positive
    m = snap(model)
    # Friend of a friend feeds the positive memory, friend's enemy the negative memory.
    assert m[0, A, 0] == pytest.approx(g(2.0)) and m[1, A, 0] == pytest.approx(g(2.0, k=2))
    assert m[0, B, 0] == pytest.approx(g(2.0)) and m[1, B, 0] == pytest.approx(g(2.0, k=2))
    assert m[:, C].abs().max() == 0

    model.observe(ev.batch(1, 2))  # A -> C negative
    m = snap(model)
    a_pos, a_neg = g(2.0), g(2.0, k=2)  # A's persisted memories after batch 1
    # Negative event: message function "+3"; A's positive memory reads C's negative
    # memory (enemy's enemy), A's negative memory reads C's positive one (both still 0).
    assert m[0, A, 0] == pytest.approx(g(3.0, a_pos))
    assert m[1, A, 0] == pytest.approx(g(3.0, a_neg, k=2))
    # C's positive memory reads A's negative memory, its negative memory A's positive one.
    assert m[0, C, 0] == pytest.approx(g(3.0 + a_neg))
    assert m[1, C, 0] == pytest.approx(g(3.0 + a_pos, k=2))
    # B still holds its pending event from batch 1, whose message read A's memory as it
    # stood before that batch (zero), not A's memory now.
    assert m[0, B, 0] == pytest.approx(g(2.0)) and m[1, B, 0] == pytest.approx(g(2.0, k=2))

    model.observe(ev.batch(2, 4))  # C -> B positive, then B -> A negative, one batch
    mem = model.memory
    # Observing persisted the pending events of A, B, C (values as in the snapshot) and
    # kept one pending event per node: the last one (B's is B -> A, as the source).
    assert mem.memory[:, :, 0].cpu() == pytest.approx(m[:, :, 0])
    assert mem.pend_count.tolist() == [1, 1, 1]
    # Each pending event holds its partner's memories from before the batch: A's is
    # B -> A (partner B), B's is B -> A (partner A), C's is C -> B (partner B).
    partner = mem.pend_partner[:, 0, :, 0].cpu()
    for node, other in ((A, B), (B, A), (C, B)):
        assert partner[node].tolist() == pytest.approx(m[:, other, 0].tolist())
    assert mem.pend_edge[:, 0].tolist() == [[-1.0, 0.5, 1.0], [-1.0, 0.5, 0.0],
                                            [1.0, 0.5, 0.0]]
    assert mem.last_update.tolist() == [2.0, 1.0, 2.0]
    m3 = snap(model)
    b_pos, b_neg = m[0, B, 0].item(), m[1, B, 0].item()
    x_pos, x_neg = m[0, A, 0].item(), m[1, A, 0].item()
    assert m3[0, B, 0] == pytest.approx(g(3.0 + x_neg, b_pos))  # enemy's enemy
    assert m3[1, B, 0] == pytest.approx(g(3.0 + x_pos, b_neg, k=2))  # enemy's friend


@pytest.mark.parametrize("device", DEVICES)
def test_no_balance_reads_the_same_memory(device):
    model = tiny_model("no_balance", device)
    ev = stream([(A, B, 1.0, 1), (A, C, 2.0, -1)], device)
    model.observe(ev.batch(0, 1))
    model.observe(ev.batch(1, 2))
    m = snap(model)
    a_pos, a_neg = g(2.0), g(2.0, k=2)
    assert m[0, C, 0] == pytest.approx(g(3.0 + a_pos))  # positive reads positive
    assert m[1, C, 0] == pytest.approx(g(3.0 + a_neg, k=2))  # negative reads negative


@pytest.mark.parametrize("device", DEVICES)
def test_unsigned_has_one_memory_and_one_message_function(device):
    model = tiny_model("unsigned", device)
    assert model.memory.memory.shape == (1, 3, 1) and len(model.memory.msg) == 1
    ev = stream([(A, B, 1.0, 1), (A, C, 2.0, -1)], device)
    model.observe(ev.batch(0, 1))
    model.observe(ev.batch(1, 2))
    m = snap(model)
    assert m[0, A, 0] == pytest.approx(g(2.0, g(2.0)))
    assert m[0, C, 0] == pytest.approx(g(2.0 + g(2.0)))


def reference_memory(model, ev, batch_size):
    """Event-by-event reference of the memory semantics, with the model's own modules."""
    mem = model.memory
    n, dim = model.num_nodes, mem.memory_dim
    state = torch.zeros(mem.n_mem, n, dim)
    last = torch.zeros(n)
    pending: dict[int, tuple[torch.Tensor, float, float, float, float]] = {}

    def apply(i):
        other, t, s, w, role = pending[i]
        t_enc = mem.time_enc(torch.tensor([t - last[i].item()]))
        edge = torch.tensor([[s, w, role]])
        out = []
        for m in range(mem.n_mem):
            partner = 1 - m if (mem.balanced and s < 0) else m
            fn = mem.msg[0] if (len(mem.msg) == 1 or s > 0) else mem.msg[1]
            msg = fn(state[m, i:i + 1], other[partner].view(1, -1), t_enc, edge)
            out.append(mem.grus[m](msg, state[m, i:i + 1])[0])
        return torch.stack(out), t

    with torch.no_grad():
        for batch in iter_batches(ev, 0, len(ev), batch_size):
            nodes = sorted(set(batch.src.tolist()) | set(batch.dst.tolist()))
            new = {i: apply(i) for i in nodes if i in pending}
            for i, (value, t) in new.items():
                state[:, i] = value
                last[i] = t
                del pending[i]
            for s, d, t, sg, w in zip(batch.src.tolist(), batch.dst.tolist(),
                                      batch.t.tolist(), batch.sign.tolist(),
                                      batch.weight.tolist(), strict=True):
                # The partner's memories as they stand before the batch.
                pending[s] = (state[:, d].clone(), t, sg, w, 0.0)
                pending[d] = (state[:, s].clone(), t, sg, w, 1.0)
        final = state.clone()
        for i in pending:
            final[:, i] = apply(i)[0]
    return final


@pytest.mark.parametrize("variant", ["semba", "no_balance", "unsigned"])
def test_random_weights_match_the_reference(variant):
    torch.manual_seed(3)
    rows = [(0, 1, 0.5, 1, 0.3), (1, 2, 0.7, -1, 1.0), (2, 0, 1.0, 1, 0.2),
            (0, 3, 1.0, -1, 0.9), (3, 1, 2.5, 1, 0.5), (1, 0, 2.6, -1, 0.1),
            (2, 3, 4.0, 1, 0.7), (3, 2, 4.0, 1, 0.4), (0, 2, 6.0, -1, 0.8),
            (1, 3, 7.5, 1, 0.6)]
    src, dst, t, sign, w = zip(*rows, strict=True)
    ev = events_from_arrays(list(src), list(dst), list(t), list(sign), list(w))
    model = build_model(ModelConfig(num_nodes=4, variant=variant, memory_dim=5, time_dim=3,
                                    msg_dim=4, use_features=False))
    for bs in (1, 3, 4):
        model.reset_state()
        for batch in iter_batches(ev, 0, len(ev), bs):
            model.observe(batch)
        expected = reference_memory(model, ev, bs)
        torch.testing.assert_close(model.memory.snapshot(), expected, rtol=1e-5, atol=1e-6)


def test_mean_aggregator_averages_a_nodes_batch_messages():
    model = build_model(ModelConfig(num_nodes=3, memory_dim=4, time_dim=2, msg_dim=3,
                                    aggregator="mean", slots=3, use_features=False))
    ev = events_from_arrays([0, 0, 1], [1, 2, 2], [1.0, 1.0, 1.0], [1, -1, 1], [1, 1, 1])
    model.observe(ev.batch(0, 3))
    mem = model.memory
    assert mem.pend_count.tolist() == [2, 2, 2]
    with torch.no_grad():
        node0 = mem(torch.tensor([0]))[0][:, 0]
        t_enc = mem.time_enc(torch.tensor([1.0, 1.0]))
        edge = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
        zero = torch.zeros(2, 4)
        for m in range(2):
            msgs = torch.stack([mem.msg[0](zero[:1], zero[:1], t_enc[:1], edge[:1])[0],
                                mem.msg[1](zero[:1], zero[:1], t_enc[1:], edge[1:])[0]])
            want = mem.grus[m](msgs.mean(0, keepdim=True), torch.zeros(1, 4))[0]
            torch.testing.assert_close(node0[m], want)


def test_recent_neighbors_keep_the_last_k_in_both_directions():
    nb = RecentNeighbors(num_nodes=4, size=2)
    ev = events_from_arrays([0, 0, 0, 1], [1, 2, 3, 0], [1.0, 2.0, 3.0, 4.0], [1, -1, 1, -1],
                            [0.1, 0.2, 0.3, 0.4])
    nb.observe(ev.src[:3], ev.dst[:3], ev.t[:3], ev.sign[:3], ev.weight[:3])
    nb.observe(ev.src[3:], ev.dst[3:], ev.t[3:], ev.sign[3:], ev.weight[3:])
    row, other, t, edge = nb(torch.tensor([0, 3]))
    got = sorted(zip(row.tolist(), other.tolist(), t.tolist(), edge[:, 2].tolist(),
                     strict=True))
    # Node 0: made 0->1, 0->2, 0->3, then received 1->0; the last two are 0->3 and 1->0.
    assert got == [(0, 1, 4.0, 1.0), (0, 3, 3.0, 0.0), (1, 0, 3.0, 1.0)]
    assert nb.count.tolist() == [4, 2, 1, 1]


def test_a_read_with_gradients_recomputes_the_stored_current_memory():
    torch.manual_seed(5)
    n = 6
    g_ = torch.Generator().manual_seed(5)
    src = torch.randint(0, n, (40,), generator=g_)
    dst = (src + torch.randint(1, n, (40,), generator=g_)) % n
    sign = torch.where(torch.rand(40, generator=g_) < 0.3, -1, 1)
    ev = events_from_arrays(src.tolist(), dst.tolist(), torch.arange(40.0).tolist(),
                            sign.tolist(), torch.rand(40, generator=g_).tolist())
    model = build_model(ModelConfig(num_nodes=n, memory_dim=5, time_dim=3, msg_dim=4,
                                    use_features=False))
    for batch in iter_batches(ev, 0, len(ev), 7):
        model.observe(batch)
    nodes = torch.arange(n)
    with torch.no_grad():
        read, last = model.memory(nodes)
    assert model.memory.pend_count.sum() > 0
    live, live_last = model.memory(nodes)
    assert live.requires_grad and not read.requires_grad
    torch.testing.assert_close(live.detach(), read)
    assert torch.equal(live_last, last)
    live.sum().backward()
    assert model.memory.grus[0].weight_ih.grad.abs().sum() > 0
