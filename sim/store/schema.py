"""The signsim database schema: the contract between ``sim/`` and ``models/``.

Every table is documented in ``docs/schema.md``; users query these tables directly with
SQL (``signsim query``) or pandas. Codes stored as small integers (``sign``) are kept
human-readable; causes and blocking reasons are short strings.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "SCHEMA_VERSION",
    "AgentRow",
    "Base",
    "Forecast",
    "Interaction",
    "InterventionLog",
    "Meta",
    "Metric",
    "ModelRecord",
    "OpinionSnapshot",
    "Run",
    "RunClaim",
]

SCHEMA_VERSION = "2"


class Base(DeclarativeBase):
    """Declarative base of every signsim table."""


class Meta(Base):
    """Key/value facts about the database itself (``schema_version``, ``app``)."""

    __tablename__ = "signsim_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Run(Base):
    """One simulation run (scenario, arm, seed) or one imported observed network."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scenario: Mapped[str] = mapped_column(String(200), index=True)
    arm: Mapped[str] = mapped_column(String(100), default="baseline")
    seed: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16), default="simulated")
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    scenario_text: Mapped[str] = mapped_column(Text, default="")
    scenario_sha256: Mapped[str] = mapped_column(String(64), default="")
    code_version: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    horizon: Mapped[float] = mapped_column(Float, default=0.0)
    n_agents: Mapped[int] = mapped_column(Integer, default=0)
    n_interactions: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class RunClaim(Base):
    """Which process is making the run of one (scenario, scenario text, arm, seed).

    A sweep's task takes the claim before it creates its run and marks the run
    ``complete`` only while it still holds it, so every (arm, seed) of a scenario text ends
    with one complete run per sweep even when a worker dies and its task runs again
    elsewhere (:mod:`sim.store.claims`).
    """

    __tablename__ = "run_claims"
    scenario: Mapped[str] = mapped_column(String(200), primary_key=True)
    scenario_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    arm: Mapped[str] = mapped_column(String(100), primary_key=True)
    seed: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep: Mapped[str] = mapped_column(String(32), default="")
    holder: Mapped[str] = mapped_column(String(200), default="")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    lease_until: Mapped[float] = mapped_column(Float, default=0.0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    taken: Mapped[int] = mapped_column(Integer, default=0)


class AgentRow(Base):
    """An agent of a run, as it was created."""

    __tablename__ = "agents"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    group: Mapped[int] = mapped_column("group", Integer)
    initial_opinion: Mapped[float] = mapped_column(Float)
    activity_rate: Mapped[float] = mapped_column(Float)


class Interaction(Base):
    """One signed interaction, delivered or blocked; ``seq`` orders a run's events.

    A run's ``seq`` order is also its time order, so the key ``(run_id, t, seq)`` both
    identifies a row and serves time-range queries; SQLite stores the table in that order
    (``WITHOUT ROWID``), and appending a run's events touches a single B-tree.
    """

    __tablename__ = "interactions"
    # Not a foreign key: PostgreSQL would check it row by row, at more than the cost of
    # the insert; the event writer checks the run once per batch, in the batch's transaction.
    run_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    t: Mapped[float] = mapped_column(Float)
    src: Mapped[int] = mapped_column(Integer)
    dst: Mapped[int] = mapped_column(Integer)
    sign: Mapped[int] = mapped_column(SmallInteger)
    weight: Mapped[float] = mapped_column(Float)
    delivered: Mapped[bool] = mapped_column(Boolean)
    cause: Mapped[str] = mapped_column(String(16))
    blocked_by: Mapped[str | None] = mapped_column(String(16), nullable=True)

    __table_args__ = (
        PrimaryKeyConstraint("run_id", "t", "seq", name="pk_interactions"),
        {"sqlite_with_rowid": False},
    )


class OpinionSnapshot(Base):
    """Opinion and negativity of (a sample of) agents at a snapshot time."""

    __tablename__ = "opinions"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    t: Mapped[float] = mapped_column(Float, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    opinion: Mapped[float] = mapped_column(Float)
    negativity: Mapped[float] = mapped_column(Float)


class Metric(Base):
    """A metric time series point."""

    __tablename__ = "metrics"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    t: Mapped[float] = mapped_column(Float, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class InterventionLog(Base):
    """One action taken by an intervention (a ban, a block, a suspension ...)."""

    __tablename__ = "interventions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    t: Mapped[float] = mapped_column(Float)
    intervention: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    detail: Mapped[str] = mapped_column(Text, default="")


class ModelRecord(Base):
    """A trained model: where its checkpoint is and how it scored."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    checkpoint: Mapped[str] = mapped_column(Text)
    config_json: Mapped[str] = mapped_column(Text, default="{}")
    metrics_json: Mapped[str] = mapped_column(Text, default="{}")


class Forecast(Base):
    """A model's forecast for one event after its training period."""

    __tablename__ = "forecasts"
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    t: Mapped[float] = mapped_column(Float)
    src: Mapped[int] = mapped_column(Integer)
    dst: Mapped[int] = mapped_column(Integer)
    p_exist: Mapped[float] = mapped_column(Float)
    p_positive: Mapped[float] = mapped_column(Float)
    weight_pred: Mapped[float] = mapped_column(Float)
    sign_true: Mapped[int] = mapped_column(SmallInteger)
    weight_true: Mapped[float] = mapped_column(Float)
