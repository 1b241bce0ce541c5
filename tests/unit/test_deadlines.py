"""The runner's task deadlines: one thread for all tasks, fired in due order."""

from __future__ import annotations

import queue
import threading

import pytest

from kawa.runner.deadlines import Deadlines

WAIT_S = 10.0


def _fired() -> tuple[queue.Queue[str], Deadlines]:
    q: queue.Queue[str] = queue.Queue()
    return q, Deadlines(q.put)


def _deadline_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "kawa-deadlines"}


def test_fires_in_due_order_on_one_thread() -> None:
    before = _deadline_threads()
    fired, deadlines = _fired()
    for i in range(50):
        deadlines.arm(f"late{i}", 60.0)
    deadlines.arm("c", 0.3)
    deadlines.arm("a", 0.05)
    deadlines.arm("b", 0.15)
    assert len(_deadline_threads() - before) == 1
    assert [fired.get(timeout=WAIT_S) for _ in range(3)] == ["a", "b", "c"]
    assert deadlines.pending() == 50
    deadlines.close()


def test_cancelled_and_replaced_deadlines_do_not_fire() -> None:
    fired, deadlines = _fired()
    deadlines.arm("cancelled", 0.05)
    deadlines.arm("moved", 0.05)
    deadlines.arm("moved", 0.2)  # replaces the earlier one
    deadlines.cancel("cancelled")
    deadlines.arm("marker", 0.4)
    assert fired.get(timeout=WAIT_S) == "moved"
    assert fired.get(timeout=WAIT_S) == "marker"
    assert fired.empty()
    assert deadlines.pending() == 0
    deadlines.close()


def test_elapsed_time_counts_and_no_timeout_means_no_deadline() -> None:
    fired, deadlines = _fired()
    deadlines.arm("none", None)
    deadlines.arm("zero", 0)
    assert deadlines.pending() == 0
    deadlines.arm("overdue", 30.0, elapsed=45.0)  # adopted after its time ran out
    assert fired.get(timeout=WAIT_S) == "overdue"
    deadlines.close()


def test_a_failing_fire_does_not_stop_the_others() -> None:
    fired: queue.Queue[str] = queue.Queue()

    def fire(task_id: str) -> None:
        if task_id == "bad":
            raise RuntimeError("docker is gone")
        fired.put(task_id)

    deadlines = Deadlines(fire)
    deadlines.arm("bad", 0.01)
    deadlines.arm("good", 0.1)
    assert fired.get(timeout=WAIT_S) == "good"
    deadlines.close()


def test_closed_deadlines_fire_nothing() -> None:
    fired, deadlines = _fired()
    deadlines.arm("a", 0.5)
    deadlines.close()
    deadlines.arm("b", 0.01)
    assert deadlines.pending() == 0
    with pytest.raises(queue.Empty):
        fired.get(timeout=1.0)
