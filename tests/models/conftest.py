"""Shared fixtures of the model tests: devices and small streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data import SignedEvents, events_from_arrays

# The CUDA variants exist only where there is a GPU (`python -m pytest tests/models -k cuda`
# on a GPU machine); elsewhere they are not collected rather than reported as skipped.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def random_stream(n_events: int = 400, n_nodes: int = 30, seed: int = 0,
                  neg_share: float = 0.3) -> SignedEvents:
    """A random signed stream with reciprocity and a few negative-prone nodes."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n_nodes, n_events)
    dst = (src + 1 + rng.integers(0, n_nodes - 1, n_events)) % n_nodes
    bad = np.isin(dst, np.arange(0, n_nodes, 7))
    p_neg = np.where(bad, 0.8, neg_share / 2)
    sign = np.where(rng.random(n_events) < p_neg, -1, 1)
    weight = rng.integers(1, 11, n_events) / 10
    t = np.sort(rng.random(n_events) * 100)
    return events_from_arrays(src + 100, dst + 100, t, sign, weight)
