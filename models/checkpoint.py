"""Checkpoints and the ``models`` table.

A checkpoint holds ``{'state_dict': ..., 'config': {...}}`` with a JSON-safe config and is
read back only with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from models.signed_tgn import ModelConfig, SignedTGN, build_model
from sim.errors import SignsimError
from sim.store.database import Store

__all__ = ["load_checkpoint", "record_model", "save_checkpoint"]


def save_checkpoint(path: str | Path, model: SignedTGN, extra: dict[str, Any]) -> Path:
    """Write ``{'state_dict', 'config'}``; ``config`` = model config + ``extra`` (JSON-safe)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    config = {"model": model.config.to_dict(), **extra}
    json.dumps(config)  # refuse anything that is not JSON-safe
    torch.save({"state_dict": model.state_dict(), "config": config}, p)
    return p


def load_checkpoint(
    path: str | Path, num_nodes: int | None = None, device: torch.device | str = "cpu"
) -> tuple[SignedTGN, dict[str, Any]]:
    """Load a checkpoint with ``weights_only=True`` and rebuild the model.

    Args:
        path: The checkpoint file.
        num_nodes: Size the state for this many nodes (default: as trained).
        device: Where to put the model.

    Raises:
        SignsimError: Missing or unreadable checkpoint.
    """
    p = Path(path)
    if not p.exists():
        raise SignsimError(f"Checkpoint '{p}' does not exist.")
    try:
        data = torch.load(p, weights_only=True, map_location=device)
        config = data["config"]
        mcfg = dict(config["model"])
    except Exception as exc:  # any unreadable file is a user error here
        raise SignsimError(
            f"Checkpoint '{p}' cannot be read as a signsim checkpoint: {exc}"
        ) from None
    if num_nodes is not None:
        mcfg["num_nodes"] = num_nodes
    try:
        model = build_model(ModelConfig.from_dict(mcfg)).to(device)
        model.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        what = "has no state_dict" if isinstance(exc, KeyError) else (
            f"does not fit its own configuration ({str(exc).splitlines()[0][:200]})")
        raise SignsimError(
            f"Checkpoint '{p}' {what}; it was not written by this version of signsim's "
            "`signsim train`, or it was edited. Train a new one with `signsim train RUN`."
        ) from None
    return model, config


def record_model(store: Store, name: str, run_id: int, ckpt: Path, config: dict[str, Any],
                  metrics: dict[str, Any]) -> int:
    """Add a row to the ``models`` table; returns its id."""
    from sqlalchemy import insert

    from sim.store.schema import ModelRecord

    row = {"name": name, "run_id": run_id, "created_at": datetime.now(UTC).replace(tzinfo=None),
           "checkpoint": str(ckpt.resolve()), "config_json": json.dumps(config, sort_keys=True),
           "metrics_json": json.dumps(metrics, sort_keys=True, default=float)}
    with store.begin() as conn:
        return int(conn.execute(insert(ModelRecord).returning(ModelRecord.id), row).scalar_one())
