"""The task state machine: a transition table ``(state, event) -> (state, actions)``.

Lifecycle::

    pending ──placed──▶ assigning ──started──▶ running ◀──resumed── paused
       ▲                   │                     │  └──paused──────▶  │
       └─dispatch_failed───┤                     ▼                    ▼
                           │     completed | failed | killed | oom_killed | timed_out
                           └─start_failed | dispatch_error | assign_expired──▶ failed
                           └─killed_before_start──▶ killed
    assigning/running/paused ──runner_lost──▶ lost ──started/paused──▶ running/paused
    lost (never started) ──dispatch_failed──▶ pending, ──assign_expired──▶ failed
    vps: running/paused/lost ──stopped──▶ stopped ──restart──▶ pending
    vps: running/paused ──restart_requested──▶ (same, runner stops and starts the
         container) ──restarted──▶ running
    vps: stopped/ended (running/paused: forced) ──remove_requested──▶ (same, runner
         removes the container) ──removed──▶ removed

Pure: no I/O. The host applies a transition, records it with its cause, and carries
out the returned actions. Which event a runner's report or heartbeat means is decided
in :mod:`kawa.core.reports` and :mod:`kawa.core.reconcile`.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import StrEnum


class TaskKind(StrEnum):
    COMMAND = "command"
    VPS = "vps"


class TaskState(StrEnum):
    PENDING = "pending"
    ASSIGNING = "assigning"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"
    OOM_KILLED = "oom_killed"
    TIMED_OUT = "timed_out"
    LOST = "lost"
    STOPPED = "stopped"
    REMOVED = "removed"
    """A VPS whose container and snapshots were removed; its row stays as history."""


class Desired(StrEnum):
    """What was last asked of a task: to run, or to stop (a kill, or a VPS stop). A
    runner still running a task whose desired state is ``stop`` is told to kill it."""

    RUN = "run"
    STOP = "stop"


class TaskEvent(StrEnum):
    PLACED = "placed"
    DISPATCH_FAILED = "dispatch_failed"
    """The order never reached the runner and its node is offline: queue it again."""
    DISPATCH_ERROR = "dispatch_error"
    """The order could not be built, sent or accepted, and retrying would not help."""
    START_FAILED = "start_failed"
    """The runner refused the order or could not start it."""
    ASSIGN_EXPIRED = "assign_expired"
    """Never started, no order under way, and the runner has not listed it for too long."""
    KILLED_BEFORE_START = "killed_before_start"
    """A kill of an assigning task its runner does not have: nothing runs, so it ends."""
    STARTED = "started"
    PAUSED = "paused"
    RESUMED = "resumed"
    EXITED_OK = "exited_ok"
    EXITED_ERROR = "exited_error"
    OOM_KILLED = "oom_killed"
    TIMED_OUT = "timed_out"
    KILLED = "killed"
    STOPPED = "stopped"
    RUNNER_LOST = "runner_lost"
    KILL_REQUESTED = "kill_requested"
    PAUSE_REQUESTED = "pause_requested"
    RESUME_REQUESTED = "resume_requested"
    STOP_REQUESTED = "stop_requested"
    RESTART_REQUESTED = "restart_requested"
    RESTARTED = "restarted"
    REMOVE_REQUESTED = "remove_requested"
    REMOVED = "removed"


class Action(StrEnum):
    """What the host must do after a transition: ``RELEASE`` wakes the scheduler, the
    ``SEND_*`` ones go to the task's runner (``kawa.host.actions``). Placement needs
    none: the scheduler that placed the task sends its order."""

    RELEASE = "release"
    SEND_KILL = "send_kill"
    SEND_PAUSE = "send_pause"
    SEND_RESUME = "send_resume"
    SEND_STOP = "send_stop"
    SEND_RESTART = "send_restart"
    SEND_REMOVE = "send_remove"


S, E, A = TaskState, TaskEvent, Action

FINAL_STATES: frozenset[TaskState] = frozenset(
    {S.COMPLETED, S.FAILED, S.KILLED, S.OOM_KILLED, S.TIMED_OUT, S.REMOVED}
)
"""States a command task never leaves (a VPS leaves them only by a restart, and never
leaves ``removed``)."""

HOLDS_RESOURCES: frozenset[TaskState] = frozenset({S.ASSIGNING, S.RUNNING, S.PAUSED, S.LOST})
"""States in which a task's allocation is held (a lost task keeps it until it is settled)."""

