"""``kawa audit``: who changed what, from where (admin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from kawa.cli.context import client
from kawa.cli.output import CliError
from kawa.cli.tables import OutputOpt, listing
from kawa.core.units import UnitError, parse_duration
from kawa.protocol.audit import AUDIT_LIMIT_MAX

SINCE_FORMS = "a duration back from now (30m, 1h, 2d, 1h30m) or an ISO timestamp (UTC if no zone)"


def parse_since(text: str, now: datetime) -> datetime:
    """The moment ``text`` names: ``now`` minus a duration, or an ISO 8601 timestamp."""
    try:
        return now - timedelta(seconds=parse_duration(text))
    except UnitError:
        pass
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"invalid --since {text!r}: expected {SINCE_FORMS}", 2) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def audit(
    user: Annotated[str | None, typer.Option(help="Only actions by this user.")] = None,
    since: Annotated[str | None, typer.Option(help=f"Only actions since: {SINCE_FORMS}.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=AUDIT_LIMIT_MAX, help="At most this many, newest first.")
    ] = 100,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    output: OutputOpt = None,
) -> None:
    """Show the audit trail: who submitted, killed, drained, created... and from where."""
    start = parse_since(since, datetime.now(UTC)) if since is not None else None
    with client() as c:
        entries = c.audit(user, start, limit)
    listing(
        entries,
        output,
        json,
        ["TIME (UTC)", "USER", "ROLE", "TOKEN", "ADDRESS", "ACTION", "TARGET", "DETAIL"],
        lambda e: (
            e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.user,
            e.role,
            "-" if e.token_id is None else e.token_id,
            e.address or "-",
            e.action,
            e.target,
            e.detail,
        ),
        lambda e: str(e.id),
        flex=["ADDRESS", "TARGET", "DETAIL"],
    )
