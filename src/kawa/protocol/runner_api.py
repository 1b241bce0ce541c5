"""Host <-> runner messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from kawa.core.task_states import TaskKind
from kawa.protocol.common import WireModel
from kawa.protocol.tasks import Mount, NetworkMode


class EnvironmentRef(WireModel):
    """A packaged environment version: the runner loads it when its digest differs."""

    name: str
    version: str
    digest: str
    image: str
    """The image tag the tarball loads as (e.g. ``kawa-env/NAME:VERSION``)."""


class RunTask(WireModel):
    """Host -> runner: start this task with these resolved resources."""

    task_id: str
    kind: TaskKind
    command: list[str]
    image: str
    env: dict[str, str]
    mounts: list[Mount]
    cores: int
    memory: int | None
    gpu_ids: list[int]
    numa: int | None
    cpuset: list[int]
    privileged: bool
    workdir: str | None
    network: NetworkMode
    timeout: float | None
    native: bool = False
    """Run on the node's OS (native executor) instead of in a container."""
    environment: EnvironmentRef | None = None
    """The packaged environment ``image`` comes from, when it is one (runner syncs it)."""
    ssh_key: str | None = None
    """VPS: the public key to install for root (never put into a shell string)."""


class ExitKind(StrEnum):
    """How the runner saw a task end (the host maps it through the state machine)."""

    EXITED = "exited"
    OOM_KILLED = "oom_killed"
    KILLED = "killed"
    TIMED_OUT = "timed_out"
    START_FAILED = "start_failed"
    VANISHED = "vanished"


class TaskReport(WireModel):
    """Runner -> host: a task started, paused, resumed or ended."""

    task_id: str
    node: str
    state: str
    """``running`` | ``paused`` | ``ended``"""
    exit_kind: ExitKind | None = None
    exit_code: int | None = None
    error: str | None = None
    at: datetime


class RemoveVps(WireModel):
    """Host -> runner: remove a VPS's container and its snapshots."""

    force: bool = False
    """Stop it first when it still runs (else a running VPS is refused)."""


class RunnerAck(WireModel):
    ok: bool = True
    state: str | None = None
    detail: str | None = None