WAIT_DONE_STATES: frozenset[TaskState] = FINAL_STATES | {S.LOST, S.STOPPED}
"""States in which ``kawa task wait`` returns: the task is not going to progress by itself."""

AWAITING_START: frozenset[TaskState] = frozenset({S.PENDING, S.ASSIGNING})
"""States of a task that has neither started nor ended yet."""

_ON_NODE = (S.ASSIGNING, S.RUNNING, S.PAUSED, S.LOST)
_VPS_ENDED = (S.STOPPED, S.COMPLETED, S.FAILED, S.KILLED, S.OOM_KILLED, S.TIMED_OUT)
"""A VPS in these states may have a kept container on its node and holds nothing."""
VPS_REMOVABLE: frozenset[TaskState] = frozenset(_VPS_ENDED)
"""States from which a VPS is removed without ``--force`` (and by the retention)."""
_ENDINGS = {
    E.EXITED_OK: S.COMPLETED,
    E.EXITED_ERROR: S.FAILED,
    E.OOM_KILLED: S.OOM_KILLED,
    E.TIMED_OUT: S.TIMED_OUT,
    E.KILLED: S.KILLED,
}

RAN_ENDINGS: frozenset[TaskEvent] = frozenset(_ENDINGS)
"""Endings a runner reports for a process that ran (it may report one before the host
has seen the task start: a task that ends in milliseconds)."""


@dataclass(frozen=True)
class Transition:
    source: TaskState
    event: TaskEvent
    target: TaskState
    actions: tuple[Action, ...] = ()


def _rows() -> tuple[Transition, ...]:
    rows: list[Transition] = [
        Transition(S.PENDING, E.PLACED, S.ASSIGNING),
        Transition(S.ASSIGNING, E.DISPATCH_FAILED, S.PENDING, (A.RELEASE,)),
        Transition(S.ASSIGNING, E.START_FAILED, S.FAILED, (A.RELEASE,)),
        # A task called lost while its order could not reach the runner never ran there.
        Transition(S.LOST, E.DISPATCH_FAILED, S.PENDING, (A.RELEASE,)),
        Transition(S.ASSIGNING, E.DISPATCH_ERROR, S.FAILED, (A.RELEASE,)),
        Transition(S.ASSIGNING, E.ASSIGN_EXPIRED, S.FAILED, (A.RELEASE,)),
        # ... nor did one its runner, back, does not have while no order is under way.
        Transition(S.LOST, E.ASSIGN_EXPIRED, S.FAILED, (A.RELEASE,)),
        Transition(S.ASSIGNING, E.KILLED_BEFORE_START, S.KILLED, (A.RELEASE,)),
        Transition(S.ASSIGNING, E.STARTED, S.RUNNING),
        Transition(S.LOST, E.STARTED, S.RUNNING),
        Transition(S.PAUSED, E.STARTED, S.RUNNING),
        Transition(S.RUNNING, E.PAUSED, S.PAUSED),
        Transition(S.LOST, E.PAUSED, S.PAUSED),
        Transition(S.PAUSED, E.RESUMED, S.RUNNING),
        Transition(S.PENDING, E.KILL_REQUESTED, S.KILLED),
        Transition(S.LOST, E.KILL_REQUESTED, S.KILLED, (A.RELEASE,)),
        Transition(S.ASSIGNING, E.KILL_REQUESTED, S.ASSIGNING, (A.SEND_KILL,)),
        Transition(S.RUNNING, E.KILL_REQUESTED, S.RUNNING, (A.SEND_KILL,)),
        Transition(S.PAUSED, E.KILL_REQUESTED, S.PAUSED, (A.SEND_KILL,)),
        Transition(S.RUNNING, E.PAUSE_REQUESTED, S.RUNNING, (A.SEND_PAUSE,)),
        Transition(S.PAUSED, E.RESUME_REQUESTED, S.PAUSED, (A.SEND_RESUME,)),
    ]
    for source in _ON_NODE:
        rows.append(Transition(source, E.STOPPED, S.STOPPED, (A.RELEASE,)))
        if source is not S.LOST:
            rows.append(Transition(source, E.RUNNER_LOST, S.LOST))
        for event, target in _ENDINGS.items():
            rows.append(Transition(source, event, target, (A.RELEASE,)))
    for source in (S.RUNNING, S.PAUSED):
        rows.append(Transition(source, E.STOP_REQUESTED, source, (A.SEND_STOP,)))
    for source in (S.STOPPED, S.FAILED, S.LOST, S.OOM_KILLED, S.TIMED_OUT, S.KILLED):
        actions = (A.RELEASE,) if source is S.LOST else ()
        rows.append(Transition(source, E.RESTART_REQUESTED, S.PENDING, actions))
    for source in (S.RUNNING, S.PAUSED):
        # A real stop and start of the same container; the allocation stays held.
        rows.append(Transition(source, E.RESTART_REQUESTED, source, (A.SEND_RESTART,)))
        rows.append(Transition(source, E.RESTARTED, S.RUNNING))
        # Forced removal: the runner stops and removes the container, then it is released.
        rows.append(Transition(source, E.REMOVE_REQUESTED, source, (A.SEND_REMOVE,)))
        rows.append(Transition(source, E.REMOVED, S.REMOVED, (A.RELEASE,)))
    for source in _VPS_ENDED:
        rows.append(Transition(source, E.REMOVE_REQUESTED, source, (A.SEND_REMOVE,)))
        rows.append(Transition(source, E.REMOVED, S.REMOVED))
    return tuple(rows)


