"""Findings: idle, data-starved, energy-wasting or silent GPUs and nodes, with their running cost.

Rows are written by ``app.findings.service.evaluate`` from the minute rollups: one row per
episode of a condition on one GPU (or node, for ``stale_agent``), open while it holds.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.kit.money import Money

OPEN = "open"
RESOLVED = "resolved"


class Finding(Base):
    """One episode of a wasteful or broken condition on a GPU or a node."""

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_state_kind_opened", "state", "kind", "opened_at"),
        Index("ix_findings_team_state_opened", "team", "state", "opened_at"),
        Index("ix_findings_opened_at", "opened_at"),
        Index("ix_findings_subject", "kind", "node_id", "gpu_id", "started_at"),
        # At most one open finding per (kind, node, GPU): the evaluator's fast path.
        Index(
            "ix_findings_open_subject",
            "kind",
            "node_id",
            "gpu_id",
            unique=True,
            postgresql_where=text("state = 'open'"),
            sqlite_where=text("state = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # idle_allocated | idle_unallocated | data_starvation | energy_waste | oversized |
    # throttling | hardware | stale_agent
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20))  # open | resolved
    gpu_id: Mapped[int | None] = mapped_column(ForeignKey("gpus.id", ondelete="CASCADE"))
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    team: Mapped[str] = mapped_column(String(255), default="")
    owner: Mapped[str] = mapped_column(String(255), default="")  # job/pod/user; "" = none
    started_at: Mapped[datetime]  # first minute of the episode
    opened_at: Mapped[datetime]  # started_at + the kind's minimum duration
    last_seen_at: Mapped[datetime]  # start of the last minute the condition held
    resolved_at: Mapped[datetime | None]  # end of that minute, once the condition stopped
    cost_per_hour: Mapped[Decimal | None] = mapped_column(Money())
    cost_so_far: Mapped[Decimal | None] = mapped_column(Money())
    currency: Mapped[str | None] = mapped_column(String(3))
    cost_source: Mapped[str] = mapped_column(String(20), default="unpriced")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The evaluator's own record (``app.findings.timeline``): the episode's last spells and
    # its sums per hour, so that a pass re-reads a few hours, never the whole episode.
    timeline: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    acked_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(String(200))
    snoozed_until: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class FindingCursor(Base):
    """How far the evaluator got: every minute before ``evaluated_until`` has been evaluated."""

    __tablename__ = "finding_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)  # "minutes"
    evaluated_until: Mapped[datetime]
    updated_at: Mapped[datetime]


class FindingDirty(Base):
    """A (node, minute) whose rollups were rewritten after the evaluator may have read them."""

    __tablename__ = "finding_dirty"

    node_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=1)
