"""/api/v1/nodes (plain functions: FastAPI runs them in its threadpool, off the loop;
the list answers a kept answer on the loop and reads in a worker thread otherwise; a
removal closes the removed runner's connections on the loop once it is done)"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from kawa.host.deps import HostDep, NodeNamePath, UserDep
from kawa.host.errors import Forbidden
from kawa.protocol.history import HistoryWindow, NodeHistory
from kawa.protocol.nodes import NodeHealth, NodeView

router = APIRouter(prefix="/nodes", tags=["nodes"])
WINDOW = "1h: a point per heartbeat; 24h: a point per minute (the mean of its heartbeats)"


@router.get("", response_model=list[NodeView])
async def list_nodes(request: Request, host: HostDep, who: UserDep) -> Response:
    answer = host.nodes.known_page()
    if answer is None:  # read in a worker thread, off the loop
        answer = await run_in_threadpool(host.nodes.page)
    return answer.response(request.headers.get("accept-encoding"))


@router.get("/{name}")
def get_node(name: NodeNamePath, host: HostDep, who: UserDep) -> NodeView:
    return host.nodes.get(name)


@router.get("/{name}/health")
def node_health(name: NodeNamePath, host: HostDep, who: UserDep) -> NodeHealth:
    return host.nodes.health(name)


@router.get("/{name}/history")
def node_history(
    name: NodeNamePath,
    host: HostDep,
    who: UserDep,
    window: Annotated[HistoryWindow, Query(description=WINDOW)] = "1h",
) -> NodeHistory:
    """The node's CPU, memory and GPU measurements, oldest first. Kept in the host's
    memory only: a host restart clears them."""
    return host.nodes.history(name, window)


@router.post("/{name}/drain")
def drain(name: NodeNamePath, host: HostDep, who: UserDep) -> NodeView:
    if not who.is_admin:
        raise Forbidden("draining a node needs the admin role")
    return host.nodes.set_draining(name, True, who)


@router.post("/{name}/undrain")
def undrain(name: NodeNamePath, host: HostDep, who: UserDep) -> NodeView:
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
    await asyncio.to_thread(host.nodes.remove, name, force, who)
    made = host.link.clients_made()
    await host.link.keep_only(await asyncio.to_thread(host.nodes.urls), made)
    return {"removed": name}
