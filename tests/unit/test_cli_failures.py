"""The one line that says why a task did not complete (``kawa run``, ``--wait``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kawa.cli.failures import failure_line, memory_text
from kawa.protocol.tasks import TaskView


def view(**fields: Any) -> TaskView:
    base: dict[str, Any] = dict(
        id="12", batch_id="12", name=None, kind="command", state="completed", desired="run",
        owner="admin", command=["true"], target=None, node="node3", numa=None, gpu_ids=[],
        cpuset=[], cores=1, memory=None, gpus=0, env={}, mounts=[], container=None,
        image=None, native=False, privileged=False, workdir=None, network="host",
        timeout=None, priority=0, exit_code=None, error=None, waiting_reason=None,
        created_at=datetime.now(UTC), started_at=None, finished_at=None,
    )  # fmt: skip
    return TaskView.model_validate(base | fields)


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"state": "completed", "exit_code": 0}, None),
        ({"state": "running"}, None),
        ({"state": "oom_killed", "memory": 64_000_000},
         "oom_killed: reached its 64 MB memory limit"),
        ({"state": "oom_killed", "error": "oom"}, "oom_killed: oom"),
        ({"state": "timed_out", "timeout": 1800.0}, "timed_out after 30m"),
        ({"state": "lost"}, "lost: node3 went silent"),
        ({"state": "failed", "exit_code": 3, "error": "exited with code 3"},
         "failed: exited with code 3"),
        ({"state": "failed", "exit_code": 3}, "failed: exited with code 3"),
        ({"state": "killed"}, "killed: killed on request"),
        ({"state": "failed", "error": "bad\x1b[2Jthing"}, "failed: bad\\x1b[2Jthing"),
    ],
)  # fmt: skip
def test_failure_line(fields: dict[str, Any], line: str | None) -> None:
    assert failure_line(view(**fields)) == line


def test_memory_text() -> None:
    assert [memory_text(n) for n in (512, 64_000_000, 1_500_000_000)] == [
        "512B",
        "64 MB",
        "1.5 GB",
    ]
