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
    return _insert(name, table, columns, keys, f"SELECT * FROM unnest({arrays})")  # noqa: S608


def _staged_insert(name: str, table: Table, columns: Sequence[str], keys: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    source = f"SELECT {names} FROM {_staging(table)}"  # noqa: S608
    return _insert(name, table, columns, keys, source)


def _insert(name: str, table: Table, columns: Sequence[str], keys: Sequence[str], rows: str) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return (
        f"{name} AS (INSERT INTO {table.name} ({names}) {rows} "
        f"ON CONFLICT ({', '.join(keys)}) DO NOTHING RETURNING 1)"
    )


def _staging(table: Table) -> str:
    return f"_ingest_{table.name}"


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

_ROWS = (
    ("s", _table(GpuSample), SAMPLE_COLUMNS, ["gpu_id", "ts"]),
    ("p", _table(GpuProcessSample), PROCESS_COLUMNS, ["gpu_id", "ts", "pid"]),
    ("h", _table(HostSample), HOST_COLUMNS, ["node_id", "ts"]),
)
_BOOKKEEPING = [
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
# Small batches: the rows travel as one array per column.
WRITE_BATCH = (
    "WITH " + ",\n".join([*(_unnest_insert(*r) for r in _ROWS), *_BOOKKEEPING]) + "\n" + _COUNTS
)
# Large batches: the rows were COPYed into this connection's staging tables, which the same
# statement empties (all its parts see one snapshot), so a rollback leaves them empty too.
_EMPTY_STAGING = [f"x{r[0]} AS (DELETE FROM {_staging(r[1])})" for r in _ROWS]  # noqa: S608
WRITE_STAGED = (
    "WITH "
    + ",\n".join([*(_staged_insert(*r) for r in _ROWS), *_EMPTY_STAGING, *_BOOKKEEPING])
    + "\n"
    + _COUNTS
)
# Temporary tables are never vacuumed: TRUNCATE (file operations, so rarely) after this many
# staged rows, to keep the dead rows of earlier batches from piling up.
STAGING_TRUNCATE_ROWS = 200_000
# At and above this many GPU samples a batch is COPYed (binary) into staging tables: measured
# in-process, 48 samples: arrays 6.1 vs COPY 7.3 ms, 96: even, 200: 17.5 vs 13.4 ms, 2,000: 131 vs
# 92 ms (docs/capacity.md).
COPY_MIN_SAMPLES = 128


def _copy_types(table: Table, columns: Sequence[str]) -> list[str]:
    """PostgreSQL type names for binary COPY (varchar takes text's binary form)."""
    out = []
    for c in columns:
        name = _pg_type(table.c[c]).lower()
        out.append(
            {"float": "float8", "bigint": "int8", "integer": "int4"}.get(name)
            or ("timestamptz" if name.startswith("timestamp") else "text")
        )
    return out


_CREATE_STAGING = "; ".join(
    f"CREATE TEMP TABLE IF NOT EXISTS {_staging(t)} (LIKE {t.name})" for _, t, *_ in _ROWS
)


def _stage(cur: Any, info: dict[str, Any], rows: dict[str, Sequence[tuple[Any, ...]]]) -> None:
    """COPY the batch's rows into the connection's temporary staging tables."""
    # Per connection (pooled connections keep them); checked every time, since a rollback of
    # the transaction that created them drops them again.
    cur.execute(_CREATE_STAGING)
    staged = info.get("ingest_staged_rows", 0)
    if staged >= STAGING_TRUNCATE_ROWS:
        cur.execute("TRUNCATE " + ", ".join(_staging(t) for _, t, *_ in _ROWS))
        staged = 0
    for name, table, columns, _ in _ROWS:
        if not rows[name]:
            continue
        names = ", ".join(f'"{c}"' for c in columns)
        with cur.copy(f"COPY {_staging(table)} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_copy_types(table, columns))
            for row in rows[name]:
                copy.write_row(row)
        staged += len(rows[name])
    info["ingest_staged_rows"] = staged


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
    staged = len(samples) >= COPY_MIN_SAMPLES
    params: dict[str, Any] = {
        **({} if staged else _columns("s", SAMPLE_COLUMNS, samples)),
        **({} if staged else _columns("p", PROCESS_COLUMNS, processes)),
        **({} if staged else _columns("h", HOST_COLUMNS, hosts)),
        **_columns("dg", ["entity", "bucket"], sorted(gpu_dirty)),  # a stable lock order
        **_columns("dh", ["entity", "bucket"], sorted(host_dirty)),
        "g_id": list(gpu_seen),
        "g_seen": list(gpu_seen.values()),
        "node_id": state.node_id,
        "node_seen": node_seen,
        "token_id": state.token_id,
        "now": now,
    }
    connection = session.connection().connection
    with connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
        if staged:
            _stage(cur, connection.info, {"s": samples, "p": processes, "h": hosts})
        cur.execute(WRITE_STAGED if staged else WRITE_BATCH, params)
        inserted, host_inserted = cur.fetchone()
    # The ORM objects of this session (if any are loaded) no longer match these rows.
    for model, ids in ((Node, [state.node_id]), (Gpu, gpu_seen), (NodeToken, [state.token_id])):
        for entity_id in ids:
            obj = session.identity_map.get(identity_key(model, entity_id))
            if obj is not None:
                session.expire(obj)
    return int(inserted), int(host_inserted)
