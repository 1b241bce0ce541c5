"""The runner's executor router: each task goes to the backend its order names, and the
backends are whatever the runner was composed with (here: recording stand-ins)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kawa.protocol.runner_api import ExitKind, RunTask
from kawa.runner.executor import StartError, UnknownTask
from kawa.runner.executor_router import ExecutorRouter
from kawa.runner.journal import Entry, Journal
from tests.support import run_order


@dataclass
class Recorder:
    """A backend that journals what it starts and records every call."""

    journal: Journal
    calls: list[tuple[str, Any]] = field(default_factory=list)
    docker: Any = "the docker client"

    def start(self, order: RunTask) -> None:
        self.journal.begin(order)
        self.calls.append(("start", order.task_id))

    def kill(self, task_id: str) -> None:
        self.calls.append(("kill", task_id))

    def pause(self, task_id: str) -> None:
        self.calls.append(("pause", task_id))

    def resume(self, task_id: str) -> None:
        self.calls.append(("resume", task_id))

    def adopt(self, entries: list[Entry]) -> None:
        self.calls.append(("adopt", sorted(e.task_id for e in entries)))

    def log_path(self, task_id: str, stream: str) -> Path:
        return Path(f"/logs/{task_id}.{stream}")

    def restart(self, task_id: str) -> None:
        self.calls.append(("restart", task_id))

    def snapshot(self, task_id: str) -> str:
        self.calls.append(("snapshot", task_id))
        return "image"

    def remove(self, task_id: str, force: bool) -> None:
        self.calls.append(("remove", task_id))

    def abandon(self, task_id: str, reason: str) -> None:
        self.journal.end(task_id, ExitKind.VANISHED, None, reason)
        self.calls.append(("abandon", task_id))


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def test_orders_and_actions_go_to_the_backend_the_order_names(journal: Journal) -> None:
    containers, native = Recorder(journal), Recorder(journal)
    router = ExecutorRouter(journal, containers, native)
    router.start(run_order(task_id="c1", image="img"))
    router.start(run_order(task_id="n1", native=True))
    router.pause("n1")
    router.kill("c1")
    assert containers.calls == [("start", "c1"), ("kill", "c1")]
    assert native.calls == [("start", "n1"), ("pause", "n1")]
    assert router.docker == "the docker client"
    with pytest.raises(UnknownTask, match="only a VPS can be restarted"):
        router.restart("n1")
    with pytest.raises(UnknownTask, match="not running here"):
        router.resume("nobody")


def test_without_a_native_backend_native_orders_are_refused_and_abandoned(
    journal: Journal,
) -> None:
    containers = Recorder(journal)
    router = ExecutorRouter(journal, containers, None, native_refusal="no native here")
    with pytest.raises(StartError, match="no native here"):
        router.start(run_order(task_id="n1", native=True))
    assert containers.calls == []
    journal.begin(run_order(task_id="n2", native=True))  # journaled by an earlier run
    journal.begin(run_order(task_id="c2", image="img"))
    router.adopt(journal.live())
    assert containers.calls == [("adopt", ["c2"]), ("abandon", "n2")]
    ended = journal.get("n2")
    assert ended is not None and ended.exit_kind is ExitKind.VANISHED
    assert ended.error == "native execution is off on this runner"
