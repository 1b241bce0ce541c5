"""The scheduler loop and the applier: places pending tasks and dispatches them.

A pass reads and writes the database in a worker thread, so the event loop (the event
stream, terminals, every API call) keeps serving while it runs; dispatching (runner
calls) stays on the loop and settles what comes of it in worker threads too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kawa.core.dispatch import RetryVerdict, giving_up, retry_verdict
from kawa.core.scheduler import (
    NodeSnapshot,
    Placement,
    Strategy,
    place,
    take,
    working_usage,
)
from kawa.core.task_states import (
    FINAL_STATES,
    Action,
    Desired,
    TaskEvent,
    TaskState,
    transition,
)
from kawa.host.acknowledgements import Acknowledgements
from kawa.host.actions import ActionRunner
from kawa.host.env_versions import ref_for
from kawa.host.errors import Conflict
from kawa.host.ledger import Change, Ledger
from kawa.host.queue_rows import batch_caps, pending_queue, queued_task, write_reasons
from kawa.host.runner_link import RunnerLink, RunnerRejected, RunnerUnreachable
from kawa.host.snapshots import node_snapshots
from kawa.host.views import run_fields, task_view
from kawa.protocol.nodes import NodeStatus
from kawa.protocol.runner_api import EnvironmentRef, RunTask
from kawa.store.bulk_writes import BulkInsert, BulkUpdate
from kawa.store.models import Node, Task, TaskTransition

log = logging.getLogger(__name__)


RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
"""Seconds between tries of an order that did not reach its runner (then the last one)."""


@dataclass(frozen=True)
class Dispatch:
    node: str
    url: str
    order: RunTask


HOLD_ORDERS = 2.0
"""Seconds at most that placed tasks' orders wait for the passes right behind theirs."""

DISPATCH_SENDS = 32
"""Orders sent to runners at once (the rest wait their turn, in placement order)."""


def dispatch_error(node: str, what: object) -> str:
    """The error a task records when its order cannot reach or be taken by ``node``."""
    return f"dispatch to {node} failed: {str(what) or repr(what)}"


EnvironmentRefs = dict[tuple[str, str | None], EnvironmentRef | None]
"""(environment, image) -> its packaged version, as looked up in one pass."""


def run_order(task: Task, s: Session, refs: EnvironmentRefs) -> RunTask:
    """The order that runs ``task``; ``refs`` remembers each environment's packaged
    version (looked up once per pass, not once per task)."""
    environment = None
    if task.container:  # a packaged version: the runner syncs it first
        key = (task.container, task.image)
        if key not in refs:
            refs[key] = ref_for(s, *key)
        environment = refs[key]
    return RunTask(
        **run_fields(task),
        task_id=str(task.id),
        image=environment.image if environment else task.image or "",
        environment=environment,
    )


REASON_CHUNK = 200
"""Waiting reasons recorded per transaction (:meth:`SchedulerLoop._record_reasons`)."""


def _tasks(s: Session, ids: list[int], chunk: int = 500) -> list[Task]:
    """The tasks of ``ids`` that exist, read a chunk of ids per query."""
    found: list[Task] = []
    for at in range(0, len(ids), chunk):
        found += s.scalars(select(Task).where(Task.id.in_(ids[at : at + chunk])))
    return found


_NODE_URLS = select(Node.name, Node.url)
_PLACE = BulkUpdate(
    Task,
    ("state", "node", "numa", "gpu_ids", "cpuset", "waiting_reason"),
    Task.__table__.c.state == TaskState.PENDING.value,
)
"""A pass's placements, written to the tasks still pending."""
_TRANSITIONS = BulkInsert(TaskTransition)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _full(snapshots: list[NodeSnapshot]) -> bool:
    """True when no schedulable node has a free core (every task asks for at least one)."""
    return all(n.usage.cores >= n.capacity.cores for n in snapshots if n.schedulable)


class NotLeading(Exception):
    """This host no longer holds the leader lock: its pass must not commit."""


