"""/api/v1/audit: the audit trail (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from kawa.host.deps import HostDep, UserDep
from kawa.protocol.audit import AUDIT_LIMIT_MAX, AuditEntryView

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
def audit(
    host: HostDep,
    who: UserDep,
    user: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; no zone: UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=AUDIT_LIMIT_MAX)] = 100,
) -> list[AuditEntryView]:
    """Audited actions, newest first."""
    return host.audit.entries(who, user, since, limit)
