"""Tables of the host's database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class ClusterMeta(Base):
    """Key/value facts about the cluster (its id)."""

    __tablename__ = "cluster_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(512))


class ApiToken(Base):
    """An API token: only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class Node(Base):
    __tablename__ = "nodes"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    url: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    inventory: Mapped[dict[str, Any]]
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    registered_at: Mapped[datetime]
    last_heartbeat: Mapped[datetime | None] = mapped_column(nullable=True)


class Environment(Base):
    """A named container environment and the image that is its newest version."""

    __tablename__ = "environments"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    image: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime]


class EnvironmentVersion(Base):
    """A packaged version of an environment: its tarball, digest and image tag."""

    __tablename__ = "environment_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(1024))
    image: Mapped[str] = mapped_column(String(256), unique=True)
    created_at: Mapped[datetime]


QUEUED = "queued"
"""The waiting reason of a task no scheduling pass has looked at yet."""
ARRIVALS = f"waiting_reason = '{QUEUED}'"
"""Such tasks' condition as SQL, so that a query written with it is served by their
partial index (a bound parameter would not be)."""


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # a user's own tasks (every listing of a non-admin, the owner filter) and their
        # counts by state
        Index("ix_tasks_owner_state", "owner", "state"),
        # Each filter of the task list with its order (newest first), so a page is read
        # in order from the index instead of sorting every match. (The text filter is a
        # substring match no such index can serve.)
        Index("ix_tasks_state_id", "state", "id"),
        Index("ix_tasks_node_id", "node", "id"),
        Index("ix_tasks_owner_id", "owner", "id"),
        Index("ix_tasks_kind_id", "kind", "id"),
        Index("ix_tasks_batch_id_id", "batch_id", "id"),
        # the scheduler's queue: pending tasks by priority, then age
        Index("ix_tasks_queue", "state", text("priority DESC"), "id"),
        # the queue's new arrivals (no waiting reason yet), which a pass reads alone
        # when nothing can be placed: without it, it walks every waiting task first
        Index(
            "ix_tasks_arrivals",
            "state",
            text("priority DESC"),
            "id",
            sqlite_where=text(ARRIVALS),
            postgresql_where=text(ARRIVALS),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    batch_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    desired: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(64))
    command: Mapped[list[Any]]
    target: Mapped[str | None] = mapped_column(String(256), nullable=True)
    node: Mapped[str | None] = mapped_column(String(63), nullable=True)
    numa: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gpu_ids: Mapped[list[Any]]
    cpuset: Mapped[list[Any]]
    cores: Mapped[int] = mapped_column(Integer)
    memory: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    env: Mapped[dict[str, Any]]
    mounts: Mapped[list[Any]]
    container: Mapped[str | None] = mapped_column(String(128), nullable=True)
    image: Mapped[str | None] = mapped_column(String(256), nullable=True)
    native: Mapped[bool] = mapped_column(Boolean, default=False)
    privileged: Mapped[bool] = mapped_column(Boolean, default=False)
    workdir: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    network: Mapped[str] = mapped_column(String(16))
    timeout: Mapped[float | None] = mapped_column(Float, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    waiting_reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ssh_key: Mapped[str | None] = mapped_column(String(16384), nullable=True)
    """A VPS's authorized public key (OpenSSH one-line format); None for command tasks."""
    batch_max_parallel: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """At most this many tasks of the task's batch hold resources at once (None: no cap)."""


class TaskTransition(Base):
    """Every state change of a task, with its cause."""

    __tablename__ = "task_transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tasks.id"), index=True)
    at: Mapped[datetime]
    source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    target: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(String(1024))


class AuditEntry(Base):
    """Who changed what, from where: one row per audited action (never a secret)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[str] = mapped_column(String(1024), default="")


class JoinToken(Base):
    """A token that lets a node join the cluster: only its SHA-256 is stored."""

    __tablename__ = "join_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    uses: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(Integer, default=0)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(128), default="")
