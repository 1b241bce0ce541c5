"""Heartbeat reconciliation: a task on a node and its runner's listing in, events and
actions out; node silence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kawa.core.reconcile import Memory, TaskOnNode, is_silent, reconcile
from kawa.core.reports import ObservedState, observed_state
from kawa.core.task_states import Action, Desired, TaskEvent, TaskKind, TaskState, transition

S, E, L = TaskState, TaskEvent, ObservedState
PROPERTY = settings(max_examples=500, deadline=None, database=None)
TIMEOUT = 10.0
NOW = 1000.0


def on_node(
    state: TaskState,
    started: bool = True,
    desired: Desired = Desired.RUN,
    kind: TaskKind = TaskKind.COMMAND,
) -> TaskOnNode:
    return TaskOnNode(7, kind, state, started, desired, "n1")


ORPHAN = Memory(orphaned=True)
SENDING = Memory(dispatching=True)
MISSING_LONG = Memory(missing_since=NOW - TIMEOUT - 1)
MISSING_SHORT = Memory(missing_since=NOW - TIMEOUT + 1)


@pytest.mark.parametrize(
    ("task", "seen", "memory", "events", "missing_since"),
    [
        # Running as the host has it: nothing to do.
        (on_node(S.RUNNING), L.RUNNING, Memory(), [], None),
        (on_node(S.PAUSED), L.PAUSED, Memory(), [], None),
        (on_node(S.RUNNING), L.EXITED, MISSING_SHORT, [], None),
        # A lost task its runner, back, still has.
        (on_node(S.LOST), L.RUNNING, Memory(), [E.STARTED], None),
        (on_node(S.LOST), L.PAUSED, Memory(), [E.PAUSED], None),
        (on_node(S.LOST, started=False), L.RUNNING, Memory(), [E.STARTED], None),
        # A running task its runner no longer lists fails after the node timeout.
        (on_node(S.RUNNING), None, Memory(), [], NOW),
        (on_node(S.RUNNING), None, MISSING_SHORT, [], NOW - TIMEOUT + 1),
        (on_node(S.PAUSED), None, MISSING_LONG, [E.EXITED_ERROR], None),
        (on_node(S.LOST), None, MISSING_LONG, [], None),
        # A never-started task: running once listed so; failed when nobody has it.
        (on_node(S.ASSIGNING, False), L.RUNNING, Memory(), [E.STARTED], None),
        (on_node(S.ASSIGNING, False), L.STARTING, MISSING_LONG, [], None),
        (on_node(S.ASSIGNING, False), L.RUNNING, SENDING, [], None),
        (on_node(S.ASSIGNING, False), None, SENDING, [], None),
        (on_node(S.ASSIGNING, False), None, Memory(), [], NOW),
        (on_node(S.ASSIGNING, False), None, MISSING_SHORT, [], NOW - TIMEOUT + 1),
        (on_node(S.ASSIGNING, False), None, MISSING_LONG, [E.ASSIGN_EXPIRED], None),
        (on_node(S.LOST, False), None, MISSING_LONG, [E.ASSIGN_EXPIRED], None),
        # Orphaned assignments (their dispatch died with an earlier host process).
        (on_node(S.ASSIGNING, False), L.RUNNING, ORPHAN, [E.STARTED], None),
        (on_node(S.ASSIGNING, False), L.PAUSED, ORPHAN, [E.STARTED, E.PAUSED], None),
        (on_node(S.ASSIGNING, False), None, ORPHAN, [E.DISPATCH_FAILED], NOW),
        (on_node(S.ASSIGNING, False), L.EXITED, ORPHAN, [], None),
        (on_node(S.ASSIGNING, False), L.STARTING, ORPHAN, [], None),
    ],
)
def test_reconcile(
    task: TaskOnNode,
    seen: ObservedState | None,
    memory: Memory,
    events: list[TaskEvent],
    missing_since: float | None,
) -> None:
    done = reconcile(task, seen, memory, NOW, TIMEOUT)
    assert [s.event for s in done.steps] == events
    assert done.memory.missing_since == missing_since
    assert done.actions == ()


def test_errors_say_why_a_task_failed() -> None:
    done = reconcile(on_node(S.ASSIGNING, False), None, MISSING_LONG, NOW, TIMEOUT)
    assert [(s.cause, s.error) for s in done.steps] == [
        (
            "its runner does not have it",
            "not started: runner n1 has not had the task for 10s and no order is under way",
        )
    ]
    done = reconcile(on_node(S.RUNNING), None, MISSING_LONG, NOW, TIMEOUT)
    assert [s.error for s in done.steps] == ["the runner lost track of this task"]


def test_an_orphan_stays_one_until_its_runner_says_more_than_exited() -> None:
    task = on_node(S.ASSIGNING, False)
    assert reconcile(task, L.EXITED, ORPHAN, NOW, TIMEOUT).memory.orphaned
    assert not reconcile(task, L.STARTING, ORPHAN, NOW, TIMEOUT).memory.orphaned
    assert not reconcile(task, None, ORPHAN, NOW, TIMEOUT).memory.orphaned


@pytest.mark.parametrize(
    ("desired", "seen", "actions"),
    [
        (Desired.STOP, L.RUNNING, (Action.SEND_KILL,)),
        (Desired.STOP, L.PAUSED, (Action.SEND_KILL,)),
        (Desired.STOP, L.EXITED, ()),
        (Desired.STOP, None, ()),
        (Desired.RUN, L.RUNNING, ()),
    ],
)
def test_a_task_asked_to_stop_that_still_runs_is_killed_again(
    desired: Desired, seen: ObservedState | None, actions: tuple[Action, ...]
) -> None:
    done = reconcile(on_node(S.RUNNING, desired=desired), seen, Memory(), NOW, TIMEOUT)
    assert done.actions == actions


@pytest.mark.parametrize(
    ("listed", "state"),
    [("running", L.RUNNING), ("paused", L.PAUSED), ("exited", L.EXITED), ("x", L.STARTING)],
)
def test_observed_state(listed: str, state: ObservedState) -> None:
    assert observed_state(listed) is state


@pytest.mark.parametrize(
    ("last", "listening_since", "silent"),
    [
        (None, 0.0, True),
        (NOW - TIMEOUT - 1, 0.0, True),
        (NOW - TIMEOUT, 0.0, False),
        (NOW, 0.0, False),
        (None, NOW - TIMEOUT, False),  # the host has not listened that long yet
        (None, NOW - TIMEOUT - 1, True),
    ],
)
def test_is_silent(last: float | None, listening_since: float, silent: bool) -> None:
    assert is_silent(last, NOW, TIMEOUT, listening_since) is silent


ON_NODE = [S.ASSIGNING, S.RUNNING, S.PAUSED, S.LOST]


@PROPERTY
@given(
    state=st.sampled_from(ON_NODE),
    started=st.booleans(),
    desired=st.sampled_from(list(Desired)),
    kind=st.sampled_from(list(TaskKind)),
    seen=st.one_of(st.none(), st.sampled_from(list(ObservedState))),
    orphaned=st.booleans(),
    dispatching=st.booleans(),
    missing_since=st.one_of(st.none(), st.floats(min_value=0, max_value=NOW)),
)
def test_reconciliation_is_sound(
    state: TaskState,
    started: bool,
    desired: Desired,
    kind: TaskKind,
    seen: ObservedState | None,
    orphaned: bool,
    dispatching: bool,
    missing_since: float | None,
) -> None:
    if state is S.ASSIGNING:
        started = False  # an assigning task has never run
    task = on_node(state, started, desired, kind)
    memory = Memory(orphaned, dispatching, missing_since)
    done = reconcile(task, seen, memory, NOW, TIMEOUT)
    # Each step is valid after the ones before it.
    for step in done.steps:
        state = transition(state, step.event, kind).target
    failures = {E.ASSIGN_EXPIRED, E.EXITED_ERROR, E.DISPATCH_FAILED}
    failed = [s.event for s in done.steps if s.event in failures]
    if seen is not None:  # the runner has it: it is never failed nor forgotten
        assert not failed
        assert done.memory.missing_since is None
    if failed and seen is None and not orphaned:  # only after a full node timeout
        assert missing_since is not None and NOW - missing_since > TIMEOUT
    if done.memory.missing_since is not None:
        assert seen is None
        assert not (dispatching and task.state is S.ASSIGNING)  # its order is under way
    assert (Action.SEND_KILL in done.actions) == (
        desired is Desired.STOP and seen in (L.RUNNING, L.PAUSED)
    )
    assert done.memory.orphaned == (orphaned and seen is L.EXITED)
    assert done.memory.dispatching == dispatching
