"""The task state machine: its table, its refusals and random walks through it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kawa.core.task_states import (
    FINAL_STATES,
    HOLDS_RESOURCES,
    ROWS,
    TRANSITIONS,
    WAIT_DONE_STATES,
    Action,
    InvalidTransition,
    TaskEvent,
    TaskKind,
    TaskState,
    Transition,
    failure_reason,
    index,
    transition,
)

S, E, A = TaskState, TaskEvent, Action
PROPERTY = settings(max_examples=200, deadline=None, database=None)
VPS_ONLY = (
    E.STOP_REQUESTED,
    E.STOPPED,
    E.RESTART_REQUESTED,
    E.RESTARTED,
    E.REMOVE_REQUESTED,
    E.REMOVED,
)


@pytest.mark.parametrize(
    ("state", "event", "kind", "target", "actions"),
    [
        (S.PENDING, E.PLACED, TaskKind.COMMAND, S.ASSIGNING, ()),
        (S.ASSIGNING, E.DISPATCH_FAILED, TaskKind.COMMAND, S.PENDING, (A.RELEASE,)),
        (S.ASSIGNING, E.START_FAILED, TaskKind.COMMAND, S.FAILED, (A.RELEASE,)),
        (S.ASSIGNING, E.DISPATCH_ERROR, TaskKind.COMMAND, S.FAILED, (A.RELEASE,)),
        (S.ASSIGNING, E.DISPATCH_ERROR, TaskKind.VPS, S.FAILED, (A.RELEASE,)),
        (S.ASSIGNING, E.ASSIGN_EXPIRED, TaskKind.COMMAND, S.FAILED, (A.RELEASE,)),
        (S.ASSIGNING, E.KILLED_BEFORE_START, TaskKind.COMMAND, S.KILLED, (A.RELEASE,)),
        (S.LOST, E.DISPATCH_FAILED, TaskKind.COMMAND, S.PENDING, (A.RELEASE,)),
        (S.LOST, E.ASSIGN_EXPIRED, TaskKind.COMMAND, S.FAILED, (A.RELEASE,)),
        (S.ASSIGNING, E.STARTED, TaskKind.COMMAND, S.RUNNING, ()),
        (S.RUNNING, E.EXITED_OK, TaskKind.COMMAND, S.COMPLETED, (A.RELEASE,)),
        (S.RUNNING, E.EXITED_ERROR, TaskKind.COMMAND, S.FAILED, (A.RELEASE,)),
        (S.RUNNING, E.OOM_KILLED, TaskKind.COMMAND, S.OOM_KILLED, (A.RELEASE,)),
        (S.RUNNING, E.TIMED_OUT, TaskKind.COMMAND, S.TIMED_OUT, (A.RELEASE,)),
        (S.PAUSED, E.KILLED, TaskKind.COMMAND, S.KILLED, (A.RELEASE,)),
        (S.PENDING, E.KILL_REQUESTED, TaskKind.COMMAND, S.KILLED, ()),
        (S.RUNNING, E.KILL_REQUESTED, TaskKind.COMMAND, S.RUNNING, (A.SEND_KILL,)),
        (S.ASSIGNING, E.KILL_REQUESTED, TaskKind.COMMAND, S.ASSIGNING, (A.SEND_KILL,)),
        (S.PAUSED, E.KILL_REQUESTED, TaskKind.COMMAND, S.PAUSED, (A.SEND_KILL,)),
        (S.LOST, E.KILL_REQUESTED, TaskKind.COMMAND, S.KILLED, (A.RELEASE,)),
        (S.RUNNING, E.PAUSE_REQUESTED, TaskKind.COMMAND, S.RUNNING, (A.SEND_PAUSE,)),
        (S.RUNNING, E.PAUSED, TaskKind.COMMAND, S.PAUSED, ()),
        (S.PAUSED, E.RESUME_REQUESTED, TaskKind.COMMAND, S.PAUSED, (A.SEND_RESUME,)),
        (S.PAUSED, E.RESUMED, TaskKind.COMMAND, S.RUNNING, ()),
        (S.RUNNING, E.RUNNER_LOST, TaskKind.COMMAND, S.LOST, ()),
        (S.LOST, E.STARTED, TaskKind.COMMAND, S.RUNNING, ()),
        (S.LOST, E.PAUSED, TaskKind.COMMAND, S.PAUSED, ()),
        (S.LOST, E.EXITED_OK, TaskKind.COMMAND, S.COMPLETED, (A.RELEASE,)),
        (S.RUNNING, E.STOP_REQUESTED, TaskKind.VPS, S.RUNNING, (A.SEND_STOP,)),
        (S.RUNNING, E.STOPPED, TaskKind.VPS, S.STOPPED, (A.RELEASE,)),
        (S.LOST, E.STOPPED, TaskKind.VPS, S.STOPPED, (A.RELEASE,)),
        (S.STOPPED, E.RESTART_REQUESTED, TaskKind.VPS, S.PENDING, ()),
        (S.FAILED, E.RESTART_REQUESTED, TaskKind.VPS, S.PENDING, ()),
        (S.LOST, E.RESTART_REQUESTED, TaskKind.VPS, S.PENDING, (A.RELEASE,)),
        (S.RUNNING, E.RESTART_REQUESTED, TaskKind.VPS, S.RUNNING, (A.SEND_RESTART,)),
        (S.PAUSED, E.RESTART_REQUESTED, TaskKind.VPS, S.PAUSED, (A.SEND_RESTART,)),
        (S.RUNNING, E.RESTARTED, TaskKind.VPS, S.RUNNING, ()),
        (S.PAUSED, E.RESTARTED, TaskKind.VPS, S.RUNNING, ()),
        (S.STOPPED, E.REMOVE_REQUESTED, TaskKind.VPS, S.STOPPED, (A.SEND_REMOVE,)),
        (S.FAILED, E.REMOVE_REQUESTED, TaskKind.VPS, S.FAILED, (A.SEND_REMOVE,)),
        (S.KILLED, E.REMOVE_REQUESTED, TaskKind.VPS, S.KILLED, (A.SEND_REMOVE,)),
        (S.RUNNING, E.REMOVE_REQUESTED, TaskKind.VPS, S.RUNNING, (A.SEND_REMOVE,)),
        (S.PAUSED, E.REMOVE_REQUESTED, TaskKind.VPS, S.PAUSED, (A.SEND_REMOVE,)),
        (S.STOPPED, E.REMOVED, TaskKind.VPS, S.REMOVED, ()),
        (S.FAILED, E.REMOVED, TaskKind.VPS, S.REMOVED, ()),
        (S.RUNNING, E.REMOVED, TaskKind.VPS, S.REMOVED, (A.RELEASE,)),
        (S.PAUSED, E.REMOVED, TaskKind.VPS, S.REMOVED, (A.RELEASE,)),
    ],
)
def test_table_rows(
    state: TaskState,
    event: TaskEvent,
    kind: TaskKind,
    target: TaskState,
    actions: tuple[Action, ...],
) -> None:
    found = transition(state, event, kind)
    assert (found.source, found.event, found.target, found.actions) == (
        state,
        event,
        target,
        actions,
    )


@pytest.mark.parametrize("kind", list(TaskKind))
@pytest.mark.parametrize("event", [E.PAUSE_REQUESTED, E.RESUME_REQUESTED, E.KILL_REQUESTED])
@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_states_refuse_user_requests(
    state: TaskState, event: TaskEvent, kind: TaskKind
) -> None:
    with pytest.raises(InvalidTransition) as caught:
        transition(state, event, kind)
    message = str(caught.value)
    assert state.value in message
    assert event.value.removesuffix("_requested") in message
    assert (caught.value.state, caught.value.event, caught.value.kind) == (state, event, kind)


@pytest.mark.parametrize("event", VPS_ONLY)
@pytest.mark.parametrize("state", list(TaskState))
def test_vps_only_events_are_refused_for_command_tasks(state: TaskState, event: TaskEvent) -> None:
    with pytest.raises(InvalidTransition) as caught:
        transition(state, event, TaskKind.COMMAND)
    if event.value.endswith("_requested"):
        assert "only VPS tasks" in str(caught.value)


def test_vps_events_are_accepted_for_vps_tasks() -> None:
    assert transition(S.PAUSED, E.STOP_REQUESTED, TaskKind.VPS).actions == (A.SEND_STOP,)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.PENDING, E.REMOVE_REQUESTED),
        (S.ASSIGNING, E.REMOVE_REQUESTED),
        (S.LOST, E.REMOVE_REQUESTED),
        (S.REMOVED, E.REMOVE_REQUESTED),
        (S.REMOVED, E.RESTART_REQUESTED),
        (S.ASSIGNING, E.RESTART_REQUESTED),
        (S.STOPPED, E.RESTARTED),
    ],
)
def test_vps_refusals_name_the_state(state: TaskState, event: TaskEvent) -> None:
    with pytest.raises(InvalidTransition) as caught:
        transition(state, event, TaskKind.VPS)
    assert state.value in str(caught.value)


def test_removed_vps_accepts_nothing() -> None:
    for event in TaskEvent:
        with pytest.raises(InvalidTransition):
            transition(S.REMOVED, event, TaskKind.VPS)


def test_non_request_event_message_names_event_and_state() -> None:
    with pytest.raises(InvalidTransition, match="event started is not valid in state pending"):
        transition(S.PENDING, E.STARTED)


def test_final_states_are_done_for_wait() -> None:
    assert FINAL_STATES < WAIT_DONE_STATES
    assert {S.LOST, S.STOPPED} <= WAIT_DONE_STATES
    assert not FINAL_STATES & HOLDS_RESOURCES


def test_every_row_is_keyed_by_its_own_source_and_event() -> None:
    for (state, event), row in TRANSITIONS.items():
        assert (row.source, row.event) == (state, event)


def test_no_two_rows_share_a_state_and_event() -> None:
    keys = [(row.source, row.event) for row in ROWS]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    assert duplicated == []
    assert len(TRANSITIONS) == len(ROWS)


def test_a_duplicated_row_is_refused_not_overwritten() -> None:
    again = Transition(S.ASSIGNING, E.STARTED, S.FAILED)
    with pytest.raises(ValueError, match="two transitions for started in assigning"):
        index((*ROWS, again))


@pytest.mark.parametrize(
    ("event", "sources"),
    [
        (E.DISPATCH_FAILED, {S.ASSIGNING, S.LOST}),
        (E.DISPATCH_ERROR, {S.ASSIGNING}),
        (E.ASSIGN_EXPIRED, {S.ASSIGNING, S.LOST}),
        (E.KILLED_BEFORE_START, {S.ASSIGNING}),
    ],
)
@pytest.mark.parametrize("state", list(TaskState))
def test_dispatch_outcomes_apply_only_to_tasks_not_started(
    state: TaskState, event: TaskEvent, sources: set[TaskState]
) -> None:
    if state in sources:
        assert transition(state, event).target in (S.PENDING, S.FAILED, S.KILLED)
    else:
        with pytest.raises(InvalidTransition, match=f"event {event.value} is not valid"):
            transition(state, event)


@pytest.mark.parametrize(
    ("exit_code", "reason"),
    [
        (None, "the task failed and left no exit status"),
        (1, "exited with code 1"),
        (7, "exited with code 7"),
        (126, "the command could not be executed (exit code 126)"),
        (127, "the command was not found (exit code 127)"),
        (128, "exited with code 128"),
        (137, "killed by SIGKILL (exit code 137)"),
        (143, "killed by SIGTERM (exit code 143)"),
        (-9, "killed by SIGKILL (exit code -9)"),
        (255, "exited with code 255"),
    ],
)
def test_failure_reason_says_what_the_exit_code_tells(exit_code: int | None, reason: str) -> None:
    assert failure_reason(exit_code) == reason


def _allowed(state: TaskState, kind: TaskKind) -> list[TaskEvent]:
    allowed = [event for (source, event) in TRANSITIONS if source is state]
    return [e for e in allowed if kind is TaskKind.VPS or e not in VPS_ONLY]


@PROPERTY
@given(kind=st.sampled_from(list(TaskKind)), data=st.data())
def test_random_walk_from_pending(kind: TaskKind, data: st.DataObject) -> None:
    state = S.PENDING
    holds = False  # resources acquired by placement, given back by RELEASE
    for _ in range(data.draw(st.integers(min_value=0, max_value=40))):
        # Half the time any event at all (most are refused), else one the table allows.
        allowed = _allowed(state, kind)
        pick_allowed: bool = data.draw(st.booleans())
        if allowed and pick_allowed:
            event = data.draw(st.sampled_from(allowed))
        else:
            event = data.draw(st.sampled_from(list(TaskEvent)))
        try:
            step = transition(state, event, kind)
        except InvalidTransition:
            assert event not in allowed
            continue
        assert step.source is state
        if kind is TaskKind.COMMAND:
            assert state not in FINAL_STATES, f"left final state {state} on {event}"
            assert step.target is not S.STOPPED
        if A.RELEASE in step.actions:
            assert state in HOLDS_RESOURCES
            assert holds
            holds = False
        if event is E.PLACED:
            assert not holds
            holds = True
        state = step.target
        assert holds == (state in HOLDS_RESOURCES)


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_command_final_states_accept_nothing(state: TaskState) -> None:
    for event in TaskEvent:
        with pytest.raises(InvalidTransition):
            transition(state, event, TaskKind.COMMAND)
