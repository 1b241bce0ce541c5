"""``kawa task submit --dry-run``: what the submission would do, one line per task."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kawa.cli.output import print_json, visible

if TYPE_CHECKING:
    from kawa.client import KawaClient
    from kawa.protocol.tasks import TaskSpec


def dry_run(c: KawaClient, spec: TaskSpec, json: bool) -> None:
    """Ask the host and print ``TARGET: starts now on NODE`` / ``TARGET: waits: WHY``."""
    result = c.dry_run(spec)
    if json:
        return print_json(result)
    for t in result.tasks:
        typer.echo(f"{visible(t.target or 'auto')}: {visible(t.message)}")
