"""Inventory API: ``GET /api/v1/nodes`` and ``GET /api/v1/gpus``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import SessionDep, ViewerAuth
from app.errors import Forbidden, Unauthenticated, error_responses
from app.nodes import service
from app.nodes.schemas import GpuPage, NodePage

router = APIRouter(prefix="/api/v1", tags=["inventory"])


@router.get("/gpus", response_model=GpuPage, responses=error_responses(Unauthenticated, Forbidden))
def list_gpus(
    session: SessionDep,
    _key: ViewerAuth,
    node: Annotated[str | None, Query(description="only this node's GPUs")] = None,
    cluster: Annotated[str | None, Query(description="only this cluster's GPUs")] = None,
    model: Annotated[str | None, Query(description="exact model name")] = None,
    status: Annotated[str | None, Query(description="ok or lost")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> GpuPage:
    """Every GPU with its node, model, last report and latest utilization (percent)."""
    items, total = service.list_gpus(
        session,
        node=node,
        cluster=cluster,
        model=model,
        status=status,
        limit=limit,
        offset=offset,
    )
    return GpuPage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/nodes", response_model=NodePage, responses=error_responses(Unauthenticated, Forbidden)
)
def list_nodes(
    session: SessionDep,
    _key: ViewerAuth,
    cluster: Annotated[str | None, Query(description="only this cluster's nodes")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> NodePage:
    """Every node with its cluster, cloud identity, labels, GPU count and last report."""
    items, total = service.list_nodes(session, cluster=cluster, limit=limit, offset=offset)
    return NodePage(items=items, total=total, limit=limit, offset=offset)
