"""What runners tell the host about their tasks: started, paused, resumed, ended."""

from __future__ import annotations

from kawa.core.task_states import TaskEvent, classify_exit
from kawa.host.ledger import Ledger
from kawa.protocol.bounds import parse_id
from kawa.protocol.runner_api import ExitKind, TaskReport
from kawa.store.models import Task

_STATE_EVENTS = {"running": TaskEvent.STARTED, "paused": TaskEvent.PAUSED}


def ending_event(report: TaskReport, desired: str) -> TaskEvent:
    kind = report.exit_kind or ExitKind.EXITED
    if kind is ExitKind.START_FAILED:
        return TaskEvent.START_FAILED
    if kind is ExitKind.VANISHED:
        return TaskEvent.EXITED_ERROR
    return classify_exit(
        report.exit_code if report.exit_code is not None else -1,
        oom_killed=kind is ExitKind.OOM_KILLED,
        kill_requested=kind is ExitKind.KILLED or desired == "stop",
        timed_out=kind is ExitKind.TIMED_OUT,
    )


class ReportService:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def handle(self, report: TaskReport) -> None:
        """Apply a runner's report; stale or duplicate reports change nothing."""
        task_id = parse_id(report.task_id)
        if task_id is None:  # not one of ours (or beyond 64 bits): nothing to apply
            return
        with self.ledger.change() as change:
            task = change.session.get(Task, task_id)
            if task is None or task.node != report.node:
                return
            if report.state == "ended":
                event = ending_event(report, task.desired)
                if task.kind == "vps" and task.desired == "stop" and event is TaskEvent.KILLED:
                    event = TaskEvent.STOPPED  # a VPS stopped on request can be restarted
                cause = f"runner {report.node}: {report.exit_kind or 'exited'}"
                if report.exit_code is not None:
                    cause += f" (exit code {report.exit_code})"
                if change.try_apply(task, event, cause):
                    task.exit_code = report.exit_code
                    task.error = report.error
            elif report.state in _STATE_EVENTS:
                event = _STATE_EVENTS[report.state]
                if task.state == "paused" and event is TaskEvent.STARTED:
                    event = TaskEvent.RESUMED
                change.try_apply(task, event, f"runner {report.node} reports {report.state}")
