"""SQL of the PostgreSQL ingest path: who is calling, and a whole batch in one statement.

Per request the database sees two statements and the commit: one read (token, node, its
cluster and GPUs) and one write, a chain of data-modifying CTEs fed by ``unnest`` of one
array per column: samples, process samples, host samples, the dirty marks (only when
something new was stored) and the ``last_seen`` / ``last_used_at`` bookkeeping. See
https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Column, Table, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from app.models import Cluster, Gpu, GpuProcessSample, GpuSample, HostSample, Node, NodeToken


@dataclass(frozen=True)
class GpuState:
    id: int
    index: int
    status: str
    model: str | None
    memory_total_bytes: int | None
    mig_mode: bool | None
    mig_instances: list[dict[str, Any]] | None
    last_seen: datetime | None


@dataclass(frozen=True)
class NodeState:
    """A node token with its node and GPUs as stored now, read in one query."""

    token_id: int
    revoked: bool
    node_id: int
    name: str
    cluster: str | None
    inventory: dict[str, Any]  # hostname, provider, …, labels
    last_seen: datetime | None
    gpus: dict[str, GpuState] = field(default_factory=dict)


NODE_FIELDS = ("hostname", "provider", "instance_id", "instance_type", "region", "agent_version")


def load_node_state(
    session: Session, *, token_hash: str | None = None, token_id: int | None = None
) -> NodeState | None:
    """The token (by hash or id), its node and GPUs; one row per GPU, one round trip."""
    stmt = (
        select(
            NodeToken.id,
            NodeToken.revoked_at,
            Node.id,
            Node.name,
            Cluster.name,
            Node.last_seen,
            Node.labels,
            *(getattr(Node, f) for f in NODE_FIELDS),
            Gpu.uuid,
            Gpu.id,
            Gpu.index,
            Gpu.status,
            Gpu.model,
            Gpu.memory_total_bytes,
            Gpu.mig_mode,
            Gpu.mig_instances,
            Gpu.last_seen,
        )
        .join(Node, Node.id == NodeToken.node_id)
        .outerjoin(Cluster, Cluster.id == Node.cluster_id)
        .outerjoin(Gpu, Gpu.node_id == Node.id)
    )
    if token_hash is not None:
        stmt = stmt.where(NodeToken.token_hash == token_hash)
    else:
        stmt = stmt.where(NodeToken.id == token_id)
    rows = session.execute(stmt).all()
    if not rows:
        return None
    first = rows[0]
    n = len(NODE_FIELDS)
    state = NodeState(
        token_id=first[0],
        revoked=first[1] is not None,
        node_id=first[2],
        name=first[3],
        cluster=first[4],
        last_seen=first[5],
        inventory={
            "labels": first[6] or {},
            **dict(zip(NODE_FIELDS, first[7 : 7 + n], strict=True)),
        },
    )
    for row in rows:
        uuid, gpu_id, index, status, model, memory, mig_mode, mig, seen = row[7 + n :]
        if uuid is not None:
            state.gpus[uuid] = GpuState(gpu_id, index, status, model, memory, mig_mode, mig, seen)
    return state


_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _pg_type(column: Column[Any]) -> str:
    return str(column.type.compile(dialect=_PG))


def _unnest_insert(name: str, table: Table, columns: Sequence[str], keys: Sequence[str]) -> str:
    arrays = ", ".join(f"%({name}_{c})s::{_pg_type(table.c[c])}[]" for c in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    return (
        f"{name} AS (INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}) "  # noqa: S608
        f"ON CONFLICT ({', '.join(keys)}) DO NOTHING RETURNING 1)"
    )


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


# The wire sample's fields first, then the two the server fills in.
SAMPLE_COLUMNS = [
    *(c.name for c in _table(GpuSample).columns if c.name not in {"gpu_id", "process_count"}),
    "gpu_id",
    "process_count",
]
PROCESS_COLUMNS = [c.name for c in _table(GpuProcessSample).columns]
HOST_COLUMNS = [c.name for c in _table(HostSample).columns]

_DIRTY = (
    "{name} AS (INSERT INTO rollup_dirty (kind, entity_id, bucket, version) "
    "SELECT '{kind}', e, b, 1 FROM unnest(%({name}_entity)s::INTEGER[], "
    "%({name}_bucket)s::TIMESTAMP WITH TIME ZONE[]) AS d(e, b) "
    "WHERE EXISTS (SELECT 1 FROM {source}) "
    "ON CONFLICT (kind, entity_id, bucket) DO UPDATE SET version = rollup_dirty.version + 1 "
    "RETURNING 1)"
)

_PARTS = [
    _unnest_insert("s", _table(GpuSample), SAMPLE_COLUMNS, ["gpu_id", "ts"]),
    _unnest_insert("p", _table(GpuProcessSample), PROCESS_COLUMNS, ["gpu_id", "ts", "pid"]),
    _unnest_insert("h", _table(HostSample), HOST_COLUMNS, ["node_id", "ts"]),
    _DIRTY.format(name="dg", kind="gpu", source="s"),
    _DIRTY.format(name="dh", kind="host", source="h"),
    # Only this node's GPUs: the ids come from this token's own read, checked again here.
    "g AS (UPDATE gpus SET last_seen = v.seen FROM unnest(%(g_id)s::INTEGER[], "
    "%(g_seen)s::TIMESTAMP WITH TIME ZONE[]) AS v(id, seen) WHERE gpus.id = v.id "
    "AND gpus.node_id = %(node_id)s AND (gpus.last_seen IS NULL OR gpus.last_seen < v.seen) "
    "RETURNING 1)",
    "n AS (UPDATE nodes SET last_seen = %(node_seen)s WHERE id = %(node_id)s "
    "AND (last_seen IS NULL OR last_seen < %(node_seen)s) RETURNING 1)",
    "t AS (UPDATE node_tokens SET last_used_at = %(now)s WHERE id = %(token_id)s RETURNING 1)",
]
_COUNTS = "SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM h)"
WRITE_BATCH = "WITH " + ",\n".join(_PARTS) + "\n" + _COUNTS


def _columns(prefix: str, names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return {f"{prefix}_{c}": list(v) for c, v in zip(names, values, strict=True)}


def write_batch(
    session: Session,
    *,
    state: NodeState,
    samples: Sequence[tuple[Any, ...]],
    processes: Sequence[tuple[Any, ...]],
    hosts: Sequence[tuple[Any, ...]],
    gpu_dirty: Sequence[tuple[int, datetime]],
    host_dirty: Sequence[tuple[int, datetime]],
    gpu_seen: dict[int, datetime],
    node_seen: datetime,
    now: datetime,
) -> tuple[int, int]:
    """Store a batch in one statement (rows are tuples in ``*_COLUMNS`` order); returns
    (GPU samples inserted, host samples inserted)."""
    params: dict[str, Any] = {
        **_columns("s", SAMPLE_COLUMNS, samples),
        **_columns("p", PROCESS_COLUMNS, processes),
        **_columns("h", HOST_COLUMNS, hosts),
        **_columns("dg", ["entity", "bucket"], sorted(gpu_dirty)),  # a stable lock order
        **_columns("dh", ["entity", "bucket"], sorted(host_dirty)),
        "g_id": list(gpu_seen),
        "g_seen": list(gpu_seen.values()),
        "node_id": state.node_id,
        "node_seen": node_seen,
        "token_id": state.token_id,
        "now": now,
    }
    dbapi = session.connection().connection.driver_connection
    with dbapi.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(WRITE_BATCH, params)
        inserted, host_inserted = cur.fetchone()
    # The ORM objects of this session (if any are loaded) no longer match these rows.
    for model, ids in ((Node, [state.node_id]), (Gpu, gpu_seen), (NodeToken, [state.token_id])):
        for entity_id in ids:
            obj = session.identity_map.get(identity_key(model, entity_id))
            if obj is not None:
                session.expire(obj)
    return int(inserted), int(host_inserted)
