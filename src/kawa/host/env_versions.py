"""The record of packaged environment versions (database only; no Docker, no files).

``environments`` holds one row per name: the image that is its newest version (for a
local image such as the default environment, ``digest`` is None). ``environment_versions``
holds every packaged version still kept, oldest first by id.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from kawa.host.views import aware
from kawa.protocol.environments import EnvironmentVersionView
from kawa.protocol.runner_api import EnvironmentRef
from kawa.store.models import Environment, EnvironmentVersion


def versions(s: Session, name: str | None = None) -> list[EnvironmentVersion]:
    """Kept versions, newest first (of one environment, or of all)."""
    query = select(EnvironmentVersion).order_by(EnvironmentVersion.id.desc())
    if name is not None:
        query = query.where(EnvironmentVersion.name == name)
    return list(s.scalars(query))


def find(s: Session, name: str, version: str | None) -> EnvironmentVersion | None:
    """Version ``version`` of ``name``, or its newest when ``version`` is None."""
    query = select(EnvironmentVersion).where(EnvironmentVersion.name == name)
    if version is not None:
        query = query.where(EnvironmentVersion.version == version)
    return s.scalars(query.order_by(EnvironmentVersion.id.desc()).limit(1)).first()


def record(s: Session, row: EnvironmentVersion) -> None:
    """Add a new version and make it the environment's newest."""
    s.add(row)
    env = s.get(Environment, row.name)
    if env is None:
        env = Environment(name=row.name, created_at=row.created_at)
        s.add(env)
    env.image, env.version, env.digest = row.image, row.version, row.digest


def beyond(s: Session, name: str, keep: int) -> list[EnvironmentVersion]:
    """The versions of ``name`` older than the newest ``keep`` (to be removed)."""
    return versions(s, name)[max(1, keep) :]


def _identity(row: EnvironmentVersion) -> dict[str, str]:
    """Which version a row is, as both its view and its reference carry it."""
    return {"name": row.name, "version": row.version, "digest": row.digest, "image": row.image}


def view(row: EnvironmentVersion, newest: bool = False) -> EnvironmentVersionView:
    return EnvironmentVersionView(
        **_identity(row), size=row.size, created_at=aware(row.created_at), newest=newest
    )


def views(s: Session, name: str | None = None) -> list[EnvironmentVersionView]:
    rows = versions(s, name)
    seen: set[str] = set()
    out = []
    for row in rows:
        out.append(view(row, newest=row.name not in seen))
        seen.add(row.name)
    return sorted(out, key=lambda v: (v.name, v.version))


def ref(row: EnvironmentVersion) -> EnvironmentRef:
    return EnvironmentRef(**_identity(row))


def ref_for(s: Session, container: str, image: str | None) -> EnvironmentRef | None:
    """The packaged version a task of environment ``container`` submitted with ``image``
    runs in, for its run order; None for a local image.

    A task keeps the version that was newest when it was submitted (its ``image``); if
    that version has been pruned since, it gets the environment's newest one."""
    row = s.scalars(
        select(EnvironmentVersion).where(EnvironmentVersion.image == (image or ""))
    ).first()
    if row is None:
        env = s.get(Environment, container)
        if env is None or env.digest is None:
            return None
        row = find(s, container, None)
    return None if row is None else ref(row)


def now() -> datetime:
    return datetime.now(UTC)
