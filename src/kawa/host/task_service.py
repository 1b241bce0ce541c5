"""Submitting, listing and controlling tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kawa.core.ids import IdGenerator
from kawa.core.resources import NodeCapacity, ResourceRequest
from kawa.core.scheduler import PlacementError
from kawa.core.sweep import DEFAULT_LIMIT, SweepError, parse
from kawa.core.targets import TargetSpec
from kawa.core.task_states import (
    VPS_REMOVABLE,
    Action,
    Desired,
    InvalidTransition,
    TaskEvent,
    TaskKind,
    TaskState,
)
from kawa.gateway.directory import VpsAccess
from kawa.host.actions import ActionRunner
from kawa.host.answer_cache import AnswerCache
from kawa.host.audit import record, submission, task_action
from kawa.host.auth import Principal
from kawa.host.batches import Batches
from kawa.host.encoded_answer import EncodedAnswer
from kawa.host.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceError
from kawa.host.ledger import Ledger
from kawa.host.runner_link import RunnerLink, RunnerRejected, RunnerUnreachable
from kawa.host.snapshots import KeptCapacities
from kawa.host.task_pages import TaskFilter, TaskParts
from kawa.host.views import task_view
from kawa.protocol.task_queries import TaskCounts
from kawa.protocol.tasks import NetworkMode, SubmitResponse, TaskAction, TaskSpec, TaskView
from kawa.store.bulk_writes import BulkInsert
from kawa.store.models import QUEUED, Environment, Node, Task, TaskTransition

log = logging.getLogger(__name__)

_REQUESTS = {
    TaskAction.KILL: TaskEvent.KILL_REQUESTED,
    TaskAction.PAUSE: TaskEvent.PAUSE_REQUESTED,
    TaskAction.RESUME: TaskEvent.RESUME_REQUESTED,
    TaskAction.STOP: TaskEvent.STOP_REQUESTED,
    TaskAction.RESTART: TaskEvent.RESTART_REQUESTED,
}
_LIVE = (TaskState.RUNNING.value, TaskState.PAUSED.value)


NOT_STARTED = {"exit_code": None, "error": None, "started_at": None, "finished_at": None}
"""The columns of a new task's row that a submission leaves to their defaults."""
_NEW_TASKS = BulkInsert(Task)
_TRANSITIONS = BulkInsert(TaskTransition)


