"""Runner reports as state-machine events: endings, reports and control answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kawa.core.reports import (
    ExitKind,
    ReportedState,
    classify_ending,
    classify_exit,
    confirmation,
    report_event,
)
from kawa.core.task_states import (
    HOLDS_RESOURCES,
    Action,
    Desired,
    TaskEvent,
    TaskKind,
    TaskState,
    transition,
)

S, E, K = TaskState, TaskEvent, ExitKind
PROPERTY = settings(max_examples=300, deadline=None, database=None)
CMD, VPS = TaskKind.COMMAND, TaskKind.VPS
RUN, STOP = Desired.RUN, Desired.STOP


@pytest.mark.parametrize(
    ("exit_code", "oom", "kill", "timeout", "expected"),
    [
        (0, False, False, False, E.EXITED_OK),
        (1, False, False, False, E.EXITED_ERROR),
        (-9, False, False, False, E.EXITED_ERROR),
        (137, True, False, False, E.OOM_KILLED),
        (0, True, False, False, E.OOM_KILLED),
        (137, True, True, False, E.KILLED),
        (0, False, True, False, E.KILLED),
        (137, True, True, True, E.TIMED_OUT),
        (0, False, False, True, E.TIMED_OUT),
        (143, False, True, True, E.TIMED_OUT),
        (137, True, False, True, E.TIMED_OUT),
    ],
)
def test_classify_exit_precedence(
    exit_code: int, oom: bool, kill: bool, timeout: bool, expected: TaskEvent
) -> None:
    found = classify_exit(exit_code, oom_killed=oom, kill_requested=kill, timed_out=timeout)
    assert found is expected


OOM_TEXT = "killed by the kernel's OOM killer (memory limit reached)"


@pytest.mark.parametrize(
    ("code", "error", "oom", "kill", "timed_out", "expected"),
    [
        (0, None, False, False, False, (K.EXITED, None)),
        (3, "boom", False, False, False, (K.EXITED, "boom")),
        (None, "gone", False, False, False, (K.VANISHED, "gone")),
        (137, None, True, False, False, (K.OOM_KILLED, OOM_TEXT)),
        (137, "own words", True, False, False, (K.OOM_KILLED, "own words")),
        (137, None, True, True, False, (K.KILLED, None)),
        (None, None, False, True, False, (K.KILLED, None)),
        (137, "x", True, True, True, (K.TIMED_OUT, "timed out after 2.5s")),
    ],
)
def test_classify_ending_precedence(
    code: int | None,
    error: str | None,
    oom: bool,
    kill: bool,
    timed_out: bool,
    expected: tuple[ExitKind, str | None],
) -> None:
    found = classify_ending(
        code, error, oom=oom, kill_requested=kill, timed_out=timed_out, timeout=2.5
    )
    assert found == expected


@pytest.mark.parametrize(
    ("reported", "state", "kind", "desired", "exit_kind", "code", "expected"),
    [
        ("running", S.ASSIGNING, CMD, RUN, None, None, E.STARTED),
        ("running", S.LOST, CMD, RUN, None, None, E.STARTED),
        ("running", S.PAUSED, CMD, RUN, None, None, E.RESUMED),
        ("paused", S.RUNNING, CMD, RUN, None, None, E.PAUSED),
        ("ended", S.RUNNING, CMD, RUN, K.EXITED, 0, E.EXITED_OK),
        ("ended", S.RUNNING, CMD, RUN, K.EXITED, 2, E.EXITED_ERROR),
        ("ended", S.RUNNING, CMD, RUN, None, 0, E.EXITED_OK),
        ("ended", S.RUNNING, CMD, RUN, None, None, E.EXITED_ERROR),
        ("ended", S.RUNNING, CMD, RUN, K.VANISHED, None, E.EXITED_ERROR),
        ("ended", S.ASSIGNING, CMD, RUN, K.START_FAILED, None, E.START_FAILED),
        ("ended", S.RUNNING, CMD, RUN, K.OOM_KILLED, 137, E.OOM_KILLED),
        ("ended", S.RUNNING, CMD, RUN, K.TIMED_OUT, 137, E.TIMED_OUT),
        ("ended", S.RUNNING, CMD, RUN, K.KILLED, 137, E.KILLED),
        # Asked to stop: however it ended, it was killed (a timeout still wins).
        ("ended", S.RUNNING, CMD, STOP, K.EXITED, 0, E.KILLED),
        ("ended", S.RUNNING, CMD, STOP, K.OOM_KILLED, 137, E.KILLED),
        ("ended", S.RUNNING, CMD, STOP, K.TIMED_OUT, 137, E.TIMED_OUT),
        # A VPS stopped on request is stopped, not killed: it can be restarted.
        ("ended", S.RUNNING, VPS, STOP, K.KILLED, 137, E.STOPPED),
        ("ended", S.PAUSED, VPS, STOP, K.EXITED, 0, E.STOPPED),
        ("ended", S.RUNNING, VPS, RUN, K.KILLED, 137, E.KILLED),
        ("ended", S.RUNNING, VPS, STOP, K.VANISHED, None, E.EXITED_ERROR),
    ],
)
def test_report_event(
    reported: str,
    state: TaskState,
    kind: TaskKind,
    desired: Desired,
    exit_kind: ExitKind | None,
    code: int | None,
    expected: TaskEvent,
) -> None:
    found = report_event(ReportedState(reported), state, kind, desired, exit_kind, code)
    assert found is expected


@pytest.mark.parametrize(
    ("action", "answer", "expected"),
    [
        (Action.SEND_PAUSE, "paused", E.PAUSED),
        (Action.SEND_RESUME, "running", E.RESUMED),
        (Action.SEND_RESTART, "running", E.RESTARTED),
        (Action.SEND_PAUSE, "running", None),
        (Action.SEND_KILL, "running", None),
        (Action.SEND_STOP, "exited", None),
        (Action.SEND_RESUME, None, None),
        (Action.SEND_RESUME, "bogus", None),
    ],
)
def test_confirmation(action: Action, answer: str | None, expected: TaskEvent | None) -> None:
    assert confirmation(action, answer) is expected


ON_NODE = [S.ASSIGNING, S.RUNNING, S.PAUSED, S.LOST]


@PROPERTY
@given(
    state=st.sampled_from(ON_NODE),
    kind=st.sampled_from(list(TaskKind)),
    desired=st.sampled_from(list(Desired)),
    exit_kind=st.one_of(st.none(), st.sampled_from([k for k in K if k is not K.START_FAILED])),
    code=st.one_of(st.none(), st.integers(min_value=-255, max_value=255)),
)
def test_an_ending_always_ends_a_task_on_its_node(
    state: TaskState,
    kind: TaskKind,
    desired: Desired,
    exit_kind: ExitKind | None,
    code: int | None,
) -> None:
    """Whatever a task on a node is doing, its reported ending is accepted by the state
    machine and releases what the task held."""
    event = report_event(ReportedState.ENDED, state, kind, desired, exit_kind, code)
    step = transition(state, event, kind)
    assert step.target not in HOLDS_RESOURCES
    assert Action.RELEASE in step.actions
    assert (step.target is S.STOPPED) == (kind is VPS and desired is STOP and event is E.STOPPED)
