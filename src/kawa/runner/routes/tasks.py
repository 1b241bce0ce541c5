"""/tasks on a runner: run an order, control, snapshot or remove a task, read its logs."""

from __future__ import annotations

import asyncio

import docker.errors
from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from kawa.protocol.runner_api import RemoveVps, RunnerAck, RunTask
from kawa.runner.executor import StartError, UnknownTask
from kawa.runner.routes.deps import ExecutorDep, ServiceDep
from kawa.runner.task_logs import read_log

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.post("")
async def run_task(order: RunTask, ex: ExecutorDep, runner: ServiceDep) -> RunnerAck:
    try:
        await runner.prepare_environment(order)  # its packaged environment first
        await asyncio.to_thread(ex.start, order)
    except StartError as exc:
        raise HTTPException(422, str(exc)) from None
    return RunnerAck(state="running")


@router.post("/{task_id}/snapshot")
async def snapshot(task_id: str, ex: ExecutorDep) -> RunnerAck:
    try:
        image = await asyncio.to_thread(ex.snapshot, task_id)
    except UnknownTask as exc:
        raise HTTPException(409, str(exc)) from None
    return RunnerAck(state="snapshot", detail=image)


@router.post("/{task_id}/remove")
async def remove(task_id: str, body: RemoveVps, ex: ExecutorDep) -> RunnerAck:
    try:
        await asyncio.to_thread(ex.remove, task_id, body.force)
    except UnknownTask as exc:
        raise HTTPException(409, str(exc)) from None
    except docker.errors.APIError as exc:
        raise HTTPException(409, f"docker: {exc.explanation or exc}") from None
    return RunnerAck(state="removed")


@router.post("/{task_id}/{action}")
async def control(task_id: str, action: str, ex: ExecutorDep) -> RunnerAck:
    method = {
        "kill": ex.kill,
        "stop": ex.kill,
        "pause": ex.pause,
        "resume": ex.resume,
        "restart": ex.restart,
    }
    if action not in method:
        raise HTTPException(404, f"unknown action {action!r}")
    try:
        await asyncio.to_thread(method[action], task_id)
    except UnknownTask as exc:
        raise HTTPException(409, str(exc)) from None
    except StartError as exc:
        raise HTTPException(422, str(exc)) from None
    state = {"pause": "paused", "resume": "running", "restart": "running"}.get(action)
    return RunnerAck(state=state or "stopping")


@router.get("/{task_id}/logs")
async def logs(
    task_id: str,
    ex: ExecutorDep,
    runner: ServiceDep,
    stream: str = "stdout",
    follow: bool = False,
    offset: int = 0,
) -> StreamingResponse:
    if stream not in ("stdout", "stderr"):
        raise HTTPException(400, "stream must be stdout or stderr")
    path = ex.log_path(task_id, stream)
    if not path.exists() and runner.journal.get(task_id) is None:
        raise HTTPException(404, f"no logs for task {task_id} on {runner.config.name}")

    def ended() -> bool:
        e = runner.journal.get(task_id)
        return e is None or e.state == "ended"

    return StreamingResponse(
        read_log(path, offset, follow, ended, runner.until_an_end),
        media_type="application/octet-stream",
    )
