"""Request descriptions shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx
from pydantic import TypeAdapter

from kawa.client.errors import KawaError, raise_for
from kawa.client.refs import path_segment
from kawa.core.task_states import WAIT_DONE_STATES
from kawa.protocol.audit import AuditEntryView
from kawa.protocol.common import API_PREFIX
from kawa.protocol.environments import EnvironmentVersionView, WorkspaceView
from kawa.protocol.events import Event
from kawa.protocol.history import HistoryWindow, NodeHistory
from kawa.protocol.join import (
    JoinAccepted,
    JoinRequest,
    JoinTokenCreate,
    JoinTokenCreated,
    JoinTokenView,
)
from kawa.protocol.meta import HostInfo, SshKeyPair, WhoAmI
from kawa.protocol.nodes import NodeHealth, NodeView
from kawa.protocol.task_queries import DryRunResponse, TaskCounts
from kawa.protocol.tasks import SubmitResponse, TaskAction, TaskSpec, TaskView

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)


_tasks = TypeAdapter(list[TaskView])
_nodes = TypeAdapter(list[NodeView])


def decode(call: Call[T], response: httpx.Response) -> T:
    """The parsed answer to ``call``, or :class:`KawaError` with the host's message."""
    raise_for(response)
    try:
        body = response.json()
    except ValueError:
        raise KawaError(
            f"unexpected answer from {response.url}: HTTP {response.status_code}"
        ) from None
    return call.parse(body)


def _task(ref: str) -> str:
    return path_segment(ref, "task id")


def _node(name: str) -> str:
    return path_segment(name, "node name")


def environment(name: str) -> str:
    """An environment name as a URL path segment (:func:`path_segment`)."""
    return path_segment(name, "environment name")


def submit(spec: TaskSpec) -> Call[SubmitResponse]:
    body = spec.model_dump(mode="json", exclude_defaults=True)
    return Call("POST", "/tasks", SubmitResponse.model_validate, json=body)


def dry_run(spec: TaskSpec) -> Call[DryRunResponse]:
    body = spec.model_dump(mode="json", exclude_defaults=True)
    return Call("POST", "/tasks/dry-run", DryRunResponse.model_validate, json=body)


def task_counts() -> Call[TaskCounts]:
    return Call("GET", "/tasks/counts", TaskCounts.model_validate)


def whoami() -> Call[WhoAmI]:
    return Call("GET", "/whoami", WhoAmI.model_validate)


def info() -> Call[HostInfo]:
    return Call("GET", "/info", HostInfo.model_validate)


def new_ssh_key() -> Call[SshKeyPair]:
    return Call("POST", "/ssh-keys", SshKeyPair.model_validate)


def get_task(ref: str) -> Call[TaskView]:
    return Call("GET", f"/tasks/{_task(ref)}", TaskView.model_validate)


def list_tasks(
    states: list[str] | None = None,
    node: str | None = None,
    batch: str | None = None,
    kind: str | None = None,
    limit: int = 200,
    owner: str | None = None,
    q: str | None = None,
    before: str | None = None,
) -> Call[list[TaskView]]:
    params = {
        "state": states or [],
        "node": node,
        "batch": batch,
        "kind": kind,
        "limit": limit,
        "owner": owner,
        "q": q,
        "before": before,
    }
    return Call(
        "GET",
        "/tasks",
        _tasks.validate_python,
        params={k: v for k, v in params.items() if v not in (None, [])},
    )


def act(ref: str, action: TaskAction) -> Call[TaskView]:
    return Call("POST", f"/tasks/{_task(ref)}/{action.value}", TaskView.model_validate)


def retry(ref: str) -> Call[SubmitResponse]:
    return Call("POST", f"/tasks/{_task(ref)}/retry", SubmitResponse.model_validate)


def remove_vps(ref: str, force: bool = False) -> Call[TaskView]:
    params = {"force": "true"} if force else {}
    return Call("POST", f"/tasks/{ref}/remove", TaskView.model_validate, params=params)


def list_nodes() -> Call[list[NodeView]]:
    return Call("GET", "/nodes", _nodes.validate_python)


def get_node(name: str) -> Call[NodeView]:
    return Call("GET", f"/nodes/{_node(name)}", NodeView.model_validate)


