"""What runners tell the host about their tasks: started, paused, resumed, ended."""

from __future__ import annotations

from kawa.core.reports import ReportedState, report_event
from kawa.core.task_states import Desired, TaskKind, TaskState
from kawa.host.ledger import Ledger
from kawa.protocol.bounds import parse_id
from kawa.protocol.runner_api import TaskReport
from kawa.store.models import Task


class ReportService:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def handle(self, report: TaskReport) -> None:
        """Apply a runner's report; stale or duplicate reports change nothing."""
        task_id = parse_id(report.task_id)
        if task_id is None:  # not one of ours (or beyond 64 bits): nothing to apply
            return
        if report.state not in ReportedState.__members__.values():
            return  # a state this host does not know: nothing to apply
        reported = ReportedState(report.state)
        with self.ledger.change() as change:
            task = change.session.get(Task, task_id)
            if task is None or task.node != report.node:
                return
            event = report_event(
                reported,
                TaskState(task.state),
                TaskKind(task.kind),
                Desired(task.desired),
                report.exit_kind,
                report.exit_code,
            )
            if reported is not ReportedState.ENDED:
                change.try_apply(task, event, f"runner {report.node} reports {report.state}")
                return
            cause = f"runner {report.node}: {report.exit_kind or 'exited'}"
            if report.exit_code is not None:
                cause += f" (exit code {report.exit_code})"
            if change.try_apply(task, event, cause):
                task.exit_code = report.exit_code
                task.error = report.error
