"""Host <-> runner messages."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from kawa.core.reports import ExitKind as ExitKind
from kawa.core.task_states import TaskKind
from kawa.protocol import bounds as b
from kawa.protocol.common import WireModel
from kawa.protocol.tasks import Mount, NetworkMode


class EnvironmentRef(WireModel):
    """A packaged environment version: the runner loads it when its digest differs."""

    name: b.EnvironmentName
    version: b.Short
    digest: b.Short
    image: b.ImageName
    """The image tag the tarball loads as (e.g. ``kawa-env/NAME:VERSION``)."""


class RunTask(WireModel):
    """Host -> runner: start this task with these resolved resources."""

    task_id: b.RunnerTaskId
    kind: TaskKind
    command: list[b.Argument] = Field(max_length=b.MAX_COMMAND_ARGS)
    image: b.RunImage
    env: dict[b.EnvKey, b.EnvValue] = Field(max_length=b.MAX_ENV_VARS)
    mounts: list[Mount] = Field(max_length=b.MAX_MOUNTS)
    cores: int = Field(ge=0, le=b.MAX_CORES)
    """0: no CPU limit (a native task may be given none)."""
    memory: int | None = Field(gt=0, le=b.MAX_MEMORY)
    gpu_ids: list[b.SmallIndex] = Field(max_length=b.MAX_LIST)
    numa: b.SmallIndex | None
    cpuset: list[b.SmallIndex] = Field(max_length=b.MAX_LIST)
    privileged: bool
    workdir: b.WorkdirText | None
    network: NetworkMode
    timeout: b.Seconds | None
    native: bool = False
    """Run on the node's OS (native executor) instead of in a container."""
    environment: EnvironmentRef | None = None
    """The packaged environment ``image`` comes from, when it is one (runner syncs it)."""
    ssh_key: str | None = Field(default=None, max_length=b.MAX_SSH_KEY)
    """VPS: the public key to install for root (never put into a shell string)."""


class TaskReport(WireModel):
    """Runner -> host: a task started, paused, resumed or ended."""

    task_id: b.RunnerTaskId
    node: b.NodeName
    state: b.Short
    """``running`` | ``paused`` | ``ended``"""
    exit_kind: ExitKind | None = None
    exit_code: b.ExitCode | None = None
    error: b.ErrorText | None = None
    at: datetime


class RemoveVps(WireModel):
    """Host -> runner: remove a VPS's container and its snapshots."""

    force: bool = False
    """Stop it first when it still runs (else a running VPS is refused)."""


class RunnerAck(WireModel):
    ok: bool = True
    state: b.Short | None = None
    detail: b.Text | None = None