def node_health(name: str) -> Call[NodeHealth]:
    return Call("GET", f"/nodes/{_node(name)}/health", NodeHealth.model_validate)


def node_history(name: str, window: HistoryWindow = "1h") -> Call[NodeHistory]:
    return Call(
        "GET",
        f"/nodes/{_node(name)}/history",
        NodeHistory.model_validate,
        params={"window": window},
    )


def drain(name: str, draining: bool) -> Call[NodeView]:
    return Call(
        "POST",
        f"/nodes/{_node(name)}/{'drain' if draining else 'undrain'}",
        NodeView.model_validate,
    )


def remove_node(name: str, force: bool) -> Call[dict[str, Any]]:
    params = {"force": "true"} if force else {}
    return Call("POST", f"/nodes/{_node(name)}/remove", dict, params=params)


_join_tokens = TypeAdapter(list[JoinTokenView])


def join(req: JoinRequest) -> Call[JoinAccepted]:
    return Call("POST", "/join", JoinAccepted.model_validate, json=req.model_dump(mode="json"))


def create_join_token(spec: JoinTokenCreate) -> Call[JoinTokenCreated]:
    body = spec.model_dump(mode="json")
    return Call("POST", "/join-tokens", JoinTokenCreated.model_validate, json=body)


def join_tokens() -> Call[list[JoinTokenView]]:
    return Call("GET", "/join-tokens", _join_tokens.validate_python)


def revoke_join_token(token_id: int) -> Call[JoinTokenView]:
    return Call("POST", f"/join-tokens/{token_id}/revoke", JoinTokenView.model_validate)


_audit = TypeAdapter(list[AuditEntryView])


def audit(user: str | None, since: datetime | None, limit: int) -> Call[list[AuditEntryView]]:
    params: dict[str, Any] = {"limit": limit}
    if user is not None:
        params["user"] = user
    if since is not None:
        params["since"] = since.isoformat()
    return Call("GET", "/audit", _audit.validate_python, params=params)


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", dict)


def logs_path(ref: str) -> str:
    return f"{API_PREFIX}/tasks/{_task(ref)}/logs"


def batch_logs_path(batch: str) -> str:
    return f"{API_PREFIX}/batches/{path_segment(batch, 'batch id')}/logs"


def events_url(base: str, after: int | None = None) -> str:
    """The event stream's URL; with ``after``, kept events after that number come first."""
    query = "" if after is None else f"?after={after}"
    return base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + (
        f"{API_PREFIX}/events{query}"
    )


def parse_event(text: str | bytes) -> Event:
    return Event.model_validate_json(text)


class WaitTracker:
    """Which of the awaited tasks are still running, fed by reads and events."""

    def __init__(self, refs: list[str]) -> None:
        self.refs = refs
        self.final: dict[str, TaskView] = {}
        self.pending: set[str] = set()

    def seen(self, task: TaskView) -> None:
        if task.id in self.pending and task.state in WAIT_DONE_STATES:
            self.pending.discard(task.id)
            self.final[task.id] = task

    def start(self, tasks: list[TaskView]) -> None:
        self.pending = set()
        for task in tasks:
            self.pending.add(task.id)
            self.seen(task)

    @property
    def done(self) -> bool:
        return not self.pending


# -- container environments -------------------------------------------------------
_workspaces = TypeAdapter(list[WorkspaceView])
_versions = TypeAdapter(list[EnvironmentVersionView])


def list_workspaces() -> Call[list[WorkspaceView]]:
    return Call("GET", "/environments", _workspaces.validate_python)


def create_workspace(name: str, image: str | None) -> Call[WorkspaceView]:
    body = {"name": name, "image": image}
    return Call("POST", "/environments", WorkspaceView.model_validate, json=body)


def workspace_action(name: str, action: str) -> Call[WorkspaceView]:
    return Call("POST", f"/environments/{environment(name)}/{action}", WorkspaceView.model_validate)


def list_tarballs(name: str | None = None) -> Call[list[EnvironmentVersionView]]:
    params = {"name": name} if name else {}
    return Call("GET", "/environments/tarballs", _versions.validate_python, params=params)