class SchedulerLoop:
    """Runs a scheduling pass whenever woken (submit, release, node change) and at
    least every ``idle_interval`` seconds (for starvation aging and retries)."""

    def __init__(
        self,
        ledger: Ledger,
        link: RunnerLink,
        strategy: str,
        starvation_after: float,
        idle_interval: float = 2.0,
        queue_scan: int = 4000,
        retry_window: float = 40.0,
        arrival_interval: float = 0.2,
    ) -> None:
        self.ledger = ledger
        self.link = link
        self.actions = ActionRunner(ledger, link)
        self.strategy = Strategy(strategy)
        self.starvation_after = starvation_after
        self.idle_interval = idle_interval
        self.queue_scan = queue_scan
        """At most this many queued tasks (in priority order) are considered per pass."""
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        """Set by :meth:`wake`: something other than new arrivals may have made room."""
        self.arrival_interval = arrival_interval
        self._full = False
        """Whether the last pass found no free core on any schedulable node."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.retry_window = retry_window
        """How long an order that does not reach its runner is retried while its node is
        online: longer than a dead runner's node takes to be called offline."""
        self._inflight: set[asyncio.Task[None]] = set()
        self._sends = asyncio.Semaphore(DISPATCH_SENDS)
        """Orders on their way to runners at once: a large pass queues the rest here, not
        in the HTTP connection pool (whose queue grows costly to serve on the loop)."""
        self.dispatching: set[int] = set()
        """Ids of the tasks whose order is being sent now."""
        self._acks = Acknowledgements(self._record_started)
        self._more = False
        """Whether the last pass placed a full scan (the next one follows at once)."""
        self.last_pass_seconds = 0.0
        self.pass_observers: list[Callable[[float], None]] = []
        """Called with each pass's duration in seconds (metrics)."""
        self.fence: Callable[[Session], bool] = lambda _session: True
        """Asked in each pass's transaction before it commits: whether this host still
        leads (a pass of a host that lost the lead is rolled back)."""

    def wake(self) -> None:
        """Ask for a pass soon (resources freed, a node changed); callable from any thread."""
        self._signal(self._room, self._wake)

    def arrived(self) -> None:
        """New tasks are waiting: ask for a pass; callable from any thread. While the
        cluster is full they can only wait, so such passes (which give them their waiting
        reasons) run at most once per ``arrival_interval``."""
        self._signal(self._wake)

    def _signal(self, *events: asyncio.Event) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or _running_loop() is loop:
            for event in events:
                event.set()
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nothing will run a pass
            for event in events:
                loop.call_soon_threadsafe(event.set)

    async def _await_wake(self, last_pass_end: float) -> None:
        """Until a pass is due: woken, or ``idle_interval`` passed. Arrivals alone into a
        full cluster wait out the rest of ``arrival_interval`` since the last pass (cut
        short by :meth:`wake`). The waits are ``asyncio.timeout`` blocks: Python 3.11's
        ``wait_for`` drops a cancellation that comes as the event is set, and the loop
        would then outlive its host's shutdown."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.idle_interval):
                await self._wake.wait()
        if self._full and not self._more and not self._room.is_set():
            rest = last_pass_end + self.arrival_interval - time.monotonic()
            if rest > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(rest):
                        await self._room.wait()
        self._wake.clear()
        self._room.clear()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        held: list[Dispatch] = []
        """Orders of placements made while more passes were due, not sent yet."""
        held_since = last_pass_end = 0.0
        while True:
            await self._await_wake(last_pass_end)
            try:
                jobs = await asyncio.to_thread(self.schedule_once)
            except NotLeading as exc:
                log.warning("scheduling pass rolled back: %s", exc)
                jobs = []
            except Exception:  # keep scheduling alive; the error is logged
                log.exception("scheduling pass failed")
                jobs = []
            last_pass_end = time.monotonic()
            for job in jobs:
                self.dispatching.add(int(job.order.task_id))
            if jobs and not held:
                held_since = time.monotonic()
            held += jobs
            # A pass right behind this one (a full scan placed) places first: orders sent
            # meanwhile would take turns with it. Held at most HOLD_ORDERS seconds.
            behind = self._more and bool(jobs)
            if held and (not behind or time.monotonic() - held_since > HOLD_ORDERS):
                for job in held:
                    t = asyncio.create_task(self.dispatch(job))
                    self._inflight.add(t)
                    t.add_done_callback(self._inflight.discard)
                held = []

    def schedule_once(self) -> list[Dispatch]:
        """One pass: read the queue as light rows (no ORM objects for tasks that keep
        waiting), place, and commit the placements."""
        started = time.perf_counter()
        try:
            return self._pass()
        finally:
            self.last_pass_seconds = time.perf_counter() - started
            for observe in self.pass_observers:
                observe(self.last_pass_seconds)

    def _pass(self) -> list[Dispatch]:
        jobs: list[Dispatch] = []
        self._more = False
        with self.ledger.change() as change:
            s = change.session
            snapshots = node_snapshots(s)
            new_only = self._full = _full(snapshots)
            rows = pending_queue(s, self.queue_scan, new_only=new_only)
            if not rows:
                return []
            queue = [queued_task(r) for r in rows]
            caps = batch_caps(s, {r.batch_id: r.batch_max_parallel for r in rows})
            result = place(
                snapshots, queue, self.strategy, time.time(), self.starvation_after, caps
            )
            jobs = self._apply(change, snapshots, result.placements)
            # Tasks beyond the scan may wait: for a first reason, or for the room this
            # pass did not fill. The next pass at once, so a large submission settles
            # in seconds, not a pass per wake or per idle interval.
            more = len(rows) >= self.queue_scan and (new_only or bool(result.placements))
            reasons = {r.id: r.waiting_reason for r in rows}
            changed = {t: r for t, r in result.waiting.items() if reasons.get(t) != r}
            if not self.fence(s):
                raise NotLeading("this host no longer holds the leader lock")
        self._record_reasons(changed)
        self._more = more
        if more:
            self.wake()
        return jobs

    def _record_reasons(self, reasons: dict[int, str]) -> None:
        """Give pending tasks their new waiting reasons, ``REASON_CHUNK`` tasks per
        transaction: a kill or a submission waits for one chunk, not for thousands."""
        ids = list(reasons)
        for at in range(0, len(ids), REASON_CHUNK):
            if at:
                time.sleep(0.001)  # a change waiting for the write lock takes it now
            try:
                with self.ledger.change() as change:
                    chunk = ids[at : at + REASON_CHUNK]
                    # their new views, published (of those not placed or ended since)
                    written = write_reasons(change.session, {t: reasons[t] for t in chunk})
                    for row in written:
                        change.publish(task_view(SimpleNamespace(**row)))  # type: ignore[arg-type]
                    if not self.fence(change.session):
                        raise NotLeading("this host no longer holds the leader lock")
            except NotLeading as exc:  # the placements stand: they were committed leading
                log.warning("waiting reasons not recorded: %s", exc)
                return

    def _apply(
        self,
        change: Change,
        snapshots: list[NodeSnapshot],
        placements: tuple[Placement, ...],
    ) -> list[Dispatch]:
        """Commit placements, re-checking each against what is held (never over-commit):
        the tasks still pending are written with one UPDATE that gives back their rows,
        and their transitions with one INSERT (no ORM entity each); their views are
        published once committed."""
        nodes = {n.name: n for n in snapshots}
        usage = working_usage(snapshots)
        s = change.session
        # the state machine says where a placement leads, for tasks of every kind (it
        # asks no action)
        tr = transition(TaskState.PENDING, TaskEvent.PLACED)
        placed: list[dict[str, Any]] = []
        for p in placements:
            a = p.allocation
            if a.node not in nodes or not take(nodes[a.node], usage[a.node], a):
                log.error("placement of %s on %s does not fit; left pending", p.task_id, a.node)
                continue
            placed.append(
                dict(id=p.task_id, state=tr.target.value, node=a.node, numa=a.numa,
                     gpu_ids=list(a.gpu_ids), cpuset=list(a.cpuset), waiting_reason=None)
            )  # fmt: skip
        rows = _PLACE(s, placed)  # those placed or ended meanwhile are left as they are
        urls = {name: url for name, url in s.execute(_NODE_URLS)}
        refs: EnvironmentRefs = {}
        jobs: list[Dispatch] = []
        history: list[dict[str, Any]] = []
        unordered: list[tuple[int, Exception]] = []
        now = datetime.now(UTC)
        with s.no_autoflush:  # the lookups of orders need not write anything first
            for row in (rows[p["id"]] for p in placed if p["id"] in rows):  # in queue order
                history.append(
                    dict(task_id=row["id"], at=now, source=tr.source.value,
                         target=tr.target.value, event=tr.event.value,
                         cause=f"scheduled on {row['node']}")
                )  # fmt: skip
                task = SimpleNamespace(**row)
                try:
                    order = run_order(task, s, refs)  # type: ignore[arg-type]
                except Exception as exc:  # this task cannot be ordered; the others still are
                    unordered.append((row["id"], exc))
                    continue
                change.publish(task_view(task))  # type: ignore[arg-type]
                jobs.append(Dispatch(row["node"], urls[row["node"]], order))
        _TRANSITIONS(s, history)
        for task_id, failure in unordered:
            self._unorderable(change, task_id, failure)
        return jobs

    @staticmethod
    def _unorderable(change: Change, task_id: int, exc: Exception) -> None:
        """A placed task whose order cannot be built fails with the reason (rare)."""
        log.warning("order of task %s cannot be built: %s", task_id, exc)
        task = change.session.get(Task, task_id)
        if task is None:
            return
        change.apply(task, TaskEvent.DISPATCH_ERROR, "its order could not be built")
        task.error = dispatch_error(str(task.node), exc)

    async def dispatch(self, job: Dispatch) -> None:
        """Send a placed task to its runner and settle what came of it. Every failure
        ends the task, queues it again or leaves it to the heartbeat's reconciliation
        (when the runner may have the order): none leaves it assigning for ever."""
        task_id = int(job.order.task_id)
        self.dispatching.add(task_id)
        try:
            await self._send(job, task_id)
        except Exception as exc:  # whatever went wrong, the task ends with the reason
            log.exception("dispatch of task %s to %s failed", task_id, job.node)
            await self._settled(
                task_id, TaskEvent.DISPATCH_ERROR, "dispatch failed", dispatch_error(job.node, exc)
            )
        finally:
            self.dispatching.discard(task_id)

    async def _send(self, job: Dispatch, task_id: int) -> None:
        deadline = time.monotonic() + self.retry_window
        delays = iter(RETRY_DELAYS)
        while True:
            try:
                async with self._sends:
                    ack = await self.link.run(job.url, job.order)
            except RunnerUnreachable as exc:
                if exc.sent:  # the runner may have it: its heartbeat tells (node_service)
                    log.warning(
                        "order of task %s may not have reached %s: %s", task_id, job.node, exc
                    )
                    return
                failure: Exception = exc
            except RunnerRejected as exc:
                if exc.status == 422:  # the runner refused the order or could not start it
                    cause = f"runner {job.node} could not start the task"
                    await self._settled(task_id, TaskEvent.START_FAILED, cause, exc.detail)
                    return
                if exc.status != 503:  # broken: retrying would get the same answer
                    error = dispatch_error(job.node, f"runner answered {exc.status}: {exc.detail}")
                    cause = f"runner {job.node} did not take the task"
                    await self._settled(task_id, TaskEvent.DISPATCH_ERROR, cause, error)
                    return
                failure = exc  # the runner is still starting up
            else:
                await self._started(task_id, job, ack.state)
                return
            now = time.monotonic()
            verdict = await asyncio.to_thread(self._retry_verdict, task_id, job.node)
            if verdict is RetryVerdict.RETRY and now < deadline:
                await asyncio.sleep(min(next(delays, RETRY_DELAYS[-1]), deadline - now))
                continue
            end = giving_up(verdict, job.node, dispatch_error(job.node, failure), self.retry_window)
            if end is not None:
                await self._settled(task_id, end.event, end.cause, end.error)
            return

    def _retry_verdict(self, task_id: int, node_name: str) -> RetryVerdict:
        with self.ledger.sessions() as s:
            task, node = s.get(Task, task_id), s.get(Node, node_name)
            if task is None:
                return retry_verdict(None, Desired.RUN, False, False)
            online = node is not None and node.status == NodeStatus.ONLINE.value
            return retry_verdict(
                TaskState(task.state), Desired(task.desired), task.node == node_name, online
            )

    async def _started(self, task_id: int, job: Dispatch, state: str | None) -> None:
        if state != "running":
            return
        if await self.acknowledge(task_id):
            # killed while its order was under way: nothing may run for it
            t = asyncio.get_running_loop().create_task(self._kill(job, task_id))
            self._inflight.add(t)
            t.add_done_callback(self._inflight.discard)

    async def _kill(self, job: Dispatch, task_id: int) -> None:
        try:
            await self.actions.carry_out(Action.SEND_KILL, task_id, job.url)
        except Conflict as exc:
            log.warning("kill of ended task %s on %s failed: %s", task_id, job.node, exc)

    async def acknowledge(self, task_id: int) -> bool:
        """Record that the runner started the task, in one transaction with the other
        acknowledgements waiting then; True when the task had ended before."""
        return await self._acks.acknowledge(task_id)

    def _record_started(self, task_ids: list[int]) -> set[int]:
        """Record that the runners started these tasks (one transaction); the ids of
        those that had ended before."""
        ended: set[int] = set()
        with self.ledger.change() as change:
            for task in _tasks(change.session, task_ids):
                if change.try_apply(task, TaskEvent.STARTED, "runner started the task"):
                    continue
                if TaskState(task.state) in FINAL_STATES:
                    ended.add(task.id)
        return ended

    async def _settled(self, task_id: int, event: TaskEvent, cause: str, error: str | None) -> bool:
        return await asyncio.to_thread(self._settle, task_id, event, cause, error)

    def _settle(self, task_id: int, event: TaskEvent, cause: str, error: str | None) -> bool:
        with self.ledger.change() as change:
            task = change.session.get(Task, task_id)
            if task is None or not change.try_apply(task, event, cause):
                return False
            if error:
                task.error = error
            return True

    async def stop(self) -> None:
        for t in list(self._inflight):
            t.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        await self._acks.stop()
