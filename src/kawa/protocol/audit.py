"""The audit trail: who changed what, from where."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from kawa.protocol.common import WireModel

AUDIT_LIMIT_MAX = 10_000
"""Most entries one ``GET /audit`` answers."""


class AuditEntryView(WireModel):
    """One audited action. ``detail`` holds facts about it, never a secret: no token
    values, no environment values, no commands or scripts."""

    id: int
    at: datetime
    user: str
    role: str = Field(description="viewer, user, admin; 'local' for the host's own CLI")
    token_id: int | None = Field(default=None, description="the id of the token used")
    address: str | None = Field(default=None, description="the caller's address")
    action: str = Field(description="e.g. task.submit, vps.stop, node.drain, token.create")
    target: str = Field(description="what the action was on: a task id, node or user name")
    detail: str = ""
