"""Task submission, views and transitions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from kawa.core.mounts import MountSpec
from kawa.core.targets import TargetSpec
from kawa.core.task_states import TaskKind, TaskState
from kawa.core.units import parse_duration, parse_memory
from kawa.protocol import bounds as b
from kawa.protocol.common import WireModel


def _memory(value: Any) -> Any:
    if isinstance(value, str):
        return parse_memory(value)
    return value


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    return value


MemoryBytes = Annotated[int, BeforeValidator(_memory), Field(gt=0, le=b.MAX_MEMORY)]
DurationSeconds = Annotated[b.Seconds, BeforeValidator(_duration)]


_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


def check_public_key(text: str) -> str:
    """One OpenSSH public key line (``TYPE BASE64 [COMMENT]``), stripped; ValueError if not."""
    import base64
    import binascii

    line = text.strip()
    if "PRIVATE KEY" in line:
        raise ValueError("this is a private key; give the public one (the .pub file)")
    if "\n" in line or "\r" in line or "\x00" in line:
        raise ValueError("the public key must be a single line")
    parts = line.split(None, 2)
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise ValueError("not an OpenSSH public key (expected 'ssh-ed25519 AAAA...' or similar)")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the public key's base64 part is malformed") from None
    name = parts[0].encode()
    if len(blob) < 4 + len(name) or blob[4 : 4 + len(name)] != name:
        raise ValueError("the public key's data does not match its type")
    return line


class NetworkMode(StrEnum):
    HOST = "host"
    BRIDGE = "bridge"


class Mount(WireModel):
    source: b.PathText
    target: b.PathText
    read_only: bool = False

    @model_validator(mode="after")
    def _check(self) -> Mount:
        MountSpec(self.source, self.target, self.read_only).check()
        return self

    @classmethod
    def parse(cls, text: str) -> Mount:
        spec = MountSpec.parse(text)
        return cls(source=spec.source, target=spec.target, read_only=spec.read_only)


class TaskSpec(WireModel):
    """A submission: one task per target (or one auto-placed task when none)."""

    kind: TaskKind = TaskKind.COMMAND
    command: list[b.Argument] = Field(default_factory=list, max_length=b.MAX_COMMAND_ARGS)
    targets: list[b.TargetText] = Field(
        default_factory=list, max_length=b.MAX_TARGETS, description="NODE[:NUMA][::GPU,...]"
    )
    cores: int = Field(default=1, ge=1, le=b.MAX_CORES)
    memory: MemoryBytes | None = Field(default=None, description="bytes or '4G'/'512Mi'")
    gpus: int = Field(default=0, ge=0, le=b.MAX_GPUS, description="GPUs to auto-pick")
    env: dict[b.EnvKey, b.EnvValue] = Field(default_factory=dict, max_length=b.MAX_ENV_VARS)
    mounts: list[Mount] = Field(default_factory=list, max_length=b.MAX_MOUNTS)
    container: b.EnvironmentName | None = Field(default=None, description="environment name")
    image: b.ImageName | None = Field(default=None, description="image already on the node")
    native: bool = False
    privileged: bool = False
    workdir: b.WorkdirText | None = None
    timeout: DurationSeconds | None = Field(default=None, description="seconds or '1h30m'")
    priority: int = Field(default=0, ge=b.MIN_PRIORITY, le=b.MAX_PRIORITY)
    name: b.TaskName | None = None
    network: NetworkMode = NetworkMode.HOST
    ssh_key: str | None = Field(
        default=None,
        max_length=b.MAX_SSH_KEY,
        description="VPS: public key for root (OpenSSH format)",
    )
    sweep: bool = Field(
        default=False, description="one task per combination of the command's span: arguments"
    )
    max_parallel: int | None = Field(
        default=None, ge=1, description="at most this many tasks of the batch run at once"
    )

    @field_validator("ssh_key")
    @classmethod
    def _ssh_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_public_key(value)

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        return [str(TargetSpec.parse(t)) for t in value]

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or "=" in key or key[0].isdigit():
                raise ValueError(f"bad environment variable name {key!r}")
        total = sum(len(key) + len(item) + 2 for key, item in value.items())
        if total > b.MAX_ENV_TOTAL:
            raise ValueError(
                f"the environment is {total} characters in all; the limit is {b.MAX_ENV_TOTAL}"
            )
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        total = sum(len(arg) + 1 for arg in value)
        if total > b.MAX_COMMAND_TOTAL:
            raise ValueError(
                f"the command is {total} characters in all; the limit is {b.MAX_COMMAND_TOTAL}"
            )
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"workdir must be an absolute path without NUL bytes, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if self.kind is TaskKind.COMMAND and not self.command:
            raise ValueError("no command given (put it after --)")
        chosen = [n for n, v in (("container", self.container), ("image", self.image)) if v]
        if self.native:
            chosen.append("native")
        if len(chosen) > 1:
            raise ValueError(
                f"choose one of --container, --image, --native (got {', '.join(chosen)})"
            )
        if self.gpus and any(TargetSpec.parse(t).gpus for t in self.targets):
            raise ValueError("give GPUs either in the target (node::0,1) or with --gpus, not both")
        return self


class TransitionView(WireModel):
    at: datetime
    source: TaskState | None
    target: TaskState
    event: str
    cause: str


class TaskView(WireModel):
    id: str
    batch_id: str
    name: str | None
    kind: TaskKind
    state: TaskState
    desired: str
    owner: str
    command: list[str]
    target: str | None
    node: str | None
    numa: int | None
    gpu_ids: list[int]
    cpuset: list[int]
    cores: int
    memory: int | None
    gpus: int
    env: dict[str, str]
    mounts: list[Mount]
    container: str | None
    image: str | None
    native: bool
    privileged: bool
    workdir: str | None
    network: NetworkMode
    timeout: float | None
    priority: int
    exit_code: int | None
    error: str | None
    waiting_reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    history: list[TransitionView] = []
    ssh_key: str | None = None


class SubmitResponse(WireModel):
    batch_id: str
    tasks: list[TaskView]


class TaskAction(StrEnum):
    KILL = "kill"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    RESTART = "restart"
    SNAPSHOT = "snapshot"
