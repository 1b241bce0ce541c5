"""What the host does when an order does not reach its runner: retry while the task
still waits for that node and the node is online, else end or requeue the task.

Pure: the host's scheduler loop reads the task and node, asks :func:`retry_verdict`,
and applies what :func:`giving_up` says once it stops retrying.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kawa.core.task_states import Desired, TaskEvent, TaskState


class RetryVerdict(StrEnum):
    RETRY = "retry"
    """The task still waits for this node, which is online: send the order again."""
    SETTLED = "settled"
    """The task moved on (ended, or went elsewhere): nothing more to do."""
    KILLED = "killed"
    """A kill came while the order was under way."""
    OFFLINE = "offline"
    """The node went offline (or the task was lost with it): queue the task again."""


_WAITING = (TaskState.ASSIGNING, TaskState.LOST)


def retry_verdict(
    state: TaskState | None, desired: Desired, on_node: bool, node_online: bool
) -> RetryVerdict:
    """Whether to send an undelivered order again. ``state`` None: the task is gone;
    ``on_node``: the task is still placed on the node the order was for."""
    if state is None or state not in _WAITING or not on_node:
        return RetryVerdict.SETTLED
    if desired is Desired.STOP:
        return RetryVerdict.KILLED
    if not node_online or state is TaskState.LOST:
        return RetryVerdict.OFFLINE
    return RetryVerdict.RETRY


@dataclass(frozen=True)
class GiveUp:
    """How a task ends (or is requeued) when its order is given up on."""

    event: TaskEvent
    cause: str
    error: str | None


def giving_up(verdict: RetryVerdict, node: str, reason: str, window: float) -> GiveUp | None:
    """The event for a task whose order stopped being retried with ``verdict``;
    ``reason`` says what went wrong, ``window`` how long it was retried."""
    if verdict is RetryVerdict.KILLED:
        return GiveUp(
            TaskEvent.KILLED_BEFORE_START, f"killed before its order reached runner {node}", None
        )
    if verdict is RetryVerdict.OFFLINE:  # never delivered: another node (or this one) runs it
        return GiveUp(TaskEvent.DISPATCH_FAILED, f"{reason}; node {node} is offline", None)
    if verdict is RetryVerdict.RETRY:  # online by heartbeat, yet its runner cannot be reached
        return GiveUp(
            TaskEvent.DISPATCH_ERROR, f"runner {node} unreachable for {window:g}s", reason
        )
    return None
