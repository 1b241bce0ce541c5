"""The one place task state changes: applies the state machine, records the transition
with its cause, and publishes the new view once the change is committed.

Changes run in worker threads (never on the event loop) and one at a time: SQLite
takes one writer anyway, and a transaction that read before another committed could
not write after it. Publishing under the same lock keeps events in commit order. On
PostgreSQL, a transaction that only adds tasks is written alongside the others and
takes the lock only to commit and publish."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session, sessionmaker

from kawa.core.task_states import (
    FINAL_STATES,
    RAN_ENDINGS,
    Action,
    InvalidTransition,
    TaskEvent,
    TaskKind,
    TaskState,
    Transition,
    failure_reason,
    transition,
)
from kawa.host.errors import BadRequest, Conflict, NotFound
from kawa.host.events import EventBus
from kawa.host.views import task_view
from kawa.protocol.tasks import TaskView
from kawa.store.database import write_lock, writing
from kawa.store.models import Task, TaskTransition


class Change:
    """Tasks touched in one unit of work, and the actions their transitions asked for."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.touched: dict[int, Task] = {}
        self.actions: list[tuple[Task, Action]] = []
        self.views: list[TaskView] = []
        """The touched tasks' views as committed and published (once committed)."""
        self.made: list[TaskView] = []
        """Views of tasks written without an entity (bulk statements), published with
        the touched tasks' once committed."""

    def apply(self, task: Task, event: TaskEvent, cause: str) -> Transition:
        """Apply ``event`` to ``task`` or raise ``InvalidTransition``."""
        source = TaskState(task.state)
        tr = transition(source, event, TaskKind(task.kind))
        now = datetime.now(UTC)
        task.state = tr.target.value
        ran = tr.target is TaskState.RUNNING or event in RAN_ENDINGS
        if ran and task.started_at is None:
            task.started_at = now  # an ending reported before the start: it ran until now
        if tr.target in FINAL_STATES or tr.target is TaskState.STOPPED:
            task.finished_at = now
        if tr.target is TaskState.PENDING:
            task.node, task.gpu_ids, task.cpuset, task.numa = None, [], [], None
            task.finished_at = None
        self.session.add(
            TaskTransition(
                task_id=task.id,
                at=now,
                source=source.value,
                target=tr.target.value,
                event=event.value,
                cause=cause[:1024],
            )
        )
        self.touched[task.id] = task
        self.actions.extend((task, a) for a in tr.actions)
        return tr

    def try_apply(self, task: Task, event: TaskEvent, cause: str) -> Transition | None:
        """Like :meth:`apply`, but a stale or duplicate event is ignored."""
        try:
            return self.apply(task, event, cause)
        except InvalidTransition:
            return None

    def touch(self, task: Task) -> None:
        self.touched[task.id] = task

    def publish(self, view: TaskView) -> None:
        """Publish ``view`` (of a task this change wrote by statement) once committed."""
        self.made.append(view)


def _settle_views(change: Change) -> None:
    """Before commit: give a failed task without an error one from its exit code (a
    failure always says why), and build the views to publish."""
    for task in change.touched.values():
        if task.state == TaskState.FAILED.value and not task.error:
            task.error = failure_reason(task.exit_code)
    change.views = [task_view(t) for t in change.touched.values()] + change.made


class Ledger:
    def __init__(self, sessions: sessionmaker[Session], bus: EventBus) -> None:
        self.sessions = sessions
        self.bus = bus
        self.on_release: Callable[[], None] = lambda: None
        """Called after a commit that freed resources (the scheduler looks)."""
        self.on_arrival: Callable[[], None] = lambda: None
        """Called after new tasks were stored pending (the scheduler looks)."""
        self.write_lock = write_lock(sessions)
        """Held through every write transaction of this process (:meth:`change`,
        :meth:`writing`, :func:`kawa.store.database.writing`), and through the commit of
        :meth:`adding`'s."""
        self.locks_rows = sessions.kw["bind"].dialect.name == "postgresql"
        """Whether the database locks rows (not the whole database, as SQLite does)."""

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction that changes no task (nodes, audit entries)."""
        with writing(self.sessions) as session:
            yield session

    @contextmanager
    def change(self) -> Iterator[Change]:
        """A transaction; on commit, publish every touched task and wake the scheduler
        if resources were released. A failed task without an error gets one from its
        exit code."""
        with self.write_lock:
            with self.sessions.begin() as session:
                change = Change(session)
                yield change
                _settle_views(change)
            for view in change.views:
                self.bus.publish_task(view)
        if any(a is Action.RELEASE for _, a in change.actions):
            self.on_release()

    @contextmanager
    def adding(self) -> Iterator[Change]:
        """A transaction that only adds tasks (and rows of their own). On a database that
        locks rows (PostgreSQL) it is written alongside the process's other writers and
        takes the write lock only to commit and publish, so its events still come in
        commit order; on SQLite it is :meth:`change`."""
        if not self.locks_rows:
            with self.change() as change:
                yield change
            return
        session = self.sessions()
        try:
            change = Change(session)
            yield change
            _settle_views(change)
            with self.write_lock:
                session.commit()
                for view in change.views:
                    self.bus.publish_task(view)
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @staticmethod
    def find(session: Session, ref: str) -> Task:
        """A task by full id or unique prefix."""
        ref = ref.strip()
        if not ref.isdigit():
            raise BadRequest(f"bad task id {ref!r}: task ids are decimal digits")
        exact = session.get(Task, int(ref)) if int(ref) < 2**63 else None
        if exact is not None:
            return exact
        rows = session.scalars(
            select(Task).where(cast(Task.id, String).like(ref + "%")).order_by(Task.id).limit(6)
        ).all()
        if not rows:
            raise NotFound(f"no task with id {ref}")
        if len(rows) > 1:
            shown = ", ".join(str(r.id) for r in rows[:5])
            raise Conflict(
                f"task id prefix {ref} is ambiguous: matches {shown}"
                + (", …" if len(rows) > 5 else "")
            )
        return rows[0]

    def view(self, ref: str, history: bool = True) -> TaskView:
        with self.sessions() as s:
            task = self.find(s, ref)
            rows = (
                s.scalars(
                    select(TaskTransition)
                    .where(TaskTransition.task_id == task.id)
                    .order_by(TaskTransition.id)
                ).all()
                if history
                else []
            )
            return task_view(task, rows)