class TaskService:
    def __init__(
        self,
        ledger: Ledger,
        ids: IdGenerator,
        link: RunnerLink,
        default_container: str,
        sweep_limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.ledger = ledger
        self.ids = ids
        self.link = link
        self.default_container = default_container
        self.sweep_limit = sweep_limit
        self.actions = ActionRunner(ledger, link)
        self.parts = TaskParts()
        """The task list's serialised tasks, reused while their rows are unchanged."""
        self.pages: AnswerCache[EncodedAnswer] = AnswerCache.of_database(
            ledger.sessions, ("tasks",)
        )
        """Whole task list answers (with their gzip copies), reused while no task was
        written."""
        self.capacities = KeptCapacities(ledger.sessions)
        """Every node's capacity, for admission checks."""
        self.grouped: Batches[Submission, SubmitResponse] = Batches(self.submit_all)
        """Submissions of one task that arrive while others are being stored, stored
        together next."""

    # -- submit ---------------------------------------------------------------------
    def submit(self, spec: TaskSpec, who: Principal, cause: str | None = None) -> SubmitResponse:
        """Store the spec's tasks as pending; ``cause`` heads their history (default:
        ``submitted by USER``)."""
        (outcome,) = self.submit_all([Submission(spec, who, cause)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def submit_grouped(self, spec: TaskSpec, who: Principal) -> SubmitResponse:
        """:meth:`submit` in a worker thread. A submission of one task is stored in one
        transaction with the others that wait meanwhile (:attr:`grouped`); a sweep or a
        submission to several targets, which may make thousands, in one of its own."""
        if spec.sweep or len(spec.targets) > 1:
            return await asyncio.to_thread(self.submit, spec, who)
        return await self.grouped.submit(Submission(spec, who))

    def submit_all(self, submissions: Sequence[Submission]) -> list[SubmitResponse | ServiceError]:
        """Store each submission's tasks as pending, all in one transaction, each with a
        batch of its own; a refused submission stores nothing and is answered with its
        error, in its place. One scheduler wake-up for them all."""
        now = datetime.now(UTC)
        stored: list[tuple[int, list[int]] | ServiceError] = []
        with self.ledger.adding() as change:
            s = change.session
            nodes = self.capacities.get(s)  # once for all of them
            tasks: list[dict[str, Any]] = []
            history: list[dict[str, Any]] = []
            for sub in submissions:
                try:
                    checked = self.prepare(s, sub.spec, sub.who, nodes)
                except ServiceError as exc:
                    stored.append(exc)
                    continue
                batch_id = self.ids.next()
                rows = self._rows(checked, batch_id, sub.who, now)
                cause = sub.cause or f"submitted by {sub.who.user}"
                history.extend(
                    dict(task_id=r["id"], at=now, source=None, target="pending",
                         event="submitted", cause=cause)
                    for r in rows
                )  # fmt: skip
                tasks.extend(rows)
                ids = [r["id"] for r in rows]
                record(s, sub.who, *submission(checked.spec, batch_id, ids))
                stored.append((batch_id, ids))
            if tasks:  # two bulk inserts: each batch is stored whole or not at all
                _NEW_TASKS(s, tasks)
                _TRANSITIONS(s, history)
                for row in tasks:  # their views, from the rows (no entity each)
                    view = SimpleNamespace(**NOT_STARTED, **row)
                    change.publish(task_view(view))  # type: ignore[arg-type]
        if tasks:
            self.ledger.on_arrival()  # new work: let the scheduler look
        views = {view.id: view for view in change.views}
        return [
            outcome
            if isinstance(outcome, ServiceError)
            else SubmitResponse(batch_id=str(outcome[0]), tasks=[views[str(i)] for i in outcome[1]])
            for outcome in stored
        ]

    def _rows(
        self, checked: Prepared, batch_id: int, who: Principal, now: datetime
    ) -> list[dict[str, Any]]:
        """The task rows of a checked submission."""
        spec, cap = checked.spec, checked.spec.max_parallel
        held_back = f"its batch runs at most {cap} at once"
        mounts = [m.model_dump() for m in spec.mounts]
        rows = []
        for n, member in enumerate(checked.members):
            request = checked.requests[member.target]
            rows.append(
                dict(
                    id=self.ids.next(),
                    batch_id=batch_id,
                    name=member.name,
                    kind=spec.kind.value,
                    state=TaskState.PENDING.value,
                    desired=Desired.RUN.value,
                    owner=who.user,
                    command=member.command,
                    target=str(member.target) if member.target else None,
                    node=None,
                    numa=None,
                    gpu_ids=[],
                    cpuset=[],
                    cores=request.cores,
                    memory=request.memory,
                    gpus=request.gpus,
                    env=member.env,
                    mounts=mounts,
                    container=checked.container,
                    image=checked.image,
                    native=spec.native,
                    privileged=spec.privileged,
                    workdir=spec.workdir,
                    network=spec.network.value,
                    timeout=spec.timeout,
                    priority=spec.priority,
                    created_at=now,
                    waiting_reason=held_back if cap is not None and n >= cap else QUEUED,
                    ssh_key=spec.ssh_key,
                    batch_max_parallel=cap,
                )
            )
        return rows

    def prepare(
        self,
        s: Session,
        spec: TaskSpec,
        who: Principal,
        nodes: dict[str, NodeCapacity] | None = None,
    ) -> Prepared:
        """Check a submission as submitting does (the same errors) and say what it
        makes: the spec as it runs, its tasks, each target's request and the image.
        ``nodes``: the nodes' capacities, when already read."""
        if who.role == "viewer":
            raise Forbidden("the viewer role cannot submit tasks")
        if spec.kind is TaskKind.VPS:
            spec = vps_spec(spec)  # first: a VPS is never native, whatever else it asks
        else:
            if spec.native:
                check_native(spec)
            if spec.ssh_key is not None:
                raise BadRequest("an SSH key applies to VPS tasks only")
        if (spec.privileged or spec.mounts) and not who.is_admin:
            raise Forbidden("privileged containers and host mounts need the admin role")
        targets: list[TargetSpec | None] = [TargetSpec.parse(t) for t in spec.targets]
        targets = targets or [None]
        members = batch_members(spec, targets, self.sweep_limit)
        container, image = self._image_for(s, spec)
        if nodes is None:
            nodes = self.capacities.get(s)
        requests: dict[TargetSpec | None, ResourceRequest] = {}
        for target in targets:
            gpus = len(target.gpus) if target and target.gpus else spec.gpus
            request = ResourceRequest(cores=spec.cores, memory=spec.memory, gpus=gpus)
            try:
                self.capacities.admit(request, target, nodes)
            except PlacementError as exc:
                raise BadRequest(str(exc)) from None
            requests[target] = request
        return Prepared(spec, members, requests, container, image)

    def _image_for(self, s: Session, spec: TaskSpec) -> tuple[str | None, str | None]:
        if spec.native:
            return None, None
        if spec.image:
            return None, spec.image
        name = spec.container or self.default_container
        env = s.get(Environment, name)
        if env is None:
            known = ", ".join(s.scalars(select(Environment.name))) or "none"
            raise BadRequest(f"unknown container environment {name!r}; known: {known}")
        return name, env.image

    def retry(self, ref: str, who: Principal) -> SubmitResponse:
        """Submit a command task's spec again as a new task; its history's first entry
        names the original."""
        old = self.get(ref, who)
        if old.kind is not TaskKind.COMMAND:
            raise BadRequest(f"task {old.id} is a VPS: restart it instead (kawa vps restart)")
        pinned_gpus = old.target is not None and "::" in old.target
        spec = TaskSpec(
            command=old.command,
            targets=[old.target] if old.target else [],
            cores=old.cores,
            memory=old.memory,
            gpus=0 if pinned_gpus else old.gpus,
            env=old.env,
            mounts=old.mounts,
            container=old.container,
            image=None if old.container else old.image,
            native=old.native,
            privileged=old.privileged,
            workdir=old.workdir,
            network=old.network,
            timeout=old.timeout,
            priority=old.priority,
            name=old.name,
        )
        return self.submit(spec, who, f"retry of task {old.id} by {who.user}")

    # -- read -----------------------------------------------------------------------
    def get(self, ref: str, who: Principal) -> TaskView:
        view = self.ledger.view(ref)
        if not visible(view.owner, who):
            raise NotFound(f"no task with id {ref}")
        return view

    def page(self, who: Principal, wanted: TaskFilter) -> EncodedAnswer:
        """The JSON list of the tasks the caller may see that ``wanted`` asks for, newest
        first (BadRequest for a filter that names no state, kind or batch). Blocks."""
        owner = None if who.is_admin else who.user
        query = wanted.query(owner)

        def read() -> EncodedAnswer:
            with self.ledger.sessions() as s:
                return EncodedAnswer.of(self.parts.page(s, query))

        return self.pages.answer((owner, wanted), read)

    def known_page(self, who: Principal, wanted: TaskFilter) -> EncodedAnswer | None:
        """:meth:`page`'s answer when it is kept and current, else None (reads nothing)."""
        return self.pages.known((None if who.is_admin else who.user, wanted))

    def counts(self, who: Principal) -> TaskCounts:
        """How many tasks the caller may see, by state: one GROUP BY, no rows read."""
        query = select(Task.state, func.count()).group_by(Task.state)
        if not who.is_admin:
            query = query.where(Task.owner == who.user)
        with self.ledger.sessions() as s:
            by_state = {state: int(n) for state, n in s.execute(query).all()}
        return TaskCounts(by_state=by_state, total=sum(by_state.values()))

    # -- control: the database in worker threads, the runner's answer on the loop --------
    async def act(self, ref: str, action: TaskAction, who: Principal) -> TaskView:
        if action is TaskAction.SNAPSHOT:
            return await self.snapshot(ref, who)
        task_id, url, pending = await asyncio.to_thread(self._request, ref, action, who)
        for act in pending:
            await self.actions.carry_out(act, task_id, url)
        return await asyncio.to_thread(self.ledger.view, str(task_id))

    def _request(
        self, ref: str, action: TaskAction, who: Principal
    ) -> tuple[int, str | None, Sequence[Action]]:
        """Record that ``who`` asks for ``action``: the task's id, its node's URL and the
        actions its runner is to carry out."""
        with self.ledger.change() as change:
            task = self.ledger.find(change.session, ref)
            if not visible(task.owner, who):
                raise NotFound(f"no task with id {ref}")
            if who.role == "viewer":
                raise Forbidden(f"the viewer role cannot {action.value} tasks")
            try:
                change.apply(task, _REQUESTS[action], f"{action.value} requested by {who.user}")
            except InvalidTransition as exc:
                raise Conflict(str(exc)) from None
            record(change.session, who, task_action(task.kind, action.value), str(task.id))
            if action in (TaskAction.KILL, TaskAction.STOP):
                task.desired = Desired.STOP.value
            elif action is TaskAction.RESTART:
                task.desired, task.exit_code, task.error = Desired.RUN.value, None, None
            url = self._node_url(change.session, task)
            return task.id, url, [a for t, a in change.actions]

    async def snapshot(self, ref: str, who: Principal) -> TaskView:
        """Commit a running or paused VPS's container on its node (docs/vps.md)."""
        url, task_id = await asyncio.to_thread(self._snapshot_target, ref, who)
        if url is None:
            raise Conflict("the VPS's node is unknown")
        try:
            await self.link.control(url, str(task_id), "snapshot")
        except RunnerUnreachable:
            raise Conflict("cannot snapshot: the VPS's runner is unreachable") from None
        except RunnerRejected as exc:
            raise Conflict(f"runner refused to snapshot task {task_id}: {exc.detail}") from None
        await asyncio.to_thread(self._record_snapshot, who, task_id)
        return await asyncio.to_thread(self.ledger.view, str(task_id))

    def _snapshot_target(self, ref: str, who: Principal) -> tuple[str | None, int]:
        with self.ledger.sessions() as s:
            task = self.ledger.find(s, ref)
            if not visible(task.owner, who):
                raise NotFound(f"no task with id {ref}")
            if who.role == "viewer":
                raise Forbidden("the viewer role cannot snapshot tasks")
            if task.kind != TaskKind.VPS.value:
                raise Conflict("only a VPS can be snapshotted")
            if task.state not in (TaskState.RUNNING.value, TaskState.PAUSED.value):
                raise Conflict(f"cannot snapshot a VPS that is {task.state}")
            return self._node_url(s, task), task.id

    def _record_snapshot(self, who: Principal, task_id: int) -> None:
        with self.ledger.writing() as s:
            record(s, who, task_action(TaskKind.VPS.value, "snapshot"), str(task_id))

    async def remove(self, ref: str, who: Principal, force: bool = False) -> TaskView:
        """Remove a VPS's container and snapshots on its node; the task stays as
        ``removed``. A running or paused VPS only with ``force`` (stopped first)."""
        task_id, node, url = await asyncio.to_thread(self._remove_requested, ref, who, force)
        await self._remove_on_node(task_id, node, url, force)
        return await asyncio.to_thread(self.ledger.view, str(task_id))

    def _remove_requested(
        self, ref: str, who: Principal, force: bool
    ) -> tuple[int, str | None, str | None]:
        with self.ledger.change() as change:
            task = self.ledger.find(change.session, ref)
            if not visible(task.owner, who):
                raise NotFound(f"no task with id {ref}")
            if who.role == "viewer":
                raise Forbidden("the viewer role cannot remove tasks")
            if task.kind == TaskKind.VPS.value and task.state in _LIVE and not force:
                raise Conflict(
                    f"VPS {task.id} is {task.state}: stop it first "
                    "(`kawa vps stop`), or remove it with --force"
                )
            cause = f"remove requested by {who.user}" + (" (forced)" if force else "")
            try:
                change.apply(task, TaskEvent.REMOVE_REQUESTED, cause)
            except InvalidTransition as exc:
                raise Conflict(str(exc)) from None
            record(change.session, who, task_action(task.kind, "remove"), str(task.id))
            return task.id, task.node, self._node_url(change.session, task)

    async def expire(self, task_id: int, retention: float) -> bool:
        """Remove an ended VPS kept longer than ``retention`` seconds (as ``remove``);
        False when it changed meanwhile. Conflict when its runner cannot do it."""
        found = await asyncio.to_thread(self._removable, task_id)
        if found is None:
            return False
        node, url = found
        cause = f"kept past host.vps_retention ({retention:g}s)"
        return await self._remove_on_node(task_id, node, url, False, cause)

    async def _remove_on_node(
        self, task_id: int, node: str | None, url: str | None, force: bool, cause: str = ""
    ) -> bool:
        """Ask the node to remove the VPS's container and snapshots, then record it."""
        if node is not None and url is not None:
            try:
                await self.link.remove_vps(url, str(task_id), force)
            except RunnerUnreachable:
                raise Conflict(
                    f"cannot remove VPS {task_id}: the runner of node {node} is unreachable"
                ) from None
            except RunnerRejected as exc:
                raise Conflict(
                    f"runner {node} refused to remove VPS {task_id}: {exc.detail}"
                ) from None
            done = f"runner {node} removed its container and snapshots"
        else:  # never placed, or its node is gone: nothing is left to remove
            done = "nothing left on a node to remove"
        return await asyncio.to_thread(
            self._record_removed, task_id, f"{cause}: {done}" if cause else done
        )

    def _removable(self, task_id: int) -> tuple[str | None, str | None] | None:
        """An ended VPS's node and its URL; None unless it is removable."""
        with self.ledger.sessions() as s:
            task = s.get(Task, task_id)
            if task is None or task.state not in VPS_REMOVABLE:
                return None
            return task.node, self._node_url(s, task)

    def _record_removed(self, task_id: int, cause: str) -> bool:
        with self.ledger.change() as change:
            task = change.session.get(Task, task_id)
            if task is None:
                return False
            return change.try_apply(task, TaskEvent.REMOVED, cause) is not None

    @staticmethod
    def _node_url(s: Session, task: Task) -> str | None:
        node = s.get(Node, task.node) if task.node else None
        return node.url if node else None

    # -- what the SSH gateway asks -----------------------------------------------------
    def vps_has_key(self, key_type: str, key_data: str) -> bool:
        """Whether some VPS was created with the public key ``key_type key_data``."""
        with self.ledger.sessions() as s:
            rows = s.scalars(
                select(Task.ssh_key).where(
                    Task.kind == TaskKind.VPS.value, Task.ssh_key.like(f"{key_type} {key_data}%")
                )
            ).all()
        return any((r or "").split()[:2] == [key_type, key_data] for r in rows)

    def vps_access(self, ref: str) -> VpsAccess | None:
        """The VPS ``ref`` names (its id, a unique id prefix, either after ``kawa-``, or
        its name: the newest VPS of that name); None if there is none."""
        ref = ref.strip().removeprefix("kawa-")
        with self.ledger.sessions() as s:
            task: Task | None = None
            if ref.isdigit():
                try:
                    task = self.ledger.find(s, ref)
                except ServiceError:
                    task = None
                if task is not None and task.kind != TaskKind.VPS.value:
                    task = None
            if task is None:
                task = s.scalars(
                    select(Task)
                    .where(Task.kind == TaskKind.VPS.value, Task.name == ref)
                    .order_by(Task.id.desc())
                    .limit(1)
                ).first()
            if task is None:
                return None
            return VpsAccess(
                task_id=str(task.id),
                state=TaskState(task.state),
                ssh_key=task.ssh_key,
                node_url=self._node_url(s, task),
            )


def visible(owner: str, who: Principal) -> bool:
    """A user sees their own tasks; admins see all."""
    return who.is_admin or owner == who.user


NATIVE_CONTAINER = "NULL"
"""The container name that means native execution (no container)."""


def vps_spec(spec: TaskSpec) -> TaskSpec:
    """A VPS: sshd is its command, its own bridge address, no timeout (docs/vps.md)."""
    if spec.native or spec.container == NATIVE_CONTAINER:
        raise BadRequest(
            "a VPS needs a container environment: NULL (--native) means native execution, "
            "which a VPS cannot be; give --container NAME or --image REF, or neither for "
            "the default environment"
        )
    if spec.command:
        raise BadRequest("a VPS runs sshd; it takes no command")
    if spec.timeout is not None:
        raise BadRequest("a VPS does not time out; --timeout does not apply")
    return spec.model_copy(update={"network": NetworkMode.BRIDGE})


def check_native(spec: TaskSpec) -> None:
    """Native tasks run on the node's OS: container-only options are refused."""
    if spec.gpus or any(TargetSpec.parse(t).gpus for t in spec.targets):
        raise BadRequest("GPU tasks need a container: --native cannot be given GPUs")
    if spec.mounts:
        raise BadRequest("--mount applies to containers; a native task sees the node's files")
    if spec.privileged:
        raise BadRequest("--privileged applies to containers, not to native tasks")
    if spec.network.value != "host":
        raise BadRequest("--network applies to containers; a native task uses the node's network")


@dataclass(frozen=True)
class Submission:
    """A submission to store: its spec, who sends it and the cause heading its tasks'
    history (None: ``submitted by USER``)."""

    spec: TaskSpec
    who: Principal
    cause: str | None = None


@dataclass(frozen=True)
class Prepared:
    """A checked submission: the spec as it runs, its tasks, each target's request and
    the image (or environment) the tasks run in."""

    spec: TaskSpec
    members: list[Member]
    requests: dict[TargetSpec | None, ResourceRequest]
    container: str | None
    image: str | None


@dataclass(frozen=True)
class Member:
    """One task of a submission: where it goes, what it runs, its name and environment."""

    target: TargetSpec | None
    command: list[str]
    name: str | None
    env: dict[str, str]


def batch_members(spec: TaskSpec, targets: list[TargetSpec | None], limit: int) -> list[Member]:
    """The tasks a submission makes: one per target, or with ``sweep`` one per combination
    of the command's spans, dealt to the targets in turn (or all auto-placed)."""
    if not spec.sweep:
        return [Member(t, spec.command, spec.name, spec.env) for t in targets]
    if spec.kind is not TaskKind.COMMAND:
        raise BadRequest("--sweep applies to command tasks only")
    try:
        sweep = parse(spec.command)
        sweep.check_limit(limit)
    except SweepError as exc:
        raise BadRequest(f"bad sweep: {exc}") from None
    if not sweep.spans:
        raise BadRequest("--sweep needs a span:{START..END} or span:[a,b,...] in the command")
    base = spec.name or "sweep"
    members = []
    for combo in sweep.combinations():
        name = f"{base}[{combo.label}]"
        env = {**spec.env, "KAWA_SWEEP_INDEX": str(combo.index), "KAWA_SWEEP_ARGS": combo.label}
        members.append(
            Member(
                targets[combo.index % len(targets)],
                list(combo.argv),
                name if len(name) <= 128 else name[:127] + "…",
                env,
            )
        )
    return members