def index(rows: tuple[Transition, ...]) -> dict[tuple[TaskState, TaskEvent], Transition]:
    """The rows keyed by ``(source, event)``; two rows for one key are an error."""
    table: dict[tuple[TaskState, TaskEvent], Transition] = {}
    for row in rows:
        key = (row.source, row.event)
        if key in table:
            raise ValueError(f"two transitions for {row.event.value} in {row.source.value}")
        table[key] = row
    return table


ROWS: tuple[Transition, ...] = _rows()
TRANSITIONS: dict[tuple[TaskState, TaskEvent], Transition] = index(ROWS)

_VPS_ONLY_EVENTS = frozenset(
    {
        E.STOP_REQUESTED,
        E.STOPPED,
        E.RESTART_REQUESTED,
        E.RESTARTED,
        E.REMOVE_REQUESTED,
        E.REMOVED,
    }
)


class InvalidTransition(ValueError):
    """The event is not allowed in the task's current state."""

    def __init__(self, state: TaskState, event: TaskEvent, kind: TaskKind) -> None:
        self.state, self.event, self.kind = state, event, kind
        verb = event.value.removesuffix("_requested")
        if event in _VPS_ONLY_EVENTS and kind is TaskKind.COMMAND:
            message = f"cannot {verb} a command task (only VPS tasks can)"
        elif event.value.endswith("_requested"):
            message = f"cannot {verb} a task that is {state.value}"
        else:
            message = f"event {event.value} is not valid in state {state.value}"
        super().__init__(message)


def transition(state: TaskState, event: TaskEvent, kind: TaskKind = TaskKind.COMMAND) -> Transition:
    """The transition for ``event`` in ``state``; raises :class:`InvalidTransition`."""
    found = TRANSITIONS.get((state, event))
    if found is None or (kind is TaskKind.COMMAND and event in _VPS_ONLY_EVENTS):
        raise InvalidTransition(state, event, kind)
    return found


def failure_reason(exit_code: int | None) -> str:
    """The reason of a failed task that reported none, from what its exit code tells."""
    if exit_code is None:
        return "the task failed and left no exit status"
    if exit_code == 126:
        return "the command could not be executed (exit code 126)"
    if exit_code == 127:
        return "the command was not found (exit code 127)"
    number = -exit_code if exit_code < 0 else exit_code - 128
    if exit_code < 0 or 128 < exit_code < 128 + signal.NSIG:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"killed by {name} (exit code {exit_code})"
    return f"exited with code {exit_code}"
