"""/api/v1/runner/environments: what runners fetch and report while they sync an
environment, authenticated with the cluster secret like the other runner calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from kawa.host.deps import HostDep, RunnerAuth
from kawa.host.routes.environments import TarballResponse
from kawa.host.routes.responses import TARBALL
from kawa.protocol.bounds import Short
from kawa.protocol.environments import SyncProgress
from kawa.protocol.runner_api import RunnerAck

router = APIRouter(prefix="/runner/environments", tags=["runner"], dependencies=[RunnerAuth])


@router.post("/progress")
def progress(report: SyncProgress, host: HostDep) -> RunnerAck:
    host.environments.sync_progress(report)
    return RunnerAck()


@router.get("/{name}/{version}", response_class=Response, responses=TARBALL)
async def tarball(
    name: Annotated[Short, Path()], version: Annotated[Short, Path()], host: HostDep
) -> Response:
    """The version's tarball; ``Range: bytes=N-`` resumes a broken transfer."""
    return TarballResponse(host.environments.tarball(name, version))
