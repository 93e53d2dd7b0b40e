"""Export a run as PyTorch Geometric ``TemporalData`` fields (a ``.pt`` of plain tensors).

The file holds a dict of tensors -- ``src``, ``dst``, ``t`` (seconds since the run's first
event), ``msg`` (``[sign, weight]`` per event) and ``y`` (sign as 0/1) -- so it loads with
``torch.load(path, weights_only=True)`` and, where PyG is installed,
``TemporalData(**torch.load(path, weights_only=True))``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sim.store.database import Store

__all__ = ["export_temporal_data"]


def export_temporal_data(store: Store, run_id: int, path: str | Path) -> Path:
    """Write the delivered interactions of ``run_id`` as TemporalData tensors."""
    store.run(run_id)
    ev = store.interactions(run_id, delivered_only=True)
    t = ev["t"].astype(np.float64)
    t0 = float(t.min()) if t.size else 0.0
    sign = ev["sign"].astype(np.float32)
    fields = {
        "src": torch.as_tensor(ev["src"].astype(np.int64)),
        "dst": torch.as_tensor(ev["dst"].astype(np.int64)),
        "t": torch.as_tensor(np.round((t - t0) * 86400.0).astype(np.int64)),
        "msg": torch.as_tensor(np.stack([sign, ev["weight"].astype(np.float32)], axis=1)),
        "y": torch.as_tensor((sign > 0).astype(np.int64)),
    }
    out = Path(path)
    torch.save(fields, out)
    return out
