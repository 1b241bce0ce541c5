"""Heartbeat reconciliation: what the host makes of a runner's list of its tasks.

Each heartbeat lists the tasks a runner has and in which state. For every task the
host places on that node (assigning, running, paused or lost), :func:`reconcile` says
which events to apply, in order, which actions to carry out, and what to remember until
the next heartbeat. :func:`is_silent` says when a node has missed its heartbeats.

Pure: no I/O. Times are seconds on one clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from kawa.core.reports import ObservedState
from kawa.core.task_states import (
    Action,
    Desired,
    InvalidTransition,
    TaskEvent,
    TaskKind,
    TaskState,
    transition,
)

S, E = TaskState, TaskEvent
_LIVE = (ObservedState.RUNNING, ObservedState.PAUSED)


@dataclass(frozen=True)
class TaskOnNode:
    """A task the host places on the heartbeat's node, as the host has it now."""

    id: int
    kind: TaskKind
    state: TaskState
    started: bool
    """Whether it has ever run (a never-started task is checked as an assignment)."""
    desired: Desired
    node: str


@dataclass(frozen=True)
class Memory:
    """What the host remembers of a task between heartbeats."""

    orphaned: bool = False
    """Found ``assigning`` when this host process started: its dispatch died with an
    earlier process, so only its runner can say whether it got the order."""
    dispatching: bool = False
    """Its order is being sent now."""
    missing_since: float | None = None
    """Since when its runner has not listed it, while that matters."""


@dataclass(frozen=True)
class Step:
    """One event to apply, why, and the error the task records if it is applied."""

    event: TaskEvent
    cause: str
    error: str | None = None


@dataclass(frozen=True)
class Reconciliation:
    steps: tuple[Step, ...]
    """Events to apply in order; each is valid after the ones before it."""
    actions: tuple[Action, ...]
    """Actions to carry out after the steps are applied."""
    memory: Memory
    """What to remember until the next heartbeat."""


def reconcile(
    task: TaskOnNode,
    seen: ObservedState | None,
    memory: Memory,
    now: float,
    node_timeout: float,
) -> Reconciliation:
    """Reconcile ``task`` with how its runner lists it (``seen``, None when not at all).

    - A lost task its runner, back, still runs or pauses is running or paused again.
    - An orphaned assignment is settled by the runner's word: running or paused there,
      or (not listed) never received and queued again; one listed ``exited`` waits for
      its report.
    - A task asked to stop that still runs is killed again.
    - A never-started task whose order is not under way starts once listed running, and
      fails when its runner has not listed it for ``node_timeout``.
    - A running or paused task its runner no longer lists fails after ``node_timeout``
      (exits are reported separately and normally arrive first).
    """
    rec = _Reconciler(task)
    live = seen in _LIVE
    if rec.state is S.LOST and live:
        event = E.STARTED if seen is ObservedState.RUNNING else E.PAUSED
        rec.apply(event, f"runner {task.node} is back and still has it")
    orphaned = memory.orphaned
    if orphaned and seen is not ObservedState.EXITED:
        orphaned = False
        if rec.state is S.ASSIGNING and live:
            cause = f"runner {task.node} has it (dispatched before a host restart)"
            rec.apply(E.STARTED, cause)
            if seen is ObservedState.PAUSED:
                rec.apply(E.PAUSED, cause)
        elif rec.state is S.ASSIGNING and seen is None:
            rec.apply(
                E.DISPATCH_FAILED,
                f"runner {task.node} never received it (its dispatch died with the host)",
            )
    actions = (Action.SEND_KILL,) if task.desired is Desired.STOP and live else ()
    missing = memory.missing_since
    if rec.state is S.ASSIGNING or not rec.started:
        if memory.dispatching or seen is not None:
            missing = None
            if not memory.dispatching and seen is ObservedState.RUNNING:
                rec.apply(E.STARTED, f"runner {task.node} reports it running")
        else:
            missing = now if missing is None else missing
            if now - missing > node_timeout:
                missing = None
                rec.apply(
                    E.ASSIGN_EXPIRED,
                    "its runner does not have it",
                    f"not started: runner {task.node} has not had the task for "
                    f"{node_timeout:g}s and no order is under way",
                )
    elif seen is not None or rec.state not in (S.RUNNING, S.PAUSED):
        missing = None
    else:
        missing = now if missing is None else missing
        if now - missing > node_timeout:
            missing = None
            rec.apply(
                E.EXITED_ERROR,
                "runner no longer knows this task",
                "the runner lost track of this task",
            )
    return Reconciliation(tuple(rec.steps), actions, Memory(orphaned, memory.dispatching, missing))


class _Reconciler:
    """The task's state as the steps so far leave it."""

    def __init__(self, task: TaskOnNode) -> None:
        self.kind = task.kind
        self.state = task.state
        self.started = task.started
        self.steps: list[Step] = []

    def apply(self, event: TaskEvent, cause: str, error: str | None = None) -> None:
        """Add the step if the state machine allows it now (else it is stale: skipped)."""
        try:
            found = transition(self.state, event, self.kind)
        except InvalidTransition:
            return
        self.steps.append(Step(event, cause, error))
        self.state = found.target
        self.started = self.started or found.target is S.RUNNING


def is_silent(
    last_heartbeat: float | None, now: float, node_timeout: float, listening_since: float
) -> bool:
    """Whether a node has missed heartbeats for longer than ``node_timeout``. No node
    counts as silent for longer than the host has been listening."""
    cutoff = now - node_timeout
    if listening_since >= cutoff:
        return False
    return last_heartbeat is None or last_heartbeat < cutoff
