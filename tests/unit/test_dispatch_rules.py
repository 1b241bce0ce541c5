"""The rules for an order that did not reach its runner: retry, end or requeue."""

from __future__ import annotations

import pytest

from kawa.core.dispatch import RetryVerdict, giving_up, retry_verdict
from kawa.core.task_states import Desired, TaskEvent, TaskState

S, V = TaskState, RetryVerdict


@pytest.mark.parametrize(
    ("state", "desired", "on_node", "online", "verdict"),
    [
        (S.ASSIGNING, Desired.RUN, True, True, V.RETRY),
        (S.ASSIGNING, Desired.RUN, True, False, V.OFFLINE),
        (S.LOST, Desired.RUN, True, True, V.OFFLINE),
        (S.ASSIGNING, Desired.STOP, True, True, V.KILLED),
        (S.ASSIGNING, Desired.STOP, True, False, V.KILLED),
        (S.ASSIGNING, Desired.RUN, False, True, V.SETTLED),  # placed elsewhere since
        (S.RUNNING, Desired.RUN, True, True, V.SETTLED),  # the heartbeat saw it start
        (S.KILLED, Desired.STOP, True, True, V.SETTLED),
        (S.PENDING, Desired.RUN, False, True, V.SETTLED),
        (None, Desired.RUN, False, False, V.SETTLED),  # the task is gone
    ],
)
def test_retry_verdict(
    state: TaskState | None, desired: Desired, on_node: bool, online: bool, verdict: RetryVerdict
) -> None:
    assert retry_verdict(state, desired, on_node, online) is verdict


@pytest.mark.parametrize(
    ("verdict", "event", "has_error"),
    [
        (V.KILLED, TaskEvent.KILLED_BEFORE_START, False),
        (V.OFFLINE, TaskEvent.DISPATCH_FAILED, False),
        (V.RETRY, TaskEvent.DISPATCH_ERROR, True),
    ],
)
def test_giving_up_ends_or_requeues(
    verdict: RetryVerdict, event: TaskEvent, has_error: bool
) -> None:
    end = giving_up(verdict, "n1", "dispatch to n1 failed: refused", 20.0)
    assert end is not None and end.event is event
    assert "n1" in end.cause
    assert (end.error == "dispatch to n1 failed: refused") is has_error


def test_a_settled_order_needs_nothing() -> None:
    assert giving_up(V.SETTLED, "n1", "whatever", 20.0) is None


def test_every_verdict_but_settled_is_a_legal_event_from_assigning() -> None:
    from kawa.core.task_states import transition

    for verdict in (V.KILLED, V.OFFLINE, V.RETRY):
        end = giving_up(verdict, "n1", "r", 1.0)
        assert end is not None
        transition(S.ASSIGNING, end.event)  # raises if the machine has no such edge
