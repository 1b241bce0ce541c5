"""/api/v1/runner: calls from runners, authenticated with the cluster secret, answered
only by the leading host (503 from one standing by, so the runner tries its next URL).
The database is read and written in worker threads, off the event loop."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from kawa.host.deps import HostDep, RunnerAuth, leader_only
from kawa.host.runner_probe import check_reachable
from kawa.protocol.nodes import Heartbeat, NodeRegistration, RegistrationAccepted
from kawa.protocol.runner_api import RunnerAck, TaskReport

router = APIRouter(prefix="/runner", tags=["runner"], dependencies=[RunnerAuth, leader_only])


@router.post("/register")
async def register(reg: NodeRegistration, host: HostDep) -> RegistrationAccepted:
    await asyncio.to_thread(host.nodes.check_registration, reg)
    if host.config.check_runner_reachable:
        await check_reachable(host.link.http, reg.name, reg.url)
    accepted = await asyncio.to_thread(host.nodes.register, reg)
    made = host.link.clients_made()
    await host.link.keep_only(await asyncio.to_thread(host.nodes.urls), made)  # an old address
    return accepted


@router.post("/heartbeat")
async def heartbeat(hb: Heartbeat, host: HostDep) -> RunnerAck:
    await host.nodes.beat(hb)
    return RunnerAck()


@router.post("/report")
def report(report: TaskReport, host: HostDep) -> RunnerAck:
    host.reports.handle(report)
    return RunnerAck()
