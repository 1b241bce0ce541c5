"""The audit trail: one row per action that changes the cluster (who, from where, what
on which target), written by the code that makes the change — in the same transaction
where there is one — and read by admins. Rows never hold secrets: no token values, no
environment values, no commands or scripts. Growth is bounded: the newest ``max_rows``
rows are kept, older ones are removed at startup and then once a minute."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session, sessionmaker

from kawa.host.errors import Forbidden
from kawa.protocol.audit import AUDIT_LIMIT_MAX, AuditEntryView
from kawa.store.database import writing
from kawa.store.models import AuditEntry

if TYPE_CHECKING:
    from kawa.host.auth import Principal
    from kawa.protocol.tasks import TaskSpec

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def record(session: Session, who: Principal, action: str, target: str, detail: str = "") -> None:
    """Add the audit row for ``action`` to ``session`` (committed with the change)."""
    session.add(
        AuditEntry(
            at=datetime.now(UTC),
            user=who.user[:64],
            role=who.role[:16],
            token_id=who.token_id,
            address=who.address[:64] if who.address else None,
            action=action[:32],
            target=target[:256],
            detail=detail[:1024],
        )
    )


def task_action(kind: str, verb: str) -> str:
    """The audit action of ``verb`` on a task of ``kind``: ``task.kill``, ``vps.create``."""
    if kind == "vps":
        return "vps.create" if verb == "submit" else f"vps.{verb}"
    return f"task.{verb}"


def submission(spec: TaskSpec, batch_id: int, ids: list[int]) -> tuple[str, str, str]:
    """(action, target, detail) of a submitted batch: the task's id (a batch of several:
    ``batch <id>``) and what the tasks may use. No command, no environment values."""
    target = str(ids[0]) if len(ids) == 1 else f"batch {batch_id}"
    facts = [f"{len(ids)} task(s)" if len(ids) != 1 else "1 task"]
    if len(ids) > 1:
        facts.append(f"ids {ids[0]}..{ids[-1]}")
    if spec.name:
        facts.append(f"name {spec.name}")
    facts.append("native" if spec.native else f"image {spec.image or spec.container or 'default'}")
    if spec.privileged:
        facts.append("privileged")
    if spec.mounts:
        facts.append("mounts " + ", ".join(f"{m.source}:{m.target}" for m in spec.mounts))
    return task_action(spec.kind.value, "submit"), target, "; ".join(facts)


class AuditLog:
    """Reading the trail, writing it where no service transaction exists, and pruning."""

    prune_every = 60.0
    """Seconds between two prunes."""

    def __init__(self, sessions: sessionmaker[Session], max_rows: int) -> None:
        if max_rows < 1:
            raise ValueError("the audit log keeps at least one row")
        self.sessions = sessions
        self.max_rows = max_rows

    def record(self, who: Principal, action: str, target: str, detail: str = "") -> None:
        """Record an action that was carried out outside a database transaction."""
        with writing(self.sessions) as s:
            record(s, who, action, target, detail)

    def after(
        self,
        work: Callable[P, R],
        who: Principal,
        action: str,
        target: str,
        detail: Callable[[R], str] = lambda _: "",
    ) -> Callable[P, R]:
        """``work``, recording ``action`` once it has succeeded (for changes made
        outside the database: Docker work, long operations)."""

        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            result = work(*args, **kwargs)
            self.record(who, action, target, detail(result))
            return result

        return run

    def entries(
        self,
        who: Principal,
        user: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntryView]:
        """The newest entries first; admins only."""
        if not who.is_admin:
            raise Forbidden("reading the audit log needs the admin role")
        query = select(AuditEntry).order_by(AuditEntry.id.desc())
        query = query.limit(max(1, min(limit, AUDIT_LIMIT_MAX)))
        if user is not None:
            query = query.where(AuditEntry.user == user)
        if since is not None:
            query = query.where(AuditEntry.at >= _utc(since).astimezone(UTC))
        with self.sessions() as s:
            return [_view(row) for row in s.scalars(query)]

    def prune(self) -> int:
        """Remove all but the newest ``max_rows`` rows; the number removed."""
        with writing(self.sessions) as s:
            cut = s.scalar(
                select(AuditEntry.id).order_by(AuditEntry.id.desc()).offset(self.max_rows).limit(1)
            )
            if cut is None:
                return 0
            removed = s.execute(delete(AuditEntry).where(AuditEntry.id <= cut))
            return cast(CursorResult[Any], removed).rowcount

    async def run(self) -> None:
        """Prune now and then every ``prune_every`` seconds, until cancelled."""
        while True:
            try:
                removed = await asyncio.to_thread(self.prune)
                if removed:
                    log.info("audit log: removed %d old entries", removed)
            except Exception:
                log.exception("pruning the audit log failed; trying again later")
            await asyncio.sleep(self.prune_every)


def _utc(at: datetime) -> datetime:
    """A timestamp without a zone is taken as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _view(row: AuditEntry) -> AuditEntryView:
    return AuditEntryView(
        id=row.id,
        at=_utc(row.at),
        user=row.user,
        role=row.role,
        token_id=row.token_id,
        address=row.address,
        action=row.action,
        target=row.target,
        detail=row.detail,
    )
