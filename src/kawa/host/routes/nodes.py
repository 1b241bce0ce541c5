"""/api/v1/nodes"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kawa.host.deps import HostDep, NodeNamePath, UserDep
from kawa.host.errors import Forbidden
from kawa.protocol.history import HistoryWindow, NodeHistory
from kawa.protocol.nodes import NodeHealth, NodeView

router = APIRouter(prefix="/nodes", tags=["nodes"])
WINDOW = "1h: a point per heartbeat; 24h: a point per minute (the mean of its heartbeats)"


@router.get("")
async def list_nodes(host: HostDep, who: UserDep) -> list[NodeView]:
    return host.nodes.list()


@router.get("/{name}")
async def get_node(name: NodeNamePath, host: HostDep, who: UserDep) -> NodeView:
    return host.nodes.get(name)


@router.get("/{name}/health")
async def node_health(name: NodeNamePath, host: HostDep, who: UserDep) -> NodeHealth:
    return host.nodes.health(name)


@router.get("/{name}/history")
async def node_history(
    name: NodeNamePath,
    host: HostDep,
    who: UserDep,
    window: Annotated[HistoryWindow, Query(description=WINDOW)] = "1h",
) -> NodeHistory:
    """The node's CPU, memory and GPU measurements, oldest first. Kept in the host's
    memory only: a host restart clears them."""
    return host.nodes.history(name, window)


@router.post("/{name}/drain")
async def drain(name: NodeNamePath, host: HostDep, who: UserDep) -> NodeView:
    if not who.is_admin:
        raise Forbidden("draining a node needs the admin role")
    return host.nodes.set_draining(name, True, who)


@router.post("/{name}/undrain")
async def undrain(name: NodeNamePath, host: HostDep, who: UserDep) -> NodeView:
    if not who.is_admin:
        raise Forbidden("undraining a node needs the admin role")
    return host.nodes.set_draining(name, False, who)


@router.post("/{name}/remove")
async def remove(
    name: NodeNamePath,
    host: HostDep,
    who: UserDep,
    force: Annotated[bool, Query(description="remove it even if online or busy")] = False,
) -> dict[str, str]:
    if not who.is_admin:
        raise Forbidden("removing a node needs the admin role")
    host.nodes.remove(name, force, who)
    return {"removed": name}
