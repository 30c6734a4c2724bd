"""Clusters, nodes and their GPUs: the inventory every sample hangs off."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base


class Cluster(Base):
    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]

    nodes: Mapped[list[Node]] = relationship(back_populates="cluster", lazy="raise")


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"), index=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(40))
    instance_id: Mapped[str | None] = mapped_column(String(255), index=True)
    instance_type: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    agent_version: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    last_seen: Mapped[datetime | None]

    cluster: Mapped[Cluster | None] = relationship(back_populates="nodes", lazy="raise")
    gpus: Mapped[list[Gpu]] = relationship(back_populates="node", lazy="raise")


class Gpu(Base):
    __tablename__ = "gpus"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(100), unique=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(200))
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mig_mode: Mapped[bool | None]
    mig_instances: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="ok")
    created_at: Mapped[datetime]
    last_seen: Mapped[datetime | None]

    node: Mapped[Node] = relationship(back_populates="gpus", lazy="raise")
