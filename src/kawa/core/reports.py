"""What runners say about their tasks, as state-machine events.

A runner classifies how a task ended (:func:`classify_ending`) and reports it; the host
turns each report into the event it applies (:func:`report_event`), and a runner's
answer to a control into the event that confirms it (:func:`confirmation`).

Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum

from kawa.core.task_states import Action, Desired, TaskEvent, TaskKind, TaskState


class ExitKind(StrEnum):
    """How the runner saw a task end (the host maps it through the state machine)."""

    EXITED = "exited"
    OOM_KILLED = "oom_killed"
    KILLED = "killed"
    TIMED_OUT = "timed_out"
    START_FAILED = "start_failed"
    VANISHED = "vanished"


class ReportedState(StrEnum):
    """The state a runner reports a task in."""

    RUNNING = "running"
    PAUSED = "paused"
    ENDED = "ended"


class ObservedState(StrEnum):
    """How a runner lists one of its tasks in a heartbeat (the exit itself is reported
    separately)."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"


def observed_state(listed: str) -> ObservedState:
    """The state a runner lists a task in; one this host does not know counts as
    ``starting`` (the runner has the task, in no state the host acts on)."""
    if listed in ObservedState.__members__.values():
        return ObservedState(listed)
    return ObservedState.STARTING


def classify_ending(
    exit_code: int | None,
    error: str | None,
    *,
    oom: bool,
    kill_requested: bool,
    timed_out: bool,
    timeout: float | None,
) -> tuple[ExitKind, str | None]:
    """How a task ended, by precedence: timeout, requested kill, OOM, vanished (no exit
    code), exit; with the error to report (``error``, or one the ending implies)."""
    if timed_out:
        return ExitKind.TIMED_OUT, f"timed out after {timeout or 0:g}s"
    if kill_requested:
        return ExitKind.KILLED, error
    if oom:
        return (
            ExitKind.OOM_KILLED,
            error or "killed by the kernel's OOM killer (memory limit reached)",
        )
    if exit_code is None:
        return ExitKind.VANISHED, error
    return ExitKind.EXITED, error


def classify_exit(
    exit_code: int, *, oom_killed: bool, kill_requested: bool, timed_out: bool
) -> TaskEvent:
    """Which ending event a finished container or process is."""
    if timed_out:
        return TaskEvent.TIMED_OUT
    if kill_requested:
        return TaskEvent.KILLED
    if oom_killed:
        return TaskEvent.OOM_KILLED
    return TaskEvent.EXITED_OK if exit_code == 0 else TaskEvent.EXITED_ERROR


def ending_event(
    exit_kind: ExitKind | None, exit_code: int | None, desired: Desired, kind: TaskKind
) -> TaskEvent:
    """The event of a reported ending. A task asked to stop that ends anyhow counts as
    killed; a VPS stopped on request is ``stopped`` (it can be restarted)."""
    exit_kind = exit_kind or ExitKind.EXITED
    if exit_kind is ExitKind.START_FAILED:
        return TaskEvent.START_FAILED
    if exit_kind is ExitKind.VANISHED:
        return TaskEvent.EXITED_ERROR
    event = classify_exit(
        exit_code if exit_code is not None else -1,
        oom_killed=exit_kind is ExitKind.OOM_KILLED,
        kill_requested=exit_kind is ExitKind.KILLED or desired is Desired.STOP,
        timed_out=exit_kind is ExitKind.TIMED_OUT,
    )
    if kind is TaskKind.VPS and desired is Desired.STOP and event is TaskEvent.KILLED:
        return TaskEvent.STOPPED
    return event


def report_event(
    reported: ReportedState,
    state: TaskState,
    kind: TaskKind,
    desired: Desired,
    exit_kind: ExitKind | None = None,
    exit_code: int | None = None,
) -> TaskEvent:
    """The event a runner's report is for a task now in ``state``. A task reported
    running while it is paused was resumed. The host applies it only where the state
    machine allows (a stale or duplicate report changes nothing)."""
    if reported is ReportedState.ENDED:
        return ending_event(exit_kind, exit_code, desired, kind)
    if reported is ReportedState.PAUSED:
        return TaskEvent.PAUSED
    return TaskEvent.RESUMED if state is TaskState.PAUSED else TaskEvent.STARTED


_CONFIRMATIONS = {
    (Action.SEND_PAUSE, ObservedState.PAUSED): TaskEvent.PAUSED,
    (Action.SEND_RESUME, ObservedState.RUNNING): TaskEvent.RESUMED,
    (Action.SEND_RESTART, ObservedState.RUNNING): TaskEvent.RESTARTED,
}


def confirmation(action: Action, answered: str | None) -> TaskEvent | None:
    """The event a runner's answer to a control confirms at once, if any: a pause
    answered ``paused``, a resume or a restart answered ``running``."""
    if answered is None or answered not in ObservedState.__members__.values():
        return None
    return _CONFIRMATIONS.get((action, ObservedState(answered)))
